//! The enrichment relay: per partition, in commit order, reads the rows each committed batch wrote,
//! produces their events, and moves the partition's cursor past the batches the broker
//! acknowledged, in the transaction that holds the cursor row.

use super::event::{cell, record_columns, BatchRef, Event, EventEncoder, StoredRow};
use super::EnrichError;
use crate::config::Settings;
use crate::retry::Backoff;
use deadpool_postgres::Pool;
use futures_util::stream::{FuturesUnordered, StreamExt};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

const SEED: &str = include_str!("../../sql/enrich/cursor_seed.sql");
const SEED_PARTITIONS: &str = include_str!("../../sql/enrich/cursor_seed_partitions.sql");
const ENSURE: &str = include_str!("../../sql/enrich/cursor_ensure.sql");
const CLAIM: &str = include_str!("../../sql/enrich/cursor_claim.sql");
const BATCHES: &str = include_str!("../../sql/enrich/batches.sql");
const ADVANCE: &str = include_str!("../../sql/enrich/cursor_advance.sql");
const PARTITIONS: &str = include_str!("../../sql/enrich/cursor_pending.sql");
const ROWS: &str = include_str!("../../sql/enrich/rows.sql");

/// Every this often, the relay also looks at every cursor of its topics (batches committed by
/// another worker whose relay died, or that this one failed on).
const SWEEP: Duration = Duration::from_secs(5);

/// One family's relay state.
struct FamilyRelay {
    encoder: EventEncoder,
    rows_sql: String,
    child_sql: Option<String>,
}

pub struct EnrichRelay {
    pool: Pool,
    producer: FutureProducer,
    group: String,
    suffix: String,
    max_batches: i64,
    /// By consumed topic name.
    families: HashMap<String, FamilyRelay>,
    /// Partitions with batches committed since their last pass (from the writers).
    committed: UnboundedReceiver<(Arc<str>, i32)>,
    /// Partitions known to have a cursor row.
    known: BTreeSet<(String, i32)>,
    /// Partitions whose last pass failed, with when to try again.
    failing: HashMap<(String, i32), (Backoff, Instant)>,
}

/// What one partition's pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PartitionPass {
    pub batches: usize,
    pub events: usize,
    /// Another relay holds the partition's cursor.
    pub busy: bool,
    /// More batches are waiting beyond this pass's window.
    pub more: bool,
}

impl EnrichRelay {
    /// # Errors
    /// Invalid Kafka settings, or a family's event schema does not derive (a build defect).
    pub fn new(
        pool: Pool,
        settings: &Settings,
        committed: UnboundedReceiver<(Arc<str>, i32)>,
    ) -> Result<Self, EnrichError> {
        let mut families = HashMap::new();
        for name in &settings.enrichment.families {
            let spec = crate::records::family(name).ok_or_else(|| {
                EnrichError::Config(format!("enrichment.families: unknown family {name:?}"))
            })?;
            if spec.tables.is_empty() {
                return Err(EnrichError::Config(format!(
                    "enrichment.families: {name} writes no rows of its own, so it has no events"
                )));
            }
            let encoder = EventEncoder::new(spec.name, spec.tables, settings.enrichment.format)
                .map_err(|e| EnrichError::Config(format!("the event schema of {name}: {e}")))?;
            let rows_sql = rows_sql(encoder.table());
            let child_sql = encoder
                .child()
                .map(|c| rows_sql_child(c, encoder.table().key));
            families.insert(
                settings.topic(name),
                FamilyRelay {
                    encoder,
                    rows_sql,
                    child_sql,
                },
            );
        }
        Ok(Self {
            pool,
            producer: super::producer(settings)?,
            group: settings.kafka.group_id.clone(),
            suffix: settings.enrichment.topic_suffix.clone(),
            max_batches: settings.enrichment.max_batches_per_pass as i64,
            families,
            committed,
            known: BTreeSet::new(),
            failing: HashMap::new(),
        })
    }

    fn topics(&self) -> Vec<String> {
        self.families.keys().cloned().collect()
    }

    /// Marks where each topic's events start (once, the first time it is switched on) and gives
    /// every partition already in the audit trail a cursor there (sql/enrich/cursor_seed.sql).
    /// Runs before the consumers start.
    ///
    /// # Errors
    /// The database failed.
    pub async fn seed(&self) -> Result<(), EnrichError> {
        let client = self.pool.get().await?;
        let topics = self.topics();
        client.execute(SEED, &[&self.group, &topics]).await?;
        client
            .execute(SEED_PARTITIONS, &[&self.group, &topics])
            .await?;
        Ok(())
    }

    /// Relays until `stop`; then makes last passes over what was committed, until `hard_stop`.
    pub async fn run(mut self, stop: CancellationToken, hard_stop: CancellationToken) {
        let mut last_sweep = Instant::now() - SWEEP;
        let mut dirty: BTreeSet<(String, i32)> = BTreeSet::new();
        loop {
            let stopping = stop.is_cancelled();
            while let Ok((t, p)) = self.committed.try_recv() {
                dirty.insert((t.to_string(), p));
            }
            if last_sweep.elapsed() >= SWEEP || stopping {
                match self.pending().await {
                    Ok(p) => dirty.extend(p),
                    Err(e) => warn!(error = %e, "The enrichment relay cannot list its partitions."),
                }
                last_sweep = Instant::now();
            }
            let now = Instant::now();
            let mut again = BTreeSet::new();
            for (topic, partition) in std::mem::take(&mut dirty) {
                let k = (topic.clone(), partition);
                if self.failing.get(&k).is_some_and(|(_, due)| *due > now) && !stopping {
                    again.insert(k);
                    continue;
                }
                if hard_stop.is_cancelled() {
                    return;
                }
                match self.partition(&topic, partition).await {
                    Ok(pass) => {
                        self.failing.remove(&k);
                        if pass.more {
                            again.insert(k);
                        }
                    }
                    Err(e) => {
                        let (backoff, due) = self.failing.entry(k.clone()).or_insert_with(|| {
                            (
                                Backoff::new(Duration::from_millis(500), Duration::from_secs(30)),
                                now,
                            )
                        });
                        let wait = backoff.next_delay();
                        *due = Instant::now() + wait;
                        warn!(topic, partition, error = %e, retry_in_ms = wait.as_millis() as u64,
                              "Cannot publish enrichment events; the partition's cursor stays, they will be sent again.");
                        again.insert(k);
                    }
                }
            }
            dirty = again;
            if stopping && (dirty.is_empty() || self.failing.len() >= dirty.len()) {
                // Committed batches whose events could not be sent wait for the next start: the
                // cursor did not move past them.
                if !dirty.is_empty() {
                    warn!(partitions = dirty.len(), "Stopping with enrichment events not yet published; the next start sends them.");
                }
                return;
            }
            if dirty.is_empty() || self.failing.len() == dirty.len() {
                tokio::select! {
                    got = self.committed.recv() => if let Some((t, p)) = got { dirty.insert((t.to_string(), p)); },
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = stop.cancelled() => {}
                    _ = hard_stop.cancelled() => return,
                }
            }
        }
    }

    /// Partitions of our topics whose cursor is behind their last batch.
    async fn pending(&mut self) -> Result<Vec<(String, i32)>, EnrichError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(PARTITIONS, &[&self.group, &self.topics()])
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// One pass over one partition: up to `max_batches_per_pass` batches after its cursor.
    ///
    /// # Errors
    /// The database failed, or the broker did not acknowledge an event (the cursor then stops
    /// before the first batch with an unacknowledged event).
    pub async fn partition(
        &mut self,
        topic: &str,
        partition: i32,
    ) -> Result<PartitionPass, EnrichError> {
        let Some(fam) = self.families.get(topic) else {
            return Ok(PartitionPass::default());
        };
        let mut client = self.pool.get().await?;
        if !self.known.contains(&(topic.to_owned(), partition)) {
            client
                .execute(ENSURE, &[&self.group, &topic, &partition])
                .await?;
            self.known.insert((topic.to_owned(), partition));
        }
        let tx = client.transaction().await?;
        let Some(cursor) = tx
            .query_opt(CLAIM, &[&self.group, &topic, &partition])
            .await?
        else {
            return Ok(PartitionPass {
                busy: true,
                ..PartitionPass::default()
            });
        };
        let after: i64 = cursor.get(0);
        let batches = tx
            .query(
                BATCHES,
                &[
                    &self.group,
                    &topic,
                    &partition,
                    &after,
                    &(self.max_batches + 1),
                ],
            )
            .await?;
        let more = batches.len() as i64 > self.max_batches;
        let batches: Vec<(BatchRef, i64, chrono::DateTime<chrono::Utc>)> = batches
            .iter()
            .take(self.max_batches as usize)
            .map(|r| {
                (
                    BatchRef {
                        id: r.get("id"),
                        first_offset: r.get("first_offset"),
                        committed_at: r.get("committed_at"),
                    },
                    r.get::<_, i64>("last_offset"),
                    r.get::<_, chrono::DateTime<chrono::Utc>>("started_at"),
                )
            })
            .collect();
        if batches.is_empty() {
            return Ok(PartitionPass::default());
        }
        let started: Vec<chrono::DateTime<chrono::Utc>> = batches.iter().map(|b| b.2).collect();
        let lo = batches.iter().map(|b| b.0.first_offset).min().unwrap_or(0);
        let hi = batches.iter().map(|b| b.1).max().unwrap_or(0);
        let rows = tx
            .query(&fam.rows_sql, &[&started, &topic, &partition, &lo, &hi])
            .await?;
        let children = match &fam.child_sql {
            Some(sql) => {
                tx.query(sql, &[&started, &topic, &partition, &lo, &hi])
                    .await?
            }
            None => Vec::new(),
        };

        // Rows to events, each with the index of its batch (rows are in (batch, offset) order).
        let by_started: HashMap<chrono::DateTime<chrono::Utc>, usize> =
            started.iter().enumerate().map(|(i, s)| (*s, i)).collect();
        let cols: Vec<_> = record_columns(fam.encoder.table()).collect();
        let n = cols.len();
        let key_len = fam.encoder.table().key.len();
        // Entities by (ingested_at, parent offset), in key order.
        let entity_cols = fam.encoder.entity_columns();
        let mut entities: HashMap<
            (chrono::DateTime<chrono::Utc>, i64),
            Vec<Vec<super::event::Cell>>,
        > = HashMap::new();
        for r in &children {
            // Columns: parent key, entity columns, offset, ingested_at.
            let mut cells = Vec::with_capacity(entity_cols.len());
            for (j, (_, ty)) in entity_cols.iter().enumerate() {
                cells.push(cell(r, key_len + j, ty)?);
            }
            let off: i64 = r.get(key_len + entity_cols.len());
            let at: chrono::DateTime<chrono::Utc> = r.get(key_len + entity_cols.len() + 1);
            entities.entry((at, off)).or_default().push(cells);
        }
        let mut events: Vec<(usize, Event)> = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut cells = Vec::with_capacity(n);
            for (i, (_, ty)) in cols.iter().enumerate() {
                cells.push(cell(r, i, ty)?);
            }
            let offset: i64 = r.get(n);
            let at: chrono::DateTime<chrono::Utc> = r.get(n + 1);
            let Some(&b) = by_started.get(&at) else {
                continue;
            };
            let (batch, last, _) = &batches[b];
            if offset < batch.first_offset || offset > *last {
                continue;
            }
            let row = StoredRow {
                cells,
                partition,
                offset,
                entities: entities.remove(&(at, offset)).unwrap_or_default(),
            };
            events.push((b, fam.encoder.event(topic, batch, &row)));
        }

        // Produce everything, then find the longest prefix of batches all acknowledged.
        let target = format!("{topic}{}", self.suffix);
        let family = fam.encoder.table().name;
        let version = super::event::SCHEMA_VERSION.to_string();
        let mut failed_batch: Option<(usize, EnrichError)> = None;
        {
            // Events go to librdkafka's queue in order (send_result enqueues at once), so the
            // events of one key keep the rows' commit order on the enrichment topic.
            events.sort_by_key(|(b, _)| *b);
            let mut sends = FuturesUnordered::new();
            for (b, e) in &events {
                let headers = OwnedHeaders::new()
                    .insert(Header {
                        key: "esurio.event_id",
                        value: Some(e.id.as_bytes()),
                    })
                    .insert(Header {
                        key: "esurio.family",
                        value: Some(family.as_bytes()),
                    })
                    .insert(Header {
                        key: "esurio.schema_version",
                        value: Some(version.as_bytes()),
                    });
                let mut rec = FutureRecord::to(&target)
                    .key(&e.key[..])
                    .payload(&e.payload[..])
                    .headers(headers);
                let b = *b;
                let fut = loop {
                    match self.producer.send_result(rec) {
                        Ok(f) => break Ok(f),
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                            rec = r;
                            // librdkafka's queue is full: let deliveries drain it.
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        Err((e, _)) => break Err(e),
                    }
                };
                match fut {
                    Ok(f) => sends.push(async move { (b, f.await) }),
                    Err(e) => {
                        if failed_batch.as_ref().is_none_or(|(fb, _)| b < *fb) {
                            failed_batch = Some((b, EnrichError::Produce(e)));
                        }
                        break;
                    }
                }
            }
            while let Some((b, res)) = sends.next().await {
                let err = match res {
                    Ok(Ok(_)) => continue,
                    Ok(Err((e, _))) => EnrichError::Produce(e),
                    Err(_) => EnrichError::Produce(KafkaError::Canceled),
                };
                if failed_batch.as_ref().is_none_or(|(fb, _)| b < *fb) {
                    failed_batch = Some((b, err));
                }
            }
        }
        let done = failed_batch.as_ref().map_or(batches.len(), |(b, _)| *b);
        crate::fault::after_publishing_events(topic, partition);
        if done > 0 {
            let last_id = batches[done - 1].0.id;
            let sent = events.iter().filter(|(b, _)| *b < done).count() as i64;
            tx.execute(ADVANCE, &[&self.group, &topic, &partition, &last_id, &sent])
                .await?;
            tx.commit().await?;
            debug!(
                topic,
                partition,
                batches = done,
                events = sent,
                "Published enrichment events."
            );
        }
        if let Some((_, e)) = failed_batch {
            return Err(e);
        }
        Ok(PartitionPass {
            batches: done,
            events: events.len(),
            busy: false,
            more,
        })
    }
}

/// Reads a batch range's rows of `table`: record columns, then offset and ingested_at.
fn rows_sql(table: &crate::sink::copy::Table) -> String {
    let cols: Vec<&str> = record_columns(table).map(|(c, _)| c).collect();
    ROWS.replace("{columns}", &cols.join(", "))
        .replace("{table}", table.name)
        .replace("{order}", "ingested_at, source_offset")
}

/// Reads a batch range's entity rows: the parent key, the entity columns, offset, ingested_at.
fn rows_sql_child(child: &crate::sink::copy::Table, parent_key: &[&str]) -> String {
    let mut cols: Vec<&str> = parent_key.to_vec();
    cols.extend(
        record_columns(child)
            .map(|(c, _)| c)
            .filter(|c| !parent_key.contains(c)),
    );
    let order = format!("ingested_at, source_offset, {}", child.key.join(", "));
    ROWS.replace("{columns}", &cols.join(", "))
        .replace("{table}", child.name)
        .replace("{order}", &order)
}

/// Logged once at start: what will be published where.
pub fn describe(settings: &Settings) {
    if settings.enrichment.families.is_empty() {
        return;
    }
    info!(
        families = %settings.enrichment.families.join(","),
        suffix = %settings.enrichment.topic_suffix,
        format = ?settings.enrichment.format,
        "Enrichment events are on."
    );
}
