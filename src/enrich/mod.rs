//! Enrichment events: after a batch commits, its rows are published to `<topic>.enriched` for the
//! ML services, with deterministic ids, in commit order per partition.
//!
//! # Delivery
//! No outbox of payloads: the committed rows and the batch's audit row (`ingest_batches`, written
//! in the batch's transaction) are the source of truth. The relay reads back exactly the rows a
//! batch wrote (they carry `ingested_at` = the batch's `started_at`), produces one event per row,
//! and moves the partition's cursor (`enrichment_cursor`) past the batches whose events the broker
//! all acknowledged, in the transaction that locked the cursor. Hence:
//! - a rolled-back batch has no audit row and no rows: it never yields an event;
//! - a committed batch always does, also when the worker dies between the commit and the publish:
//!   the cursor did not move, the next relay (this worker restarted, or another) sends them;
//! - a crash after the acknowledgement and before the cursor's commit repeats at most
//!   `enrichment.max_batches_per_pass` batches of one partition, with the same event ids, so
//!   consumers drop them.
//!
//! # Layout
//! - [`event`]: a row as an event (JSON or Avro single-object), its id, the Avro contract.
//! - [`handover`]: the rows of a direct COPY, passed from the writer after its commit, so the
//!   hot path reads nothing back.
//! - [`relay`]: cursors, reading rows back (or taking them handed over), producing, advancing.

pub mod event;
pub mod handover;
pub mod relay;

pub use relay::{EnrichHook, EnrichRelay};

use crate::config::Settings;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{ProducerContext, ThreadedProducer};
use rdkafka::ClientConfig;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The largest event the enrichment topics take (`max.message.bytes` set when the worker creates
/// them): an article of the largest body the decoder accepts, JSON-escaped, with its entities.
pub const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    #[error("{0}")]
    Config(String),
    #[error("the broker did not acknowledge an event: {0}")]
    Produce(#[source] KafkaError),
    #[error("Kafka client error: {0}")]
    Client(#[source] KafkaError),
    #[error("cannot create the enrichment topic {topic}: {code}")]
    CreateTopic {
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error("database error: {}", crate::sink::describe(.0))]
    Database(#[from] tokio_postgres::Error),
    #[error("no database connection: {}", crate::sink::chain(.0))]
    Pool(#[from] deadpool_postgres::PoolError),
}

impl EnrichError {
    /// Whether a later attempt can succeed (the relay retries every error with backoff; this says
    /// which ones to log as needing an operator).
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Config(_) | Self::CreateTopic { .. } => false,
            Self::Produce(e) | Self::Client(e) => !matches!(
                e.rdkafka_error_code(),
                Some(
                    RDKafkaErrorCode::TopicAuthorizationFailed
                        | RDKafkaErrorCode::ClusterAuthorizationFailed
                        | RDKafkaErrorCode::InvalidRecord
                )
            ),
            Self::Database(_) | Self::Pool(_) => true,
        }
    }
}

/// The broker's refusals of one pass's events. Success is not reported per event
/// (`delivery.report.only.error`): a report, a channel and a task per event were most of the
/// relay's CPU at ingest rate. The relay waits until librdkafka holds nothing of the pass
/// (`in_flight_count` 0: every event acknowledged or refused and its report served), then asks
/// for the first refused batch.
#[derive(Default)]
pub struct Acks {
    /// Per pass running at once (its slot), the lowest batch index with a refused event, and why.
    first_failed: Mutex<std::collections::HashMap<usize, (usize, KafkaError)>>,
}

/// Bits of an event's opaque that hold its batch's index within the pass; the rest is the slot.
const BATCH_BITS: u32 = 24;

impl Acks {
    /// The opaque of an event of batch `batch` of the pass in `slot`.
    pub fn opaque(slot: usize, batch: usize) -> usize {
        (slot << BATCH_BITS) | batch
    }

    /// An event refused (by the broker, or by librdkafka before it was queued).
    pub fn refused(&self, opaque: usize, e: KafkaError) {
        let (slot, batch) = (opaque >> BATCH_BITS, opaque & ((1 << BATCH_BITS) - 1));
        let mut f = self.first_failed.lock().unwrap_or_else(|p| p.into_inner());
        match f.get(&slot) {
            Some((b, _)) if *b <= batch => {}
            _ => {
                f.insert(slot, (batch, e));
            }
        }
    }

    /// The first refused batch of the pass in `slot` since the last call.
    pub fn take(&self, slot: usize) -> Option<(usize, KafkaError)> {
        self.first_failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&slot)
    }
}

/// The producer's context: a refusal's report names its event's batch (the opaque, a plain
/// integer: nothing to free for the reports that never come).
pub struct AckContext(pub Arc<Acks>);

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, r: &DeliveryResult<'_>, opaque: usize) {
        if let Err((e, _)) = r {
            self.0.refused(opaque, e.clone());
        }
    }
}

pub type EventProducer = ThreadedProducer<AckContext>;

/// The enrichment producer: idempotent and acks=all (an acknowledged event is on every in-sync
/// replica before the cursor moves), compressed (`enrichment.compression`), lingering a little
/// so events travel in large batches.
///
/// # Errors
/// Invalid Kafka settings.
pub fn producer(s: &Settings, acks: Arc<Acks>) -> Result<EventProducer, EnrichError> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &s.kafka.brokers)
        .set("client.id", "esurio-enrich")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", &s.enrichment.compression)
        // Measured on the bench (2M events): 5 ms cost the worker ~1 s and the broker ~0.7 s
        // more CPU than 20 (smaller requests); 50 was no better than 20. A 100 kB batch.size
        // (below glibc's fixed mmap threshold) cost more than it saved.
        .set("linger.ms", "20")
        .set("delivery.report.only.error", "true")
        // Java clients' partitioner: a key lands on the same partition whichever client
        // produced it (and murmur2 is cheaper than the default's CRC32).
        .set("partitioner", "murmur2_random")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "500000")
        .set("message.timeout.ms", "30000")
        .set("message.max.bytes", MAX_EVENT_BYTES.to_string());
    for (k, v) in &s.kafka.librdkafka {
        c.set(k, v);
    }
    c.create_with_context(AckContext(acks))
        .map_err(EnrichError::Client)
}

/// Creates the enrichment topic of every family with events on (`enrichment.partitions`,
/// `enrichment.replication_factor`, `max.message.bytes` = [`MAX_EVENT_BYTES`]); an existing one is
/// left as it is.
///
/// # Errors
/// The broker is unreachable or refuses to create a topic.
pub async fn create_topics(s: &Settings) -> Result<(), EnrichError> {
    if s.enrichment.families.is_empty() {
        return Ok(());
    }
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &s.kafka.brokers)
        .set("client.id", "esurio-enrich-admin");
    for (k, v) in &s.kafka.librdkafka {
        c.set(k, v);
    }
    let admin: AdminClient<DefaultClientContext> = c.create().map_err(EnrichError::Client)?;
    let names: Vec<String> = s
        .enrichment
        .families
        .iter()
        .map(|f| format!("{}{}", s.topic(f), s.enrichment.topic_suffix))
        .collect();
    let max = MAX_EVENT_BYTES.to_string();
    let new: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| {
            NewTopic::new(
                n,
                s.enrichment.partitions,
                TopicReplication::Fixed(s.enrichment.replication_factor),
            )
            .set("max.message.bytes", &max)
        })
        .collect();
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(30)))
        .request_timeout(Some(Duration::from_secs(30)));
    for r in admin
        .create_topics(&new, &opts)
        .await
        .map_err(EnrichError::Client)?
    {
        match r {
            Ok(name) => {
                tracing::info!(topic = %name, partitions = s.enrichment.partitions, "Created an enrichment topic.")
            }
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(EnrichError::CreateTopic { topic, code }),
        }
    }
    Ok(())
}
