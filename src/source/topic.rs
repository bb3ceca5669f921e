//! One topic's consumer thread: poll, decode, validate, encode, batch, hand to writers; plus the
//! rebalance callback that seeds each assigned partition from the stored offset.

use super::partition::{run_writer, Control, PartitionState};
use crate::batch::{Batch, MemoryBudget, Quarantined};
use crate::config::Settings;
use crate::decode::{DecodeError, Decoder, Registry};
use crate::records::{Ctx, FamilySpec};
use crate::sink::copy::Lineage;
use crate::sink::Sink;
use anyhow::Context as _;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientContext;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

/// What every topic worker needs from the process.
#[derive(Clone)]
pub struct WorkerDeps {
    pub settings: Arc<Settings>,
    pub sink: Arc<Sink>,
    pub registry: Option<Arc<Registry>>,
    pub runtime: tokio::runtime::Handle,
    /// Soft stop: stop fetching, flush what is batched, commit, exit.
    pub stop: CancellationToken,
    /// Hard stop: the drain deadline passed; abandon retries (nothing uncommitted is lost: it is
    /// re-read after restart).
    pub hard_stop: CancellationToken,
    pub dlq: Arc<Notify>,
    /// Memory all batches of the process may hold (`batch.max_in_flight_bytes`).
    pub budget: Arc<MemoryBudget>,
    /// This consumer's per-partition share of `kafka.prefetch_bytes`.
    pub prefetch: super::Prefetch,
}

/// A topic worker's progress, read by the idle-exit check.
#[derive(Debug, Default)]
pub struct TopicProgress {
    /// Every assigned partition is written up to its high watermark and nothing is pending.
    pub caught_up: AtomicBool,
    /// When the last record arrived (ms since the Unix epoch).
    pub last_record_ms: AtomicU64,
    pub records: AtomicU64,
}

struct Shared {
    partitions: HashMap<i32, PartitionState>,
    next_epoch: u64,
    /// Latest committed offsets, mirrored to Kafka's group offsets for lag tooling.
    kafka_commits: HashMap<i32, i64>,
}

struct TopicContext {
    topic: Arc<str>,
    deps: WorkerDeps,
    shared: Mutex<Shared>,
    ctl_tx: std_mpsc::Sender<Control>,
}

impl ClientContext for TopicContext {}

impl ConsumerContext for TopicContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let res = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.on_assign(tpl);
                if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.on_revoke(tpl);
                if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                }
            }
            other => {
                error!(topic = %self.topic, error = ?other, "Rebalance failed; dropping all partitions.");
                self.on_revoke(tpl);
                consumer.unassign()
            }
        };
        if let Err(e) = res {
            error!(topic = %self.topic, error = %e, "Failed to apply a rebalance.");
        }
    }
}

impl TopicContext {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn partitions_of(&self, tpl: &TopicPartitionList) -> Vec<i32> {
        tpl.elements_for_topic(&self.topic)
            .iter()
            .map(|e| e.partition())
            .collect()
    }

    /// Seeds each newly assigned partition from `consumed_offsets` and starts its writer.
    fn on_assign(&self, tpl: &mut TopicPartitionList) {
        for p in self.partitions_of(tpl) {
            let stored = loop {
                let r = self.deps.runtime.block_on(self.deps.sink.stored_offset(
                    &self.topic,
                    p,
                    &self.deps.hard_stop,
                ));
                match r {
                    Ok(v) => break v,
                    Err(e) if !self.deps.hard_stop.is_cancelled() => {
                        error!(topic = %self.topic, partition = p, error = %e,
                            "Cannot read the stored offset; retrying (is the schema migrated?).");
                        std::thread::sleep(Duration::from_secs(1));
                    }
                    Err(_) => break None,
                }
            };
            let offset = stored.map(Offset::Offset).unwrap_or(Offset::Beginning);
            if let Err(e) = tpl.set_partition_offset(&self.topic, p, offset) {
                error!(topic = %self.topic, partition = p, error = %e, "Cannot set the start offset.");
            }
            let mut sh = self.lock();
            sh.next_epoch += 1;
            let epoch = sh.next_epoch;
            let (tx, rx) = mpsc::channel(self.deps.settings.batch.queue_depth.max(1));
            let revoked = CancellationToken::new();
            let handle = self.deps.runtime.spawn(run_writer(
                rx,
                self.deps.sink.clone(),
                revoked.clone(),
                self.deps.hard_stop.clone(),
                self.ctl_tx.clone(),
                self.deps.dlq.clone(),
            ));
            info!(topic = %self.topic, partition = p, ?stored, "Assigned a partition.");
            sh.partitions.insert(
                p,
                PartitionState {
                    epoch,
                    expected: stored,
                    committed: stored,
                    position: stored,
                    batch: None,
                    pending: Default::default(),
                    paused: false,
                    writer: tx,
                    revoked,
                    handle,
                    in_flight: 0,
                },
            );
        }
    }

    /// Abandons unwritten batches of revoked partitions and waits (bounded) for writes in flight,
    /// so the next owner starts from an offset that no longer moves.
    fn on_revoke(&self, tpl: &TopicPartitionList) {
        let parts = self.partitions_of(tpl);
        let mut handles = Vec::new();
        {
            let mut sh = self.lock();
            for p in &parts {
                sh.kafka_commits.remove(p);
                if let Some(st) = sh.partitions.remove(p) {
                    st.revoked.cancel();
                    handles.push(st.handle);
                    info!(topic = %self.topic, partition = p, "Revoked a partition.");
                }
            }
        }
        if !handles.is_empty() {
            let wait = self.deps.settings.kafka.session_timeout / 3;
            self.deps.runtime.block_on(async move {
                let _ = tokio::time::timeout(wait, futures_util::future::join_all(handles)).await;
            });
        }
    }
}

/// One topic's consumer: owns the thread's decoder and the consumer.
pub struct TopicWorker {
    family: &'static FamilySpec,
    topic: Arc<str>,
    deps: WorkerDeps,
    decoder: Decoder,
    progress: Arc<TopicProgress>,
}

impl TopicWorker {
    /// # Errors
    /// The family's embedded Avro schema does not parse (a build defect).
    pub fn new(
        family: &'static FamilySpec,
        deps: WorkerDeps,
        progress: Arc<TopicProgress>,
    ) -> anyhow::Result<Self> {
        let s = &deps.settings;
        let decoder = Decoder::new(
            family.avro_schema,
            s.format_for(family.name),
            s.decode.max_record_bytes,
            deps.registry.clone(),
        )
        .with_context(|| format!("the Avro schema of {} does not parse", family.name))?;
        Ok(Self {
            family,
            topic: s.topic(family.name).into(),
            deps,
            decoder,
            progress,
        })
    }

    fn consumer_config(&self) -> ClientConfig {
        let k = &self.deps.settings.kafka;
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &k.brokers)
            .set("group.id", &k.group_id)
            .set("client.id", format!("esurio-{}", self.family.name))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "false")
            .set(
                "session.timeout.ms",
                k.session_timeout.as_millis().to_string(),
            )
            .set(
                "heartbeat.interval.ms",
                (k.session_timeout.as_millis() / 3).max(100).to_string(),
            )
            .set("partition.assignment.strategy", &k.assignment_strategy)
            .set(
                "queued.max.messages.kbytes",
                self.deps.prefetch.kbytes_per_partition.to_string(),
            )
            .set(
                "queued.min.messages",
                self.deps.prefetch.messages_per_partition.to_string(),
            )
            // librdkafka's default (1 s) stops fetching a partition for a whole second once its
            // local queue is full; with pause/resume backpressure that idled the writers half the
            // time (docs/PERFORMANCE.md).
            .set("fetch.queue.backoff.ms", "10");
        for (key, v) in &k.librdkafka {
            c.set(key, v);
        }
        c
    }

    /// Runs until the soft stop, then drains. Call on a dedicated thread.
    ///
    /// # Errors
    /// The consumer cannot be created or subscribed (bad configuration).
    pub fn run(self) -> anyhow::Result<()> {
        let (ctl_tx, ctl_rx) = std_mpsc::channel();
        let ctx = TopicContext {
            topic: self.topic.clone(),
            deps: self.deps.clone(),
            shared: Mutex::new(Shared {
                partitions: HashMap::new(),
                next_epoch: 0,
                kafka_commits: HashMap::new(),
            }),
            ctl_tx,
        };
        let consumer: BaseConsumer<TopicContext> = self
            .consumer_config()
            .create_with_context(ctx)
            .with_context(|| format!("cannot create the consumer for {}", self.topic))?;
        consumer
            .subscribe(&[&self.topic])
            .with_context(|| format!("cannot subscribe to {}", self.topic))?;
        info!(topic = %self.topic, family = self.family.name, "Consuming.");

        let s = self.deps.settings.clone();
        let mut vctx = Ctx::new(s.validate.max_future, s.validate.max_past)
            .with_partition_max_past(s.database.partition_max_past);
        let mut last_commit = Instant::now();
        let mut last_check = Instant::now();
        let mut last_record = Instant::now();
        let mut polls_empty = 0u32;
        while !self.deps.stop.is_cancelled() {
            self.handle_control(&consumer, &ctl_rx);
            let now = Instant::now();
            let timeout = self
                .next_deadline(&consumer)
                .map(|d| d.saturating_duration_since(now))
                .unwrap_or(Duration::from_millis(100))
                .min(Duration::from_millis(100));
            match consumer.poll(timeout) {
                Some(Ok(m)) => {
                    vctx.now = chrono::Utc::now();
                    self.on_message(&consumer, &m, &vctx);
                    last_record = Instant::now();
                    polls_empty = 0;
                    self.progress.records.fetch_add(1, Ordering::Relaxed);
                    self.progress
                        .last_record_ms
                        .store(vctx.now.timestamp_millis() as u64, Ordering::Relaxed);
                    self.progress.caught_up.store(false, Ordering::Relaxed);
                }
                Some(Err(e)) => {
                    warn!(topic = %self.topic, error = %e, "Kafka consumer error.");
                }
                None => polls_empty += 1,
            }
            self.flush_due(&consumer);
            if last_commit.elapsed() >= s.kafka.commit_interval {
                self.commit_to_kafka(&consumer, CommitMode::Async);
                last_commit = Instant::now();
            }
            if polls_empty > 0
                && last_record.elapsed() >= Duration::from_millis(300)
                && last_check.elapsed() >= Duration::from_millis(500)
            {
                let caught_up = self.is_caught_up(&consumer);
                self.progress.caught_up.store(caught_up, Ordering::Relaxed);
                last_check = Instant::now();
            }
        }
        self.drain(&consumer, &ctl_rx);
        self.commit_to_kafka(&consumer, CommitMode::Sync);
        info!(topic = %self.topic, "Stopped consuming.");
        Ok(())
    }

    fn on_message(
        &self,
        consumer: &BaseConsumer<TopicContext>,
        m: &BorrowedMessage<'_>,
        vctx: &Ctx,
    ) {
        let p = m.partition();
        let offset = m.offset();
        let ctx = consumer.context();
        let mut sh = ctx.lock();
        let Some(st) = sh.partitions.get_mut(&p) else {
            return;
        };
        if st.position.is_some_and(|pos| offset < pos) {
            return; // fetched before a seek; already written
        }
        st.position = Some(offset + 1);
        let batch = st.batch.get_or_insert_with(|| {
            Batch::new(
                self.family,
                self.topic.clone(),
                p,
                st.epoch,
                st.expected,
                offset,
                self.deps.budget.clone(),
            )
        });
        let ts_ms = m.timestamp().to_millis();
        let quarantine = |stage: &'static str, reason: &str, message: String| Quarantined {
            offset,
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
            stage,
            reason: reason.to_owned(),
            message,
            record_ts: ts_ms.and_then(chrono::DateTime::from_timestamp_millis),
        };
        let Some(bytes) = m.payload() else {
            batch.push_quarantined(quarantine(
                "decode",
                DecodeError::Empty.reason(),
                DecodeError::Empty.to_string(),
            ));
            self.send_if_full(st);
            return;
        };
        let lineage = Lineage {
            topic: &self.topic,
            partition: p,
            offset,
            timestamp: ts_ms.and_then(chrono::DateTime::from_timestamp_millis),
        };
        let mut backoff = Duration::from_millis(200);
        loop {
            match self.decoder.decode(bytes) {
                Ok(payload) => {
                    match (self.family.process)(payload, vctx, &lineage, &mut batch.staged) {
                        Ok(()) => batch.push_valid(offset, m.key(), bytes, ts_ms),
                        Err(e) => {
                            batch.push_quarantined(quarantine(e.stage(), e.reason(), e.to_string()))
                        }
                    }
                }
                Err(e) if e.is_retriable() && !self.deps.stop.is_cancelled() => {
                    warn!(topic = %self.topic, partition = p, offset, error = %e, ?backoff,
                        "Cannot decode a record for a reason a retry can fix; retrying.");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
                Err(e) => {
                    debug!(topic = %self.topic, partition = p, offset, error = %e, "Quarantining an undecodable record.");
                    batch.push_quarantined(quarantine("decode", e.reason(), e.to_string()));
                }
            }
            break;
        }
        self.send_if_full(st);
    }

    fn send_if_full(&self, st: &mut PartitionState) {
        if st
            .batch
            .as_ref()
            .is_some_and(|b| b.is_full(&self.deps.settings.batch))
        {
            seal(st);
            offer(st);
        }
    }

    fn next_deadline(&self, consumer: &BaseConsumer<TopicContext>) -> Option<Instant> {
        let linger = self.deps.settings.batch.linger;
        consumer
            .context()
            .lock()
            .partitions
            .values()
            .filter_map(|st| st.batch.as_ref().map(|b| b.deadline(linger)))
            .min()
    }

    fn flush_due(&self, consumer: &BaseConsumer<TopicContext>) {
        let linger = self.deps.settings.batch.linger;
        let now = Instant::now();
        let mut sh = consumer.context().lock();
        let mut pause = TopicPartitionList::new();
        let mut resume = TopicPartitionList::new();
        // Batches of all topics hold the process's whole budget: fetch nothing until writers
        // have drained some (they need no budget to do so).
        let budget_exhausted = self.deps.budget.exhausted();
        for (p, st) in sh.partitions.iter_mut() {
            // While batches wait for the writer, let the current one grow to full size instead of
            // cutting more small ones.
            if st.pending.is_empty() && st.batch.as_ref().is_some_and(|b| b.deadline(linger) <= now)
            {
                seal(st);
            }
            offer(st);
            let hold = !st.pending.is_empty() || budget_exhausted;
            if hold && !st.paused {
                st.paused = true;
                pause.add_partition(&self.topic, *p);
            } else if !hold && st.paused {
                st.paused = false;
                resume.add_partition(&self.topic, *p);
            }
        }
        drop(sh);
        if pause.count() > 0 {
            debug!(topic = %self.topic, partitions = pause.count(), budget_exhausted,
                in_flight_bytes = self.deps.budget.used(), "Pausing: the database is behind.");
            if let Err(e) = consumer.pause(&pause) {
                warn!(topic = %self.topic, error = %e, "Cannot pause partitions.");
            }
        }
        if resume.count() > 0 {
            debug!(topic = %self.topic, partitions = resume.count(), "Resuming.");
            if let Err(e) = consumer.resume(&resume) {
                warn!(topic = %self.topic, error = %e, "Cannot resume partitions.");
            }
        }
    }

    fn handle_control(
        &self,
        consumer: &BaseConsumer<TopicContext>,
        ctl_rx: &std_mpsc::Receiver<Control>,
    ) {
        while let Ok(c) = ctl_rx.try_recv() {
            let mut sh = consumer.context().lock();
            match c {
                Control::Committed {
                    partition,
                    epoch,
                    next_offset,
                } => {
                    let mine = sh
                        .partitions
                        .get_mut(&partition)
                        .filter(|st| st.epoch == epoch)
                        .map(|st| {
                            st.committed = Some(next_offset);
                            st.in_flight = st.in_flight.saturating_sub(1);
                        })
                        .is_some();
                    if mine {
                        sh.kafka_commits.insert(partition, next_offset);
                    }
                }
                Control::Fenced {
                    partition,
                    epoch,
                    stored,
                } => {
                    sh.next_epoch += 1;
                    let new_epoch = sh.next_epoch;
                    let Some(st) = sh.partitions.get_mut(&partition) else {
                        continue;
                    };
                    if st.epoch != epoch {
                        continue;
                    }
                    st.epoch = new_epoch;
                    st.expected = stored;
                    st.committed = stored;
                    st.position = stored;
                    st.batch = None;
                    st.pending.clear();
                    st.in_flight = 0;
                    let to = stored.map(Offset::Offset).unwrap_or(Offset::Beginning);
                    if let Err(e) =
                        consumer.seek(&self.topic, partition, to, Duration::from_secs(10))
                    {
                        error!(topic = %self.topic, partition, error = %e, "Cannot seek after a fence.");
                    }
                }
            }
        }
    }

    /// Whether the whole group is done with this topic: nothing pending here, and for every
    /// partition of the topic (owned by this worker or not) the offset stored in PostgreSQL has
    /// reached the high watermark. Asking the database rather than this worker's assignment matters:
    /// right after a restart the group may not have handed this worker its partitions yet, and an
    /// empty assignment is not the same as being done.
    fn is_caught_up(&self, consumer: &BaseConsumer<TopicContext>) -> bool {
        if consumer
            .context()
            .lock()
            .partitions
            .values()
            .any(|st| st.batch.is_some() || !st.pending.is_empty() || st.in_flight > 0)
        {
            return false;
        }
        let partitions: Vec<i32> =
            match consumer.fetch_metadata(Some(&self.topic), Duration::from_secs(2)) {
                Ok(md) => md
                    .topics()
                    .iter()
                    .filter(|t| t.error().is_none())
                    .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                    .collect(),
                Err(_) => return false,
            };
        if partitions.is_empty() {
            return true; // nobody created the topic yet: nothing is behind on it
        }
        let stored = match self
            .deps
            .runtime
            .block_on(self.deps.sink.stored_offsets(&self.topic))
        {
            Ok(s) => s,
            Err(_) => return false,
        };
        partitions.into_iter().all(|p| {
            match consumer.fetch_watermarks(&self.topic, p, Duration::from_secs(2)) {
                Ok((lo, hi)) => stored.get(&p).map_or(hi <= lo, |c| *c >= hi),
                Err(_) => false,
            }
        })
    }

    fn commit_to_kafka(&self, consumer: &BaseConsumer<TopicContext>, mode: CommitMode) {
        let offsets: Vec<(i32, i64)> = consumer.context().lock().kafka_commits.drain().collect();
        if offsets.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (p, o) in offsets {
            let _ = tpl.add_partition_offset(&self.topic, p, Offset::Offset(o));
        }
        let r: KafkaResult<()> = consumer.commit(&tpl, mode);
        if let Err(e) = r {
            debug!(topic = %self.topic, error = %e, "Kafka offset commit failed (lag tooling only).");
        }
    }

    /// Flushes every partial batch, closes the writers and waits for them (until the hard stop).
    fn drain(&self, consumer: &BaseConsumer<TopicContext>, ctl_rx: &std_mpsc::Receiver<Control>) {
        let handles: Vec<_> = {
            let mut sh = consumer.context().lock();
            sh.partitions
                .values_mut()
                .map(|st| {
                    seal(st);
                    for b in std::mem::take(&mut st.pending) {
                        // Blocking is right here: shutdown waits for the writer, which gives up
                        // (closing the channel) at the hard stop.
                        if st.writer.blocking_send(b).is_ok() {
                            st.in_flight += 1;
                        }
                    }
                    // Replace the sender so the writer sees the channel close after its queue.
                    let (dead, _) = mpsc::channel(1);
                    drop(std::mem::replace(&mut st.writer, dead));
                    std::mem::replace(&mut st.handle, self.deps.runtime.spawn(async {}))
                })
                .collect()
        };
        let hard = self.deps.hard_stop.clone();
        self.deps.runtime.block_on(async {
            tokio::select! {
                _ = futures_util::future::join_all(handles) => {}
                _ = hard.cancelled() => {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        });
        self.handle_control(consumer, ctl_rx);
    }
}

/// Seals the partition's current batch into its pending queue; the stored offset it will move to
/// becomes the next batch's expected value.
fn seal(st: &mut PartitionState) {
    let Some(mut b) = st.batch.take() else {
        return;
    };
    if b.is_empty() {
        return;
    }
    b.seal();
    st.expected = Some(b.next_offset());
    st.pending.push_back(b);
}

/// Hands pending batches to the writer without blocking; what does not fit stays pending.
fn offer(st: &mut PartitionState) {
    while let Some(b) = st.pending.pop_front() {
        match st.writer.try_send(b) {
            Ok(()) => st.in_flight += 1,
            Err(mpsc::error::TrySendError::Full(b)) => {
                st.pending.push_front(b);
                return;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}
