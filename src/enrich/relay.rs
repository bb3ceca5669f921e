//! The enrichment relay: per partition, in commit order, reads the rows each committed batch wrote,
//! produces their events, and moves the partition's cursor past the batches the broker
//! acknowledged, in the transaction that holds the cursor row.

use super::event::{cell, record_columns, BatchRef, Cell, Event, EventEncoder, StoredRow};
use super::handover::{self, CopyRows, Fit, HandOvers};
use super::EnrichError;
use crate::config::Settings;
use crate::retry::Backoff;
use deadpool_postgres::Pool;
use futures_util::TryStreamExt;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, Producer};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_postgres::types::ToSql;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

const SEED: &str = include_str!("../../sql/enrich/cursor_seed.sql");
const SEED_PARTITIONS: &str = include_str!("../../sql/enrich/cursor_seed_partitions.sql");
const INDEX: &str = include_str!("../../sql/enrich/index.sql");
const ENSURE: &str = include_str!("../../sql/enrich/cursor_ensure.sql");
const CLAIM: &str = include_str!("../../sql/enrich/cursor_claim.sql");
const BATCHES: &str = include_str!("../../sql/enrich/batches.sql");
const ADVANCE: &str = include_str!("../../sql/enrich/cursor_advance.sql");
const PARTITIONS: &str = include_str!("../../sql/enrich/cursor_pending.sql");
const ROWS: &str = include_str!("../../sql/enrich/rows.sql");
const ROWS_HISTORY: &str = include_str!("../../sql/enrich/rows_history.sql");
const FIT: &str = include_str!("../../sql/enrich/column_fit.sql");

/// Every this often, the relay also looks at every cursor of its topics (batches committed by
/// another worker whose relay died, or that this one failed on).
const SWEEP: Duration = Duration::from_secs(5);

/// One family's relay state.
struct FamilyRelay {
    encoder: EventEncoder,
    rows_sql: String,
    child_sql: Option<String>,
    /// Whether its batches may be handed over ([`handover::eligible`]).
    handed: bool,
    /// Per record column, how the server fits a text value (read from the catalog by `seed`).
    fits: Vec<Fit>,
}

/// What the writers give the relay: which partitions committed, and the rows of direct COPYs.
#[derive(Clone)]
pub struct EnrichHook {
    pub committed: tokio::sync::mpsc::UnboundedSender<(Arc<str>, i32)>,
    pub handovers: Arc<HandOvers>,
}

pub struct EnrichRelay {
    pool: Pool,
    producer: super::EventProducer,
    acks: Arc<super::Acks>,
    group: String,
    suffix: String,
    max_batches: i64,
    /// By consumed topic name.
    families: HashMap<String, FamilyRelay>,
    /// Partitions with batches committed since their last pass (from the writers).
    committed: UnboundedReceiver<(Arc<str>, i32)>,
    /// Partitions known to have a cursor row.
    known: std::sync::Mutex<BTreeSet<(String, i32)>>,
    /// Partitions whose last pass failed, with when to try again.
    failing: HashMap<(String, i32), (Backoff, Instant)>,
    handovers: Arc<HandOvers>,
    /// Batches relayed from a hand-over, and read back.
    from_handover: AtomicU64,
    read_back: AtomicU64,
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
            let history = spec.policy == crate::records::Policy::Revise;
            let rows_sql = rows_sql(encoder.table(), history);
            let child_sql = rows_sql_child(&encoder, history);
            let handed = spec.tables.len() == 1 && handover::eligible(spec.tables[0]);
            let fits = vec![Fit::AsIs; record_columns(spec.tables[0]).count()];
            families.insert(
                settings.topic(name),
                FamilyRelay {
                    encoder,
                    rows_sql,
                    child_sql,
                    handed,
                    fits,
                },
            );
        }
        let handed: HashSet<String> = families
            .iter()
            .filter(|(_, f)| f.handed)
            .map(|(t, _)| t.clone())
            .collect();
        let handovers = Arc::new(HandOvers::new(handed, handover::MAX_HELD_BYTES));
        let acks = Arc::new(super::Acks::default());
        Ok(Self {
            pool,
            producer: super::producer(settings, acks.clone())?,
            acks,
            group: settings.kafka.group_id.clone(),
            suffix: settings.enrichment.topic_suffix.clone(),
            max_batches: settings.enrichment.max_batches_per_pass as i64,
            families,
            committed,
            known: std::sync::Mutex::new(BTreeSet::new()),
            failing: HashMap::new(),
            handovers,
            from_handover: AtomicU64::new(0),
            read_back: AtomicU64::new(0),
        })
    }

    /// Where the writers hand their direct COPYs' rows over.
    pub fn handovers(&self) -> Arc<HandOvers> {
        self.handovers.clone()
    }

    fn topics(&self) -> Vec<String> {
        self.families.keys().cloned().collect()
    }

    /// Creates the index rows are read by where it is missing (the tick tables have it only with
    /// their events on), marks where each topic's events start (once, the first time it is
    /// switched on) and gives every partition already in the audit trail a cursor there
    /// (sql/enrich/cursor_seed.sql).
    /// Also reads how the server fits each text column of a handed-over family (`char(n)`,
    /// `varchar(n)`). Runs before the consumers start.
    ///
    /// # Errors
    /// The database failed.
    pub async fn seed(&mut self) -> Result<(), EnrichError> {
        let client = self.pool.get().await?;
        for fam in self.families.values_mut() {
            let t = fam.encoder.table();
            let table = t.name;
            if t.partitioned {
                // The tick tables: a BRIN index, almost free to maintain at ingest rate (a
                // B-tree cost ~10% of their COPY throughput); their batches are handed over, so
                // it only serves the read-backs after a restart or a race.
                let exists: bool = client
                    .query_one(
                        "SELECT to_regclass($1) IS NOT NULL",
                        &[&format!("{table}_ingested_at_brin")],
                    )
                    .await?
                    .get(0);
                if !exists {
                    info!(table, "Creating the index enrichment events are read back by (once; inserts into the table wait meanwhile).");
                    client
                        .batch_execute(&INDEX.replace("{table}", table))
                        .await?;
                }
            }
            let mut fits = Vec::with_capacity(fam.fits.len());
            for (name, ty) in record_columns(t) {
                let fit = if matches!(
                    *ty,
                    tokio_postgres::types::Type::BPCHAR
                        | tokio_postgres::types::Type::TEXT
                        | tokio_postgres::types::Type::VARCHAR
                ) {
                    let r = client.query_opt(FIT, &[&table, &name]).await?;
                    match r.map(|r| (r.get::<_, String>(0), r.get::<_, i32>(1))) {
                        Some((k, n)) if k == "bpchar" && n > 0 => Fit::Char(n as usize),
                        Some((k, n)) if k == "varchar" && n > 0 => Fit::Varchar(n as usize),
                        _ => Fit::AsIs,
                    }
                } else {
                    Fit::AsIs
                };
                fits.push(fit);
            }
            fam.fits = fits;
        }
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
                self.handovers.expire(handover::MAX_AGE);
                match self.pending().await {
                    Ok(p) => dirty.extend(p),
                    Err(e) => warn!(error = %e, "The enrichment relay cannot list its partitions."),
                }
                last_sweep = Instant::now();
            }
            let now = Instant::now();
            let mut again = BTreeSet::new();
            if hard_stop.is_cancelled() {
                self.log_counts();
                return;
            }
            // Due partitions go at once: one's database reads and encoding overlap another's
            // wait for the broker.
            let mut due = Vec::new();
            for k in std::mem::take(&mut dirty) {
                if self.failing.get(&k).is_some_and(|(_, d)| *d > now) && !stopping {
                    again.insert(k);
                } else {
                    due.push(k);
                }
            }
            let results = futures_util::future::join_all(
                due.iter()
                    .enumerate()
                    .map(|(slot, (t, p))| self.partition(slot, t, *p)),
            )
            .await;
            for (k, r) in due.into_iter().zip(results) {
                match r {
                    Ok(more) => {
                        self.failing.remove(&k);
                        if more {
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
                        if e.is_retriable() {
                            warn!(topic = %k.0, partition = k.1, error = %e, retry_in_ms = wait.as_millis() as u64,
                                  "Cannot publish enrichment events; the partition's cursor stays, they will be sent again.");
                        } else {
                            error!(topic = %k.0, partition = k.1, error = %e, retry_in_ms = wait.as_millis() as u64,
                                   "Cannot publish enrichment events, and retrying alone will not fix it; the partition's cursor stays.");
                        }
                        again.insert(k);
                    }
                }
            }
            dirty = again;
            // Every partition left is waiting out a failure: nothing to do until one is due.
            let all_failing = dirty.iter().all(|k| self.failing.contains_key(k));
            if stopping && all_failing {
                // Committed batches whose events could not be sent wait for the next start: the
                // cursor did not move past them.
                if !dirty.is_empty() {
                    warn!(partitions = dirty.len(), "Stopping with enrichment events not yet published; the next start sends them.");
                }
                self.log_counts();
                return;
            }
            if all_failing {
                tokio::select! {
                    got = self.committed.recv() => if let Some((t, p)) = got { dirty.insert((t.to_string(), p)); },
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = stop.cancelled() => {}
                    _ = hard_stop.cancelled() => { self.log_counts(); return }
                }
            }
        }
    }

    /// How the batches' rows reached the relay, once at the end (the benchmark and the tests read
    /// it: a read-back on the hot path is what hand-over is there to avoid).
    fn log_counts(&self) {
        info!(
            handed_over = self.from_handover.load(Ordering::Relaxed),
            read_back = self.read_back.load(Ordering::Relaxed),
            "Enrichment relay stopped; batches relayed from their writer's hand-over and read back from the database."
        );
    }

    /// Partitions of our topics whose cursor is behind their last batch.
    async fn pending(&self) -> Result<Vec<(String, i32)>, EnrichError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(PARTITIONS, &[&self.group, &self.topics()])
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// One pass over one partition: up to `max_batches_per_pass` batches after its cursor.
    /// Returns whether more batches wait beyond the pass (false too when another relay holds the
    /// partition's cursor).
    ///
    /// # Errors
    /// The database failed, or the broker did not acknowledge an event (the cursor then stops
    /// before the first batch with an unacknowledged event).
    pub async fn partition(
        &self,
        slot: usize,
        topic: &str,
        partition: i32,
    ) -> Result<bool, EnrichError> {
        let Some(fam) = self.families.get(topic) else {
            return Ok(false);
        };
        let mut client = self.pool.get().await?;
        let key = (topic.to_owned(), partition);
        let known = self
            .known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&key);
        if !known {
            client
                .execute(ENSURE, &[&self.group, &topic, &partition])
                .await?;
            self.known
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key);
        }
        let tx = client.transaction().await?;
        let Some(cursor) = tx
            .query_opt(CLAIM, &[&self.group, &topic, &partition])
            .await?
        else {
            return Ok(false);
        };
        let after: i64 = cursor.get(0);
        // Hand-overs of batches the cursor is already past (another relay sent them) are stale.
        self.handovers.prune(topic, partition, after);
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
            return Ok(false);
        }
        // Batch by batch, in commit order; each batch's rows stream from the database straight
        // into librdkafka's queue, encoded into buffers reused for every event (librdkafka
        // copies them), so a pass holds no more than one row at a time. Within a batch a key has
        // one row, so the rows' order there does not matter; across batches it is kept.
        let target = format!("{topic}{}", self.suffix);
        let cols: Vec<_> = record_columns(fam.encoder.table()).collect();
        let n = cols.len();
        let entity_cols = fam.encoder.entity_columns();
        let rows_stmt = tx.prepare_cached(&fam.rows_sql).await?;
        let child_stmt = match &fam.child_sql {
            Some(sql) => Some(tx.prepare_cached(sql).await?),
            None => None,
        };
        let mut ev = Event {
            id: String::new(),
            key: Vec::new(),
            payload: Vec::new(),
        };
        let mut row = StoredRow {
            cells: Vec::with_capacity(n),
            partition,
            offset: 0,
            entities: Vec::new(),
        };
        // Per batch: events and bytes handed to librdkafka.
        let mut counts: Vec<(i64, i64)> = vec![(0, 0); batches.len()];
        'batches: for (b, (batch, last, started)) in batches.iter().enumerate() {
            let opaque = super::Acks::opaque(slot, b);
            // The rows the batch's writer handed over, if it did: no read-back.
            if let Some(held) = fam
                .handed
                .then(|| self.handovers.take(topic, partition, batch.id))
                .flatten()
            {
                let mut rows = CopyRows::new(&held.rows, fam.encoder.table().types, &fam.fits);
                let mut sent = 0usize;
                row.entities.clear();
                loop {
                    match rows.next_into(&mut row) {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(e) if sent == 0 => {
                            // A defect, not data: the batch is read back below instead.
                            error!(topic, partition, batch = batch.id, error = %e, "Reading the batch back instead.");
                            break;
                        }
                        Err(e) => {
                            // Events of the batch already went out: it must be redone whole by
                            // the next pass, so it stays behind the cursor.
                            error!(topic, partition, batch = batch.id, error = %e, "Stopping the pass at this batch.");
                            self.acks.refused(
                                opaque,
                                KafkaError::MessageProduction(RDKafkaErrorCode::InvalidRecord),
                            );
                            break 'batches;
                        }
                    }
                    fam.encoder.encode_into(topic, batch, &row, &mut ev);
                    if !self.send(&target, opaque, &ev).await {
                        break 'batches;
                    }
                    sent += 1;
                    counts[b].0 += 1;
                    counts[b].1 += (ev.key.len() + ev.payload.len()) as i64;
                }
                if rows.done() {
                    self.from_handover.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
            self.read_back.fetch_add(1, Ordering::Relaxed);
            let params: [&(dyn ToSql + Sync); 5] =
                [started, &topic, &partition, &batch.first_offset, last];
            // Entities by their parent's offset, in key order.
            let mut entities: HashMap<i64, Vec<Vec<Cell>>> = HashMap::new();
            if let Some(stmt) = &child_stmt {
                for r in tx.query(stmt, &params).await? {
                    let mut cells = Vec::with_capacity(entity_cols.len());
                    for (j, (_, ty)) in entity_cols.iter().enumerate() {
                        cells.push(cell(&r, j, ty)?);
                    }
                    let off: i64 = r.get(entity_cols.len());
                    entities.entry(off).or_default().push(cells);
                }
            }
            let stream = tx.query_raw(&rows_stmt, params).await?;
            futures_util::pin_mut!(stream);
            while let Some(r) = stream.try_next().await? {
                row.cells.clear();
                for (i, (_, ty)) in cols.iter().enumerate() {
                    row.cells.push(cell(&r, i, ty)?);
                }
                row.offset = r.get(n);
                row.entities = entities.remove(&row.offset).unwrap_or_default();
                fam.encoder.encode_into(topic, batch, &row, &mut ev);
                if !self.send(&target, opaque, &ev).await {
                    break 'batches;
                }
                counts[b].0 += 1;
                counts[b].1 += (ev.key.len() + ev.payload.len()) as i64;
            }
        }
        // Every event is answered within message.timeout.ms; refusals were recorded by then.
        while self.producer.in_flight_count() > 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let failed_batch: Option<(usize, EnrichError)> = self
            .acks
            .take(slot)
            .map(|(b, e)| (b, EnrichError::Produce(e)));
        let done = failed_batch.as_ref().map_or(batches.len(), |(b, _)| *b);
        crate::fault::after_publishing_events(topic, partition);
        let (mut events, mut bytes) = (0i64, 0i64);
        if done > 0 {
            let last_id = batches[done - 1].0.id;
            for (e, b) in &counts[..done] {
                events += e;
                bytes += b;
            }
            tx.execute(
                ADVANCE,
                &[&self.group, &topic, &partition, &last_id, &events, &bytes],
            )
            .await?;
            tx.commit().await?;
            debug!(
                topic,
                partition,
                batches = done,
                events,
                "Published enrichment events."
            );
        }
        if let Some((_, e)) = failed_batch {
            return Err(e);
        }
        Ok(more)
    }
}

impl EnrichRelay {
    /// Hands one event to librdkafka (which copies it), waiting while its queue is full. `false`
    /// when it was not queued: the refusal is recorded for its batch, and the pass stops there.
    async fn send(&self, target: &str, opaque: usize, ev: &Event) -> bool {
        // No headers: the id is in the value and the key is the row's key; a header is a copy
        // and two allocations per event in librdkafka (7% of the relay's CPU).
        let mut rec = BaseRecord::with_opaque_to(target, opaque)
            .key(&ev.key[..])
            .payload(&ev.payload[..]);
        loop {
            match self.producer.send(rec) {
                Ok(()) => return true,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    rec = r;
                    // librdkafka's queue is full: let deliveries drain it.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err((err, _)) => {
                    self.acks.refused(opaque, err);
                    return false;
                }
            }
        }
    }
}

/// Reads a batch's rows of `table` (and of its history, for revise tables): record columns, then
/// the offset.
fn rows_sql(table: &crate::sink::copy::Table, history: bool) -> String {
    let cols: Vec<&str> = record_columns(table).map(|(c, _)| c).collect();
    render(table.name, &cols, history, "")
}

/// Reads a batch's entity rows: the entity columns ([`EventEncoder::entity_columns`]: the parent
/// is found by the offset it shares), then the offset.
fn rows_sql_child(encoder: &EventEncoder, history: bool) -> Option<String> {
    let child = encoder.child()?;
    let cols: Vec<&str> = encoder.entity_columns().iter().map(|(c, _)| *c).collect();
    // The entities of one version share its offset (and so its parent key): the rest of the
    // child's key orders them.
    let rest: Vec<&str> = child
        .key
        .iter()
        .copied()
        .filter(|k| !encoder.table().key.contains(k))
        .collect();
    let order = format!("ORDER BY source_offset, {}", rest.join(", "));
    Some(render(child.name, &cols, history, &order))
}

fn render(table: &str, cols: &[&str], history: bool, order_by: &str) -> String {
    let columns = cols.join(", ");
    let history = if history { ROWS_HISTORY } else { "" };
    ROWS.replace("{history}", history)
        .replace("{columns}", &columns)
        .replace("{table}", table)
        .replace("{order_by}", order_by)
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
