//! One topic's consumer thread: poll, decode, validate, encode, batch, hand to writers; plus the
//! rebalance callback that seeds each assigned partition from the stored offset.

use super::offsets::{self, Gate, Held};
use super::partition::{run_writer, Control, PartitionState, RegistryWait};
use crate::batch::{Batch, MemoryBudget, Quarantined};
use crate::config::Settings;
use crate::decode::{DecodeError, Decoder, Registry};
use crate::records::{Ctx, FamilySpec};
use crate::retry::Backoff;
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
    /// Tells the enrichment relay which partition committed a batch (`None`: no family has events
    /// on; a family without them is filtered by the relay).
    pub enrich: Option<crate::enrich::EnrichHook>,
    /// Memory all batches of the process may hold (`batch.max_in_flight_bytes`).
    pub budget: Arc<MemoryBudget>,
    /// This consumer's per-partition share of `kafka.prefetch_bytes`.
    pub prefetch: super::Prefetch,
}

/// A topic worker's progress, read by the idle-exit check.
#[derive(Debug, Default)]
pub struct TopicProgress {
    /// Every partition is written up to its high watermark, nothing is pending, and no partition
    /// is stopped on an offset gap.
    pub caught_up: AtomicBool,
    /// Every partition is written up to its high watermark except the ones in `stopped`: once
    /// nothing else is left, `run --exit-when-idle` exits non-zero naming them.
    pub settled: AtomicBool,
    /// This worker's partitions stopped on an offset gap (`topic[p]: stored S, broker L..H (why)`).
    pub stopped: Mutex<Vec<String>>,
    /// When the last record arrived (ms since the Unix epoch).
    pub last_record_ms: AtomicU64,
    pub records: AtomicU64,
}

struct Shared {
    partitions: HashMap<i32, PartitionState>,
    next_epoch: u64,
    /// Latest committed offsets, mirrored to Kafka's group offsets for lag tooling.
    kafka_commits: HashMap<i32, i64>,
    /// Assigned partitions held back by the offset check (paused, no writer): stopped on an offset
    /// gap, or not checked yet. Not in `partitions`, so their messages are dropped unwritten.
    held: HashMap<i32, Held>,
    /// When the stored offsets of idle partitions were last compared with the worker's own.
    last_scan: Instant,
    /// A writer of a revoked partition panicked (found while waiting for it in the rebalance
    /// callback, which cannot return an error); the consumer loop stops the worker with it.
    writer_died: Option<String>,
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
                let held = self.on_assign(consumer, tpl);
                let r = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                // Held partitions fetch nothing (anything fetched before this is dropped: they have
                // no state in `partitions`).
                if r.is_ok() && held.count() > 0 {
                    if let Err(e) = consumer.pause(&held) {
                        error!(topic = %self.topic, error = %e, "Cannot pause held partitions.");
                    }
                }
                r
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

    /// Seeds each newly assigned partition from `consumed_offsets`, checks that offset against the
    /// broker's watermarks (bounded by [`offsets::callback_budget`]) and starts its writer, or holds
    /// the partition (see [`offsets`]). Returns the held partitions, to be paused once assigned.
    fn on_assign(
        &self,
        consumer: &BaseConsumer<Self>,
        tpl: &mut TopicPartitionList,
    ) -> TopicPartitionList {
        let deadline =
            Instant::now() + offsets::callback_budget(self.deps.settings.kafka.session_timeout);
        let mut held = TopicPartitionList::new();
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
            let budget = deadline.saturating_duration_since(Instant::now());
            let start = match offsets::gate(consumer, &self.deps, &self.topic, p, stored, budget) {
                Gate::Start(start) => start,
                Gate::Hold(h) => {
                    offsets::log_hold(&self.topic, p, &h);
                    // The end: the partition is paused right after, and seeks to its stored offset
                    // before it resumes, so this position is never consumed from.
                    if let Err(e) = tpl.set_partition_offset(&self.topic, p, Offset::End) {
                        error!(topic = %self.topic, partition = p, error = %e, "Cannot set the start offset.");
                    }
                    held.add_partition(&self.topic, p);
                    self.lock().held.insert(p, h);
                    continue;
                }
            };
            let offset = start.map(Offset::Offset).unwrap_or(Offset::Beginning);
            if let Err(e) = tpl.set_partition_offset(&self.topic, p, offset) {
                error!(topic = %self.topic, partition = p, error = %e, "Cannot set the start offset.");
            }
            self.start_partition(p, start);
        }
        held
    }

    /// Starts a partition's writer and state at `stored` (`None`: from the beginning).
    fn start_partition(&self, p: i32, stored: Option<i64>) {
        {
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
                self.deps.enrich.clone(),
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
                    registry_wait: None,
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
                sh.held.remove(p);
                if let Some(st) = sh.partitions.remove(p) {
                    st.revoked.cancel();
                    handles.push(st.handle);
                    info!(topic = %self.topic, partition = p, "Revoked a partition.");
                }
            }
        }
        if !handles.is_empty() {
            let wait = self.deps.settings.kafka.session_timeout / 3;
            let ended = self.deps.runtime.block_on(async move {
                tokio::time::timeout(wait, futures_util::future::join_all(handles)).await
            });
            for e in ended.into_iter().flatten().filter_map(Result::err) {
                if e.is_panic() {
                    let why = crate::run::join_error_message(e);
                    error!(topic = %self.topic, cause = %why, "The writer of a revoked partition panicked.");
                    self.lock().writer_died.get_or_insert(why);
                }
            }
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
                held: HashMap::new(),
                last_scan: Instant::now(),
                writer_died: None,
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
        let mut last_offset_check = Instant::now();
        let mut last_record = Instant::now();
        let mut polls_empty = 0u32;
        // Why this thread stops the worker, if it does: a writer died, or a configuration error
        // that neither a retry nor quarantine can fix.
        let mut fatal: Option<anyhow::Error> = None;
        while !self.deps.stop.is_cancelled() {
            self.handle_control(&consumer, &ctl_rx);
            if let Err(e) = self.check_writers(&consumer) {
                fatal = Some(e);
                break;
            }
            let now = Instant::now();
            let timeout = self
                .next_deadline(&consumer)
                .map(|d| d.saturating_duration_since(now))
                .unwrap_or(Duration::from_millis(100))
                .min(Duration::from_millis(100));
            match consumer.poll(timeout) {
                Some(Ok(m)) => {
                    vctx.now = chrono::Utc::now();
                    if let Err(e) = self.on_message(&consumer, &m, &vctx) {
                        fatal = Some(e);
                        break;
                    }
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
            if last_offset_check.elapsed() >= Duration::from_millis(500) {
                self.check_offsets(&consumer);
                last_offset_check = Instant::now();
            }
            if polls_empty > 0
                && last_record.elapsed() >= Duration::from_millis(300)
                && last_check.elapsed() >= Duration::from_millis(500)
            {
                self.publish_idle_state(&consumer);
                last_check = Instant::now();
            }
        }
        let drained = self.drain(&consumer, &ctl_rx);
        self.commit_to_kafka(&consumer, CommitMode::Sync);
        info!(topic = %self.topic, "Stopped consuming.");
        match fatal {
            Some(e) => Err(e),
            None => drained,
        }
    }

    /// Observes the partitions' writers. A writer that ended while its partition is still owned and
    /// the worker is not stopping died (a panic, or a bug that made it return): its partition would
    /// go on being consumed and never written. Crash-only: stop the worker with an error naming the
    /// partition. Nothing is lost: its stored offset never moved past what was committed, and the
    /// supervisor's restart re-reads the rest.
    ///
    /// # Errors
    /// A writer died; the error says which and why.
    fn check_writers(&self, consumer: &BaseConsumer<TopicContext>) -> anyhow::Result<()> {
        let dead = {
            let mut sh = consumer.context().lock();
            if let Some(why) = sh.writer_died.take() {
                anyhow::bail!("a partition writer of {} panicked: {why}", self.topic);
            }
            sh.partitions
                .iter_mut()
                .find(|(_, st)| st.handle.is_finished())
                .map(|(p, st)| {
                    let done = self.deps.runtime.spawn(async {});
                    (*p, std::mem::replace(&mut st.handle, done))
                })
        };
        let Some((partition, handle)) = dead else {
            return Ok(());
        };
        let why = match self.deps.runtime.block_on(handle) {
            Ok(()) => "it returned while its partition was still assigned".to_owned(),
            Err(e) => crate::run::join_error_message(e),
        };
        error!(topic = %self.topic, partition, cause = %why,
            "The writer of a partition died; stopping the worker (nothing is lost: its unwritten records are re-read after restart).");
        anyhow::bail!("the writer of {}[{partition}] died: {why}", self.topic)
    }

    /// Decodes, validates and batches one message.
    ///
    /// # Errors
    /// A configuration error no retry or quarantine can fix (the schema registry refuses our
    /// credentials): the record is left unconsumed and the worker stops.
    fn on_message(
        &self,
        consumer: &BaseConsumer<TopicContext>,
        m: &BorrowedMessage<'_>,
        vctx: &Ctx,
    ) -> anyhow::Result<()> {
        let p = m.partition();
        let offset = m.offset();
        let ctx = consumer.context();
        let mut sh = ctx.lock();
        let Some(st) = sh.partitions.get_mut(&p) else {
            return Ok(());
        };
        if st.position.is_some_and(|pos| offset < pos) {
            return Ok(()); // fetched before a seek; already written
        }
        if let Some(w) = &st.registry_wait {
            if w.holds() {
                // Fetched before the pause took effect: it is re-read once the partition resumes.
                return Ok(());
            }
            if offset > w.offset && !self.record_is_gone(consumer, p, w.offset) {
                // The resumed partition skipped the record it waits for (the seek did not take
                // effect): go back to it rather than lose it.
                warn!(topic = %self.topic, partition = p, offset, waiting_for = w.offset,
                    "A resumed partition skipped the record it waits for; seeking back to it.");
                let waiting_for = w.offset;
                self.wait_for_registry(consumer, p, st, waiting_for, None);
                return Ok(());
            }
        }
        // Offsets jumped forward inside the stream: librdkafka found the next offset out of range
        // and reset to the earliest one (auto.offset.reset), because retention deleted records
        // this worker had not read yet. A jump of one is a transaction's commit marker; larger ones
        // can also be aborted transactions, so ask the broker before holding the partition.
        if let Some(pos) = st.position {
            if offset > pos + 1 && st.registry_wait.is_none() {
                drop(sh);
                let lost = match consumer.fetch_watermarks(&self.topic, p, Duration::from_secs(2)) {
                    Ok((low, _)) if low > pos => Some(format!(
                        "records {pos}..{low} were removed by retention before this worker read them"
                    )),
                    Ok(_) => None,
                    Err(e) => Some(format!(
                        "offsets jumped from {pos} to {offset} and the broker's low offset could not be read: {e}"
                    )),
                };
                if let Some(why) = lost {
                    // The offset check then compares the stored offset with the broker's range and
                    // stops the partition (or resets it, per kafka.on_offset_gap), as at assignment.
                    self.hold_running(
                        consumer,
                        p,
                        Held {
                            reason: offsets::HoldReason::Unchecked(why),
                            next_check: Instant::now(),
                        },
                    );
                    return Ok(());
                }
                return self.on_message_checked(consumer, m, vctx);
            }
        }
        self.decode_and_batch(consumer, m, vctx, p, offset, &mut sh)
    }

    /// [`TopicWorker::on_message`] after a jump the broker explained.
    fn on_message_checked(
        &self,
        consumer: &BaseConsumer<TopicContext>,
        m: &BorrowedMessage<'_>,
        vctx: &Ctx,
    ) -> anyhow::Result<()> {
        let mut sh = consumer.context().lock();
        self.decode_and_batch(consumer, m, vctx, m.partition(), m.offset(), &mut sh)
    }

    fn decode_and_batch(
        &self,
        consumer: &BaseConsumer<TopicContext>,
        m: &BorrowedMessage<'_>,
        vctx: &Ctx,
        p: i32,
        offset: i64,
        sh: &mut MutexGuard<'_, Shared>,
    ) -> anyhow::Result<()> {
        let Some(st) = sh.partitions.get_mut(&p) else {
            return Ok(());
        };
        // A tombstone (no value at all) on a topic whose family has deletes names a row to delete
        // by its key; elsewhere a payload-less record decodes as empty, like a zero-length one.
        let tombstone = m.payload().is_none() && self.family.delete_key.is_some();
        let bytes = m.payload().unwrap_or_default();
        let decoded = if tombstone {
            Ok(None)
        } else {
            self.decoder.decode(bytes).map(Some)
        };
        let decoded = match decoded {
            Err(e) if e.is_retriable() => {
                self.wait_for_registry(consumer, p, st, offset, Some(&e));
                return Ok(());
            }
            Err(e) if e.is_fatal() => {
                st.position = Some(offset);
                error!(topic = %self.topic, partition = p, offset, error = %e,
                    "Stopping the worker: a configuration error that neither a retry nor quarantine can fix.");
                return Err(anyhow::Error::new(e));
            }
            other => other,
        };
        if let Some(w) = st.registry_wait.take() {
            info!(topic = %self.topic, partition = p, offset, attempts = w.backoff.attempts(),
                "The schema registry answers again; the partition goes on.");
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
        let lineage = Lineage {
            topic: &self.topic,
            partition: p,
            offset,
            timestamp: ts_ms.and_then(chrono::DateTime::from_timestamp_millis),
        };
        match decoded {
            Ok(None) => match self.family.delete_key.map(|parse| parse(m.key())) {
                Some(Ok(_)) => batch.push_delete(offset, m.key(), ts_ms),
                Some(Err(message)) => batch.push_quarantined(quarantine(
                    "validate",
                    crate::records::UNKNOWN_TARGET,
                    format!(
                        "the tombstone's key names no {} row: {message}",
                        self.family.name
                    ),
                )),
                None => batch.push_quarantined(quarantine(
                    "decode",
                    "empty_payload",
                    "the record is empty (no payload)".into(),
                )),
            },
            Ok(Some(payload)) => {
                match (self.family.process)(payload, vctx, &lineage, &mut batch.staged) {
                    Ok(()) => batch.push_valid(offset, m.key(), bytes, ts_ms),
                    Err(e) => {
                        batch.push_quarantined(quarantine(e.stage(), e.reason(), e.to_string()))
                    }
                }
            }
            Err(e) => {
                debug!(topic = %self.topic, partition = p, offset, error = %e, "Quarantining an undecodable record.");
                batch.push_quarantined(quarantine("decode", e.reason(), e.to_string()));
            }
        }
        self.send_if_full(st);
        Ok(())
    }

    /// Holds the partition back at `offset` until the schema registry may answer again (see
    /// [`RegistryWait`]): what was batched before the record is sealed for the writer, the
    /// partition's position goes back to the record, the consumer seeks there and pauses the
    /// partition until a jittered exponential backoff expires ([`TopicWorker::flush_due`] resumes
    /// it). Nothing is quarantined and the thread never sleeps.
    fn wait_for_registry(
        &self,
        consumer: &BaseConsumer<TopicContext>,
        p: i32,
        st: &mut PartitionState,
        offset: i64,
        error: Option<&DecodeError>,
    ) {
        st.position = Some(offset);
        seal(st);
        offer(st);
        let d = &self.deps.settings.decode;
        let wait = st.registry_wait.get_or_insert_with(|| RegistryWait {
            offset,
            retry_at: None,
            backoff: Backoff::new(
                d.schema_registry_retry_initial_backoff,
                d.schema_registry_retry_max_backoff,
            ),
        });
        wait.offset = offset;
        let delay = wait.backoff.next_delay();
        wait.retry_at = Some(Instant::now() + delay);
        if let Some(error) = error {
            warn!(topic = %self.topic, partition = p, offset, %error, attempts = wait.backoff.attempts(),
                retry_in = ?delay, "Cannot decode a record while the schema registry is unavailable; pausing its partition and retrying.");
        }
        // Seek before pausing: a seek resets librdkafka's resume position, so the partition
        // re-fetches from this record (not from the message after it) when it resumes.
        if let Err(e) = consumer.seek(
            &self.topic,
            p,
            Offset::Offset(offset),
            Duration::from_secs(10),
        ) {
            error!(topic = %self.topic, partition = p, offset, error = %e,
                "Cannot seek back to a record waiting for the schema registry; it is re-checked on resume.");
        }
        if !st.paused {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&self.topic, p);
            match consumer.pause(&tpl) {
                Ok(()) => st.paused = true,
                Err(e) => {
                    warn!(topic = %self.topic, partition = p, error = %e, "Cannot pause a partition.")
                }
            }
        }
    }

    /// Whether the record at `offset` no longer exists in Kafka (retention or a truncation removed
    /// it while its partition waited): then there is nothing to go back to.
    fn record_is_gone(&self, consumer: &BaseConsumer<TopicContext>, p: i32, offset: i64) -> bool {
        consumer
            .fetch_watermarks(&self.topic, p, Duration::from_secs(2))
            .is_ok_and(|(low, _)| low > offset)
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
        let sh = consumer.context().lock();
        let batches = sh
            .partitions
            .values()
            .filter_map(|st| st.batch.as_ref().map(|b| b.deadline(linger)));
        let retries = sh
            .partitions
            .values()
            .filter_map(|st| st.registry_wait.as_ref().and_then(|w| w.retry_at));
        batches.chain(retries).min()
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
            // A partition waiting for the schema registry resumes when its backoff is over (and
            // re-fetches from the record that waits), unless backpressure holds it too.
            let mut registry_hold = false;
            if let Some(w) = st.registry_wait.as_mut() {
                if w.retry_at.is_some_and(|at| at <= now) {
                    w.retry_at = None;
                }
                registry_hold = w.holds();
            }
            // While batches wait for the writer, let the current one grow to full size instead of
            // cutting more small ones.
            if st.pending.is_empty() && st.batch.as_ref().is_some_and(|b| b.deadline(linger) <= now)
            {
                seal(st);
            }
            offer(st);
            let hold = !st.pending.is_empty() || budget_exhausted || registry_hold;
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
                in_flight_bytes = self.deps.budget.used(), "Pausing: the database is behind or the schema registry is unavailable.");
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
                    // The seek below re-reads from the stored offset anyway; flush_due resumes the
                    // partition if nothing else holds it.
                    st.registry_wait = None;
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

    /// Publishes the idle check's outcome to [`TopicProgress`].
    fn publish_idle_state(&self, consumer: &BaseConsumer<TopicContext>) {
        let stopped: Vec<String> = {
            let sh = consumer.context().lock();
            let mut v: Vec<(i32, String)> = sh
                .held
                .iter()
                .filter(|(_, h)| h.is_gap())
                .map(|(p, h)| (*p, h.describe(&self.topic, *p)))
                .collect();
            v.sort();
            v.into_iter().map(|(_, d)| d).collect()
        };
        let settled = self.is_caught_up(consumer);
        self.progress
            .caught_up
            .store(settled && stopped.is_empty(), Ordering::Relaxed);
        self.progress.settled.store(settled, Ordering::Relaxed);
        *self
            .progress
            .stopped
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = stopped;
    }

    /// Whether the whole group is done with this topic: nothing pending here, and for every
    /// partition of the topic (owned by this worker or not) the offset stored in PostgreSQL equals
    /// the high watermark. Asking the database rather than this worker's assignment matters:
    /// right after a restart the group may not have handed this worker its partitions yet, and an
    /// empty assignment is not the same as being done. A stored offset above the high watermark
    /// (a recreated topic) or below the low one is not done; partitions this worker stopped on such
    /// a gap are left out here and reported apart ([`TopicProgress::stopped`]), while any it holds
    /// unchecked count as not done.
    fn is_caught_up(&self, consumer: &BaseConsumer<TopicContext>) -> bool {
        let stopped: Vec<i32> = {
            let sh = consumer.context().lock();
            if sh.partitions.values().any(|st| {
                st.batch.is_some()
                    || !st.pending.is_empty()
                    || st.in_flight > 0
                    || st.registry_wait.is_some()
            }) || sh.held.values().any(|h| !h.is_gap())
            {
                return false;
            }
            sh.held.keys().copied().collect()
        };
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
        partitions
            .into_iter()
            .filter(|p| !stopped.contains(p))
            .all(
                |p| match consumer.fetch_watermarks(&self.topic, p, Duration::from_secs(2)) {
                    Ok((lo, hi)) => stored.get(&p).map_or(hi <= lo, |c| *c == hi),
                    Err(_) => false,
                },
            )
    }

    /// The periodic offset check, on the consumer thread (so no rebalance or batch moves a
    /// partition meanwhile): re-checks held partitions that are due and starts those whose stored
    /// offset is valid again (an operator's reset), and every `kafka.offset_check_interval`
    /// compares idle partitions' stored offsets with the worker's own, so that a reset of a
    /// partition that receives nothing new is noticed (a busy partition notices on its next batch,
    /// whose compare-and-set fails).
    fn check_offsets(&self, consumer: &BaseConsumer<TopicContext>) {
        let ctx = consumer.context();
        let now = Instant::now();
        // Broker round trips block this thread (no polling meanwhile): bound them per pass.
        let deadline = now + offsets::CHECK_TIMEOUT;
        let due: Vec<(i32, Held)> = ctx
            .lock()
            .held
            .iter()
            .filter(|(_, h)| h.next_check <= now)
            .map(|(p, h)| (*p, h.clone()))
            .collect();
        for (p, old) in due {
            let stored = self.deps.runtime.block_on(self.deps.sink.stored_offset(
                &self.topic,
                p,
                &self.deps.hard_stop,
            ));
            let gate = match stored {
                Ok(stored) => offsets::gate(
                    consumer,
                    &self.deps,
                    &self.topic,
                    p,
                    stored,
                    deadline.saturating_duration_since(Instant::now()),
                ),
                Err(e) => Gate::Hold(Held {
                    reason: offsets::HoldReason::Unchecked(format!(
                        "cannot read the stored offset: {e}"
                    )),
                    next_check: Instant::now() + self.deps.settings.kafka.offset_check_interval,
                }),
            };
            match gate {
                Gate::Start(start) => self.resume_held(consumer, p, start),
                Gate::Hold(h) => {
                    if h.reason != old.reason {
                        offsets::log_hold(&self.topic, p, &h);
                    }
                    if let Some(e) = ctx.lock().held.get_mut(&p) {
                        *e = h;
                    }
                }
            }
        }

        let interval = self.deps.settings.kafka.offset_check_interval;
        let idle: Vec<(i32, u64, Option<i64>)> = {
            let mut sh = ctx.lock();
            if sh.last_scan.elapsed() < interval {
                return;
            }
            sh.last_scan = Instant::now();
            sh.partitions
                .iter()
                .filter(|(_, st)| st.batch.is_none() && st.pending.is_empty() && st.in_flight == 0)
                .map(|(p, st)| (*p, st.epoch, st.committed))
                .collect()
        };
        if idle.is_empty() {
            return;
        }
        let stored = match self
            .deps
            .runtime
            .block_on(self.deps.sink.stored_offsets(&self.topic))
        {
            Ok(s) => s,
            Err(e) => {
                debug!(topic = %self.topic, error = %e, "Cannot read stored offsets for the offset check; trying again later.");
                return;
            }
        };
        for (p, epoch, committed) in idle {
            let now_stored = stored.get(&p).copied();
            if now_stored != committed {
                // Nothing of ours is in flight (and nothing could start while this thread was
                // here), so someone else moved it: an operator's reset, or a zombie writer.
                info!(topic = %self.topic, partition = p, ours = ?committed, stored = ?now_stored,
                    "The stored offset of an idle partition changed outside this worker (an offset reset?); seeking there.");
            }
            // Also against the broker: under a topic recreated while this worker runs, librdkafka
            // restarts the fetch at the new beginning, below the partition's position, so every
            // new record is dropped as a leftover and the partition sits idle at an offset above
            // the end. (`auto.offset.reset = error` would stop that fetch instead, but a partition
            // stopped that way refuses seeks until it is assigned again.)
            let budget = deadline.saturating_duration_since(Instant::now());
            match offsets::gate(consumer, &self.deps, &self.topic, p, now_stored, budget) {
                // The same path as a fenced batch: drop what is held, seek to the stored offset.
                Gate::Start(start) if start != committed => {
                    let _ = ctx.ctl_tx.send(Control::Fenced {
                        partition: p,
                        epoch,
                        stored: start,
                    });
                }
                Gate::Start(_) => {}
                Gate::Hold(h) if h.is_gap() => self.hold_running(consumer, p, h),
                // The broker did not answer in time: a running partition keeps running.
                Gate::Hold(_) => {}
            }
        }
    }

    /// Starts a held partition whose stored offset checked out: seek there, start its writer,
    /// resume fetching. A failed seek leaves it held (tried again shortly).
    fn resume_held(&self, consumer: &BaseConsumer<TopicContext>, p: i32, start: Option<i64>) {
        let ctx = consumer.context();
        let to = start.map(Offset::Offset).unwrap_or(Offset::Beginning);
        if let Err(e) = consumer.seek(&self.topic, p, to, Duration::from_secs(10)) {
            warn!(topic = %self.topic, partition = p, error = %e, "Cannot seek a held partition to its stored offset; trying again shortly.");
            if let Some(h) = ctx.lock().held.get_mut(&p) {
                h.next_check = Instant::now() + Duration::from_secs(1);
            }
            return;
        }
        if ctx.lock().held.remove(&p).is_none() {
            return;
        }
        ctx.start_partition(p, start);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.topic, p);
        if let Err(e) = consumer.resume(&tpl) {
            error!(topic = %self.topic, partition = p, error = %e, "Cannot resume a partition.");
        }
        info!(topic = %self.topic, partition = p, stored = ?start,
            "Resumed a partition stopped on an offset gap: its stored offset is valid again.");
    }

    /// Stops a running idle partition whose stored offset was moved outside the broker's range:
    /// its writer ends (it has nothing queued), the partition is paused and held.
    fn hold_running(&self, consumer: &BaseConsumer<TopicContext>, p: i32, h: Held) {
        offsets::log_hold(&self.topic, p, &h);
        let mut sh = consumer.context().lock();
        if let Some(st) = sh.partitions.remove(&p) {
            st.revoked.cancel();
        }
        sh.kafka_commits.remove(&p);
        sh.held.insert(p, h);
        drop(sh);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.topic, p);
        if let Err(e) = consumer.pause(&tpl) {
            error!(topic = %self.topic, partition = p, error = %e, "Cannot pause a held partition.");
        }
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
    ///
    /// # Errors
    /// A writer panicked (its partition's unwritten records are re-read after restart).
    fn drain(
        &self,
        consumer: &BaseConsumer<TopicContext>,
        ctl_rx: &std_mpsc::Receiver<Control>,
    ) -> anyhow::Result<()> {
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
        let ended = self.deps.runtime.block_on(async {
            tokio::select! {
                ended = futures_util::future::join_all(handles) => ended,
                _ = hard.cancelled() => {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    Vec::new()
                }
            }
        });
        self.handle_control(consumer, ctl_rx);
        for e in ended.into_iter().filter_map(Result::err) {
            if e.is_panic() {
                let why = crate::run::join_error_message(e);
                error!(topic = %self.topic, cause = %why, "A partition writer panicked while draining.");
                anyhow::bail!("a partition writer of {} panicked: {why}", self.topic);
            }
        }
        Ok(())
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

/// Hands pending batches to the writer without blocking; what does not fit stays pending. A closed
/// channel means the writer died: the batch stays pending (never dropped) and
/// [`TopicWorker::check_writers`] stops the worker.
fn offer(st: &mut PartitionState) {
    while let Some(b) = st.pending.pop_front() {
        match st.writer.try_send(b) {
            Ok(()) => st.in_flight += 1,
            Err(mpsc::error::TrySendError::Full(b)) => {
                st.pending.push_front(b);
                return;
            }
            Err(mpsc::error::TrySendError::Closed(b)) => {
                st.pending.push_front(b);
                return;
            }
        }
    }
}
