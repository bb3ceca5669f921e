//! The dead-letter relay: claim unpublished quarantine rows, produce each to its dead-letter topic,
//! mark published exactly those the broker acknowledged, and retry the others later.
//!
//! A row's failure never holds up the others: the rows of a pass are produced independently, the
//! acknowledged ones are marked even when others failed, and a failed row waits out its own
//! jittered backoff (kept in memory: after a restart it is tried once more at once) while later
//! rows go on. A row that can never be published (the topic refuses it for a reason a retry does
//! not fix) stays unpublished in the quarantine table, is logged as an error, and is tried again
//! only every few minutes up to hourly, so a fix to the topic (its configuration, an ACL) is picked
//! up without a restart.

use super::record::{DeadLetter, Quarantined, RECORD_OVERHEAD};
use super::{DlqTopics, PublishError};
use crate::config::KafkaSettings;
use deadpool_postgres::Pool;
use futures_util::stream::{FuturesUnordered, StreamExt};
use rand::Rng;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

const CLAIM: &str = include_str!("../../sql/sink/dlq_claim.sql");
const MARK: &str = include_str!("../../sql/sink/dlq_mark.sql");
/// Rows claimed per pass (and per transaction).
const BATCH: i64 = 500;
/// How long `send` waits for room in the producer's queue.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(30);

/// A failed row's state between attempts.
#[derive(Debug, Clone, Copy)]
struct Retry {
    attempts: u32,
    due: Instant,
}

/// The backoff policy, one for every failure: jittered exponential, from 1 s up to a minute for
/// what a retry can fix (broker unavailable, a record to cut to a limit just learned), from 5
/// minutes up to an hour for what it cannot (so a fixed topic is noticed, but never a hot loop).
pub fn retry_delay(attempts: u32, retriable: bool) -> Duration {
    let (base, max) = if retriable {
        (Duration::from_secs(1), Duration::from_secs(60))
    } else {
        (Duration::from_secs(300), Duration::from_secs(3600))
    };
    let exp = attempts.saturating_sub(1).min(16);
    let d = base.saturating_mul(1 << exp).min(max);
    // Jitter: workers that failed together do not retry together.
    d.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy)]
struct Pass {
    claimed: usize,
    published: usize,
}

/// One row's attempt in a pass.
struct Attempt {
    index: usize,
    /// Sent alone (awaited before the next), so a refusal is this record's own.
    alone: bool,
    truncated: bool,
    size: usize,
    result: Result<(), PublishError>,
}

/// The outcomes of a pass's attempts.
#[derive(Default)]
struct Tally {
    /// Quarantine ids the broker acknowledged.
    published: Vec<i64>,
    truncated: usize,
    /// (index in the claim, error, retriable).
    failures: Vec<(usize, String, bool)>,
    /// Per topic that refused a record as too large: the largest size it refused, and whether
    /// every refused record was sent alone (a batch refusal may be the batch's size, not the
    /// record's).
    too_large: BTreeMap<String, (usize, bool)>,
    /// Claim indexes to send again once the limits are learned.
    resend: Vec<usize>,
}

pub struct DlqRelay {
    pool: Pool,
    settings: KafkaSettings,
    producer: FutureProducer,
    topics: DlqTopics,
    notify: Arc<Notify>,
    /// Dead-letter topics known to exist (created at start, or on first use by this relay).
    ensured: HashSet<String>,
    /// Per dead-letter topic, the largest message it takes, once a topic rejected a record as too
    /// large (`kafka.dlq_max_message_bytes` until then).
    limits: HashMap<String, usize>,
    /// Rows that failed, by quarantine id; removed once published.
    retries: HashMap<i64, Retry>,
}

impl DlqRelay {
    /// `ensured`: dead-letter topics already created (by [`super::create_dlq_topics`]).
    ///
    /// # Errors
    /// Invalid Kafka settings.
    pub fn new(
        pool: Pool,
        settings: &KafkaSettings,
        producer: FutureProducer,
        notify: Arc<Notify>,
        ensured: impl IntoIterator<Item = String>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            pool,
            settings: settings.clone(),
            producer,
            topics: DlqTopics::new(settings)?,
            notify,
            ensured: ensured.into_iter().collect(),
            limits: HashMap::new(),
            retries: HashMap::new(),
        })
    }

    /// Relays until `stop`, then makes one last pass (bounded by `hard_stop`).
    pub async fn run(mut self, stop: CancellationToken, hard_stop: CancellationToken) {
        let mut backoff = Duration::from_millis(200);
        loop {
            let stopping = stop.is_cancelled();
            match self.pass().await {
                Ok(p) => {
                    backoff = Duration::from_millis(200);
                    // A full claim that published: more may be waiting. (One that published
                    // nothing waits for the next tick: when the broker is down, every row fails
                    // at once, and its next claim would only fail the next 500.)
                    if p.claimed as i64 == BATCH && p.published > 0 && !hard_stop.is_cancelled() {
                        continue;
                    }
                }
                Err(e) => {
                    warn!(error = %e, ?backoff, "Failed to relay quarantined records to the dead-letter topics; retrying.");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = hard_stop.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
            }
            if stopping {
                return;
            }
            tokio::select! {
                _ = self.notify.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = stop.cancelled() => {}
            }
        }
    }

    fn dlq_topic(&self, q: &Quarantined) -> String {
        format!("{}{}", q.source_topic, self.settings.dlq_suffix)
    }

    fn limit(&self, topic: &str) -> usize {
        self.limits
            .get(topic)
            .copied()
            .unwrap_or(self.settings.dlq_max_message_bytes)
    }

    /// Creates the dead-letter topics of `rows` not known to exist; returns those that could not
    /// be created, with the reason.
    async fn ensure_topics(&mut self, rows: &[Quarantined]) -> HashMap<String, (String, bool)> {
        let missing: Vec<String> = rows
            .iter()
            .map(|q| self.dlq_topic(q))
            .filter(|t| !self.ensured.contains(t))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut failed = HashMap::new();
        if missing.is_empty() {
            return failed;
        }
        match self.topics.create(&missing).await {
            Ok(errors) => {
                for (t, e) in errors {
                    failed.insert(t, (e.to_string(), e.is_retriable()));
                }
            }
            Err(e) => {
                for t in &missing {
                    failed.insert(t.clone(), (e.to_string(), e.is_retriable()));
                }
            }
        }
        for t in missing {
            if !failed.contains_key(&t) {
                self.ensured.insert(t);
            }
        }
        failed
    }

    async fn send(&self, index: usize, alone: bool, topic: String, d: DeadLetter<'_>) -> Attempt {
        let mut rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic).headers(d.headers);
        if let Some(k) = d.key {
            rec = rec.key(k);
        }
        if let Some(v) = d.payload {
            rec = rec.payload(v);
        }
        let result = self
            .producer
            .send(rec, QUEUE_TIMEOUT)
            .await
            .map(|_| ())
            .map_err(|(e, _)| PublishError::Produce(e));
        Attempt {
            index,
            alone,
            truncated: d.truncated,
            size: d.size,
            result,
        }
    }

    /// Publishes one claimed set of rows: each is marked published if and only if the broker
    /// acknowledged it.
    ///
    /// # Errors
    /// The database failed (nothing of the pass is marked; its rows are claimed again).
    async fn pass(&mut self) -> Result<Pass, PublishError> {
        let now = Instant::now();
        // A row long past its retry time that we did not claim was published (or is being
        // retried) by another worker: forget it.
        self.retries
            .retain(|_, r| now.saturating_duration_since(r.due) < Duration::from_secs(7200));
        let waiting: Vec<i64> = self
            .retries
            .iter()
            .filter(|(_, r)| r.due > now)
            .map(|(id, _)| *id)
            .collect();
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let rows = tx.query(CLAIM, &[&BATCH, &waiting]).await?;
        let claimed = rows
            .iter()
            .map(Quarantined::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        drop(rows);
        if claimed.is_empty() {
            return Ok(Pass::default());
        }
        let topic_failed = self.ensure_topics(&claimed).await;

        let mut attempts: Vec<Attempt> = Vec::with_capacity(claimed.len());
        let mut refused: Vec<(usize, String, bool)> = Vec::new();
        {
            let mut first = FuturesUnordered::new();
            let mut again = Vec::new();
            for (i, q) in claimed.iter().enumerate() {
                let topic = self.dlq_topic(q);
                if let Some((e, retriable)) = topic_failed.get(&topic) {
                    refused.push((i, e.clone(), *retriable));
                } else if self.retries.contains_key(&q.id) {
                    again.push(i);
                } else {
                    match q.dead_letter(self.limit(&topic)) {
                        Ok(d) => first.push(self.send(i, false, topic, d)),
                        Err(e) => refused.push((i, e.to_string(), e.is_retriable())),
                    }
                }
            }
            while let Some(a) = first.next().await {
                attempts.push(a);
            }
            // A row that failed before goes alone, acknowledged before the next is sent: a batch
            // of small records can exceed a topic's limit together, never one cut record alone.
            for i in again {
                let q = &claimed[i];
                let topic = self.dlq_topic(q);
                match q.dead_letter(self.limit(&topic)) {
                    Ok(d) => attempts.push(self.send(i, true, topic, d).await),
                    Err(e) => refused.push((i, e.to_string(), e.is_retriable())),
                }
            }
        }

        let mut t = Tally {
            failures: refused,
            ..Tally::default()
        };
        for a in attempts {
            let topic = self.dlq_topic(&claimed[a.index]);
            self.tally(&mut t, claimed[a.index].id, topic, a, false);
        }
        // A topic refused records as too large: learn its limit and send them again at once, cut
        // to it, each alone; so are records refused for good, which a batch neighbour may have
        // caused. A second refusal waits for the next attempt (and a size one halves the limit).
        for (topic, (sent, alone)) in std::mem::take(&mut t.too_large) {
            self.learn_limit(&topic, sent, alone).await;
        }
        for i in std::mem::take(&mut t.resend) {
            let q = &claimed[i];
            let topic = self.dlq_topic(q);
            match q.dead_letter(self.limit(&topic)) {
                Ok(d) => {
                    let a = self.send(i, true, topic.clone(), d).await;
                    self.tally(&mut t, q.id, topic, a, true);
                }
                Err(e) => t.failures.push((i, e.to_string(), e.is_retriable())),
            }
        }
        let Tally {
            published,
            truncated,
            failures,
            ..
        } = t;
        if !published.is_empty() {
            tx.execute(MARK, &[&published]).await?;
        }
        tx.commit().await?;

        for id in &published {
            self.retries.remove(id);
        }
        if !published.is_empty() {
            info!(
                records = published.len(),
                truncated, "Published quarantined records to dead-letter topics."
            );
        }
        self.record_failures(&claimed, failures);
        if let Some((code, reason)) = self.producer.client().fatal_error() {
            error!(%code, %reason, "The dead-letter producer failed fatally; replacing it.");
            match super::producer(&self.settings) {
                Ok(p) => self.producer = p,
                Err(e) => {
                    error!(error = %format!("{e:#}"), "Cannot replace the dead-letter producer.")
                }
            }
        }
        Ok(Pass {
            claimed: claimed.len(),
            published: published.len(),
        })
    }

    /// Counts one attempt; a first refusal, for size or for good, is kept for a resend alone
    /// rather than failed.
    /// `resent`: this was the pass's second attempt at the record.
    fn tally(&mut self, t: &mut Tally, id: i64, topic: String, a: Attempt, resent: bool) {
        match a.result {
            Ok(()) => {
                t.published.push(id);
                t.truncated += usize::from(a.truncated);
            }
            Err(e) => {
                if e.is_unknown_topic() {
                    self.ensured.remove(&topic);
                }
                if !resent && e.is_too_large() {
                    let s = t.too_large.entry(topic).or_insert((0, true));
                    *s = (s.0.max(a.size), s.1 && a.alone);
                    t.resend.push(a.index);
                } else if !resent && !a.alone && (e.is_batch_neighbour() || !e.is_retriable()) {
                    // The broker refuses a whole batch for one bad record: its neighbours are
                    // innocent (librdkafka says so), and the bad one may have been another one.
                    // Alone, a record answers for itself.
                    t.resend.push(a.index);
                } else {
                    t.failures.push((a.index, e.to_string(), e.is_retriable()));
                }
            }
        }
    }

    /// A topic rejected a record of `sent` bytes as too large: ask it for its limit, and cut its
    /// records to that from now on. If it reports a limit the record met, a record sent in a
    /// batch was refused for the batch's size: the limit stays and the record goes again alone.
    /// A record sent alone that met the reported limit (librdkafka's own limit, or a limit the
    /// broker could not be asked for) halves it instead: each such refusal shrinks the limit,
    /// down to [`PublishError::HeadersDoNotFit`], which is permanent.
    async fn learn_limit(&mut self, topic: &str, sent: usize, alone: bool) {
        let current = self.limit(topic);
        let reported = self.topics.max_message_bytes(topic).await;
        let next = match &reported {
            Ok(max) if *max < current => *max,
            _ if !alone => return,
            _ => (sent + RECORD_OVERHEAD).min(current) / 2,
        };
        warn!(
            topic,
            limit = next,
            previous = current,
            reported = ?reported.as_ref().ok(),
            "A dead-letter topic rejected a record as too large; its records are now cut to fit."
        );
        self.limits.insert(topic.to_owned(), next);
    }

    /// Schedules each failed row's next attempt and logs the failures, one line per topic and
    /// error (a broker outage fails every row of a pass at once).
    fn record_failures(&mut self, claimed: &[Quarantined], failures: Vec<(usize, String, bool)>) {
        let now = Instant::now();
        // Per (topic, error, retriable): the rows, their most attempts, the soonest retry.
        type Group = (Vec<i64>, u32, Duration);
        let mut groups: BTreeMap<(String, String, bool), Group> = BTreeMap::new();
        for (i, error, retriable) in failures {
            let q = &claimed[i];
            let attempts = self.retries.get(&q.id).map_or(0, |r| r.attempts) + 1;
            let delay = retry_delay(attempts, retriable);
            self.retries.insert(
                q.id,
                Retry {
                    attempts,
                    due: now + delay,
                },
            );
            let g = groups
                .entry((self.dlq_topic(q), error, retriable))
                .or_insert((Vec::new(), 0, delay));
            g.0.push(q.id);
            g.1 = g.1.max(attempts);
            g.2 = g.2.min(delay);
        }
        for ((topic, error, retriable), (ids, attempts, delay)) in groups {
            let sample: Vec<i64> = ids.iter().copied().take(10).collect();
            if retriable {
                warn!(
                    topic, %error, records = ids.len(), quarantine_ids = ?sample, attempts,
                    retry_in = ?delay,
                    "Failed to publish quarantined records to their dead-letter topic; they will be retried."
                );
            } else {
                error!(
                    topic, %error, records = ids.len(), quarantine_ids = ?sample, attempts,
                    retry_in = ?delay,
                    "Quarantined records cannot be published to their dead-letter topic; they stay unpublished in the quarantine table (dlq_published_at IS NULL) and are retried rarely."
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_and_permanent_failures_wait_minutes() {
        for n in 1..30 {
            let d = retry_delay(n, true);
            assert!(d >= Duration::from_millis(500) && d <= Duration::from_secs(60));
            let p = retry_delay(n, false);
            assert!(p >= Duration::from_secs(150) && p <= Duration::from_secs(3600));
        }
        assert!(retry_delay(1, true) <= Duration::from_secs(1));
        assert!(retry_delay(10, true) >= Duration::from_secs(30));
    }
}
