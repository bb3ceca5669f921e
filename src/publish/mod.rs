//! Publishing after commit. Today: the dead-letter relay. Enrichment events will use the same shape
//! (a table written in the batch's transaction, relayed to Kafka after commit).
//!
//! The relay reads quarantine rows not yet published (`FOR UPDATE SKIP LOCKED`, so several workers
//! can relay at once), produces each to `<source topic><dlq_suffix>` with the reason in headers, waits
//! for the broker's acknowledgements, then marks the rows published in the same transaction. A crash
//! between the acknowledgement and the commit republishes those rows: at-least-once, and the headers
//! carry the source coordinates so consumers can deduplicate.

use anyhow::Context;
use deadpool_postgres::Pool;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

const CLAIM: &str = include_str!("../../sql/sink/dlq_claim.sql");
const MARK: &str = include_str!("../../sql/sink/dlq_mark.sql");
const BATCH: i64 = 500;

/// Builds the dead-letter producer (idempotent, acks=all).
///
/// # Errors
/// Invalid Kafka settings.
pub fn producer(s: &crate::config::KafkaSettings) -> anyhow::Result<FutureProducer> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &s.brokers)
        .set("client.id", "esurio-dlq")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "30000")
        .set("message.max.bytes", "16777216");
    for (k, v) in &s.librdkafka {
        c.set(k, v);
    }
    c.create().context("cannot create the dead-letter producer")
}

pub struct DlqRelay {
    pub pool: Pool,
    pub producer: FutureProducer,
    pub suffix: String,
    pub notify: Arc<Notify>,
}

impl DlqRelay {
    /// Relays until `stop`, then makes one last pass (bounded by `hard_stop`).
    pub async fn run(self, stop: CancellationToken, hard_stop: CancellationToken) {
        let mut backoff = Duration::from_millis(200);
        loop {
            let stopping = stop.is_cancelled();
            match self.pass().await {
                Ok(n) => {
                    backoff = Duration::from_millis(200);
                    if n > 0 {
                        continue; // more may be waiting
                    }
                }
                Err(e) => {
                    warn!(error = %format!("{e:#}"), ?backoff, "Failed to relay quarantined records to the dead-letter topics; retrying.");
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

    /// Publishes one claimed set of rows; returns how many.
    async fn pass(&self) -> anyhow::Result<usize> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let rows = tx.query(CLAIM, &[&BATCH]).await?;
        if rows.is_empty() {
            return Ok(0);
        }
        struct Dead {
            id: i64,
            dlq: String,
            key: Option<Vec<u8>>,
            payload: Option<Vec<u8>>,
            headers: OwnedHeaders,
        }
        let dead: Vec<Dead> = rows
            .iter()
            .map(|r| {
                let topic: String = r.get("source_topic");
                let partition: i32 = r.get("source_partition");
                let offset: i64 = r.get("source_offset");
                let stage: String = r.get("stage");
                let reason: String = r.get("reason");
                let message: String = r.get("message");
                let headers = [
                    ("esurio.reason", reason),
                    ("esurio.stage", stage),
                    ("esurio.message", message),
                    ("esurio.source.topic", topic.clone()),
                    ("esurio.source.partition", partition.to_string()),
                    ("esurio.source.offset", offset.to_string()),
                ]
                .iter()
                .fold(OwnedHeaders::new(), |h, (k, v)| {
                    h.insert(Header {
                        key: k,
                        value: Some(v.as_str()),
                    })
                });
                Dead {
                    id: r.get("id"),
                    dlq: format!("{topic}{}", self.suffix),
                    key: r.get("record_key"),
                    payload: r.get("payload"),
                    headers,
                }
            })
            .collect();
        let pending = dead.iter().map(|d| {
            let mut rec: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&d.dlq).headers(d.headers.clone());
            if let Some(k) = d.key.as_deref() {
                rec = rec.key(k);
            }
            if let Some(v) = d.payload.as_deref() {
                rec = rec.payload(v);
            }
            self.producer.send(rec, Duration::from_secs(30))
        });
        let ids: Vec<i64> = dead.iter().map(|d| d.id).collect();
        for f in futures_util::future::join_all(pending).await {
            f.map_err(|(e, _)| e)
                .context("the broker did not acknowledge a dead-letter record")?;
        }
        tx.execute(MARK, &[&ids]).await?;
        tx.commit().await?;
        info!(
            records = ids.len(),
            "Published quarantined records to dead-letter topics."
        );
        Ok(ids.len())
    }
}
