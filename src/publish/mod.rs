//! Publishing after commit. Today: the dead-letter relay. Enrichment events will use the same shape
//! (a table written in the batch's transaction, relayed to Kafka after commit).
//!
//! # Delivery
//! The quarantine table is the outbox and the authority; the `<topic><dlq_suffix>` copy is
//! at-least-once. The relay claims unpublished rows (`FOR UPDATE SKIP LOCKED`, so several workers
//! can relay at once), produces each to its dead-letter topic, and marks published exactly the
//! rows the broker acknowledged, in the claim's transaction. A row that fails stays unpublished
//! and is retried later with backoff, without holding up the others; an acknowledged row is never
//! sent again, except after a crash between the acknowledgement and the commit (the headers carry
//! the quarantine id and source coordinates, so consumers can deduplicate).
//!
//! # Layout
//! - [`record`]: a quarantine row as a message: headers, and the cut of a record too large for
//!   its dead-letter topic.
//! - [`topics`]: creating the dead-letter topics, reading a topic's size limit.
//! - [`relay`]: the loop: claim, produce, mark, back off.

pub mod record;
pub mod relay;
pub mod topics;

pub use relay::DlqRelay;
pub use topics::DlqTopics;

use crate::config::KafkaSettings;
use anyhow::Context;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureProducer;
use rdkafka::ClientConfig;

/// Why a quarantined record was not published (per record), or a pass failed (database).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the broker did not accept the record: {0}")]
    Produce(#[source] KafkaError),
    #[error("Kafka client error: {0}")]
    Client(#[source] KafkaError),
    #[error("cannot create the dead-letter topic {topic}: {code}")]
    CreateTopic {
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error(
        "the record does not fit in {limit} bytes even with an empty key and payload (its headers and framing take {headers})"
    )]
    HeadersDoNotFit { limit: usize, headers: usize },
    #[error("the broker did not report max.message.bytes of {0}")]
    NoTopicLimit(String),
    #[error("database error: {}", crate::sink::describe(.0))]
    Database(#[from] tokio_postgres::Error),
    #[error("no database connection: {}", crate::sink::chain(.0))]
    Pool(#[from] deadpool_postgres::PoolError),
}

/// Kafka errors a retry cannot fix: the record, the topic or our rights are wrong, not the moment.
const PERMANENT: &[RDKafkaErrorCode] = &[
    RDKafkaErrorCode::InvalidRecord,
    RDKafkaErrorCode::InvalidTopic,
    RDKafkaErrorCode::TopicAuthorizationFailed,
    RDKafkaErrorCode::ClusterAuthorizationFailed,
    RDKafkaErrorCode::InvalidRequiredAcks,
    RDKafkaErrorCode::UnsupportedForMessageFormat,
    RDKafkaErrorCode::PolicyViolation,
    RDKafkaErrorCode::InvalidPartitions,
    RDKafkaErrorCode::InvalidReplicationFactor,
    RDKafkaErrorCode::InvalidConfig,
];

impl PublishError {
    /// The Kafka error code, if any.
    pub fn code(&self) -> Option<RDKafkaErrorCode> {
        match self {
            Self::Produce(e) | Self::Client(e) => e.rdkafka_error_code(),
            Self::CreateTopic { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether a later attempt can succeed. A record the topic rejects as too large is retriable:
    /// the relay learns the topic's limit and sends it cut. One that cannot fit even cut is not.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::HeadersDoNotFit { .. } => false,
            _ => !self.code().is_some_and(|c| PERMANENT.contains(&c)),
        }
    }

    /// Whether the broker (or librdkafka) rejected the message for its size.
    pub fn is_too_large(&self) -> bool {
        matches!(self, Self::Produce(_))
            && self.code().is_some_and(|c| {
                matches!(
                    c,
                    RDKafkaErrorCode::MessageSizeTooLarge
                        | RDKafkaErrorCode::MessageBatchTooLarge
                        | RDKafkaErrorCode::InvalidMessageSize
                )
            })
    }

    /// Whether the broker refused the record for another record of its batch: sent alone, it
    /// will answer for itself.
    pub fn is_batch_neighbour(&self) -> bool {
        self.code() == Some(RDKafkaErrorCode::InvalidDifferentRecord)
    }

    /// Whether the dead-letter topic is missing (deleted while the worker runs): it is created
    /// again before the next attempt.
    pub fn is_unknown_topic(&self) -> bool {
        self.code().is_some_and(|c| {
            matches!(
                c,
                RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic
            )
        })
    }
}

/// Builds the dead-letter producer (idempotent, acks=all, uncompressed so that the size the
/// relay computes is the size the broker checks).
///
/// # Errors
/// Invalid Kafka settings.
pub fn producer(s: &KafkaSettings) -> anyhow::Result<FutureProducer> {
    // The relay cuts records to `dlq_max_message_bytes`; the producer's own limits must not be the
    // tighter ones (librdkafka would reject locally), and its batches must not exceed what one
    // message may be, or several small records would together exceed the topic's limit.
    let max = s.dlq_max_message_bytes.max(16 * 1024 * 1024);
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &s.brokers)
        .set("client.id", "esurio-dlq")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "none")
        .set("message.timeout.ms", "30000")
        .set("message.max.bytes", max.to_string())
        .set(
            "batch.size",
            s.dlq_max_message_bytes.min(1_000_000).to_string(),
        );
    for (k, v) in &s.librdkafka {
        c.set(k, v);
    }
    c.create().context("cannot create the dead-letter producer")
}

/// Creates the dead-letter topic of every consumed topic (`<topic><dlq_suffix>`), with
/// `kafka.dlq_partitions` and `kafka.dlq_replication_factor`; an existing one is left as it is.
///
/// # Errors
/// The broker is unreachable, or refuses to create a topic (e.g. a replication factor larger
/// than the cluster): one message naming every topic and the broker's reason.
pub async fn create_dlq_topics(s: &KafkaSettings, topics: &[String]) -> anyhow::Result<()> {
    let admin = DlqTopics::new(s)?;
    let names: Vec<String> = topics
        .iter()
        .map(|t| format!("{t}{}", s.dlq_suffix))
        .collect();
    let failed = admin
        .create(&names)
        .await
        .with_context(|| format!("cannot create the dead-letter topics on {}", s.brokers))?;
    if !failed.is_empty() {
        let list: Vec<String> = failed.iter().map(|(_, e)| e.to_string()).collect();
        anyhow::bail!(
            "{} (kafka.dlq_partitions = {}, kafka.dlq_replication_factor = {})",
            list.join("; "),
            s.dlq_partitions,
            s.dlq_replication_factor
        );
    }
    Ok(())
}
