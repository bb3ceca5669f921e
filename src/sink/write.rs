//! One batch, one transaction: offsets CAS, COPY into staging, merge (bisecting rejected rows),
//! quarantine, audit, commit. See the module docs of [`crate::sink`] for the guarantee.

use super::{is_data_error, SinkError};
use crate::batch::{Batch, Quarantined};
use crate::config::WritePath;
use crate::records::{Policy, UNKNOWN_TARGET};
use crate::sink::merge::{self, RangeOutcome};
use crate::sink::writeback::{self, Deleted};
use bytes::Bytes;
use deadpool_postgres::{Pool, Transaction};
use futures_util::SinkExt;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

const OFFSETS_ADVANCE: &str = include_str!("../../sql/sink/offsets_advance.sql");
const OFFSETS_INSERT: &str = include_str!("../../sql/sink/offsets_insert.sql");
const OFFSETS_GET: &str = include_str!("../../sql/sink/offsets_get.sql");
const OFFSETS_OF_TOPIC: &str = include_str!("../../sql/sink/offsets_of_topic.sql");
const QUARANTINE_INSERT: &str = include_str!("../../sql/sink/quarantine_insert.sql");
const BATCH_AUDIT: &str = include_str!("../../sql/sink/batch_audit.sql");
const ENSURE_PARTITIONS: &str = include_str!("../../sql/sink/ensure_partitions.sql");

/// What a committed batch did.
#[derive(Debug, Default, Clone)]
pub struct WriteOutcome {
    pub records: usize,
    /// Rows inserted into (or replaced in) the family's current tables, entities included.
    pub rows_inserted: u64,
    /// Records dropped as identical to a version already stored (replays).
    pub duplicates: u64,
    /// Records that became the current version of a stored key (revise families).
    pub revised: u64,
    /// Records stored straight into history: a newer version was current (revise families).
    pub superseded: u64,
    /// Records quarantined as `conflicting_duplicate` (reject families; also in `quarantined`).
    pub conflicts: u64,
    /// Records quarantined (decode, validation and database rejections).
    pub quarantined: usize,
    /// Update records applied to their target row (`sentiment_update`).
    pub updated: u64,
    /// Tombstones that deleted a row.
    pub deleted: u64,
    pub attempts: u32,
    /// `ingest_batches.id` of the batch's audit row.
    pub batch_id: i64,
    /// The rows went in by the direct COPY: the table holds exactly the sealed COPY streams.
    pub direct: bool,
}

/// The writer side shared by all partitions.
pub struct Sink {
    pool: Pool,
    group: String,
    echo: bool,
    initial_backoff: Duration,
    max_backoff: Duration,
    /// Days known to have partitions, per table, so `esurio_ensure_partitions` runs once per day.
    partitions: Mutex<HashSet<(&'static str, i32)>>,
    /// Per family: how many more batches go through staging before direct COPY is tried again.
    /// A batch that hits a conflict (a duplicate or a rejected row) makes the next few skip the
    /// direct attempt, since replays come in runs.
    skip_direct: Mutex<std::collections::HashMap<&'static str, u32>>,
    write_path: WritePath,
    /// `database.reference_wait`: how long a batch is retried while it names rows not stored yet.
    reference_wait: Duration,
}

/// Batches that take the staging path after a direct COPY failed on a conflict.
const SKIP_DIRECT_AFTER_CONFLICT: u32 = 16;

impl Sink {
    pub fn new(pool: Pool, group: String, s: &crate::config::DatabaseSettings) -> Arc<Self> {
        Arc::new(Self {
            pool,
            group,
            echo: s.echo,
            initial_backoff: s.retry_initial_backoff,
            max_backoff: s.retry_max_backoff,
            partitions: Mutex::new(HashSet::new()),
            skip_direct: Mutex::new(std::collections::HashMap::new()),
            write_path: s.write_path,
            reference_wait: s.reference_wait,
        })
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    fn echo(&self, sql: &str) {
        if self.echo {
            info!(sql = sql.trim(), "Executing statement.");
        }
    }

    /// The stored next offset of a partition (`None`: never written), retried until it succeeds or
    /// `cancel` fires.
    ///
    /// # Errors
    /// Cancelled, or a non-transient database error (e.g. the schema is missing).
    pub async fn stored_offset(
        &self,
        topic: &str,
        partition: i32,
        cancel: &CancellationToken,
    ) -> Result<Option<i64>, SinkError> {
        let mut backoff = self.initial_backoff;
        loop {
            match self.try_stored_offset(topic, partition).await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retriable() && !cancel.is_cancelled() => {
                    warn!(%e, topic, partition, "Failed to read the stored offset; retrying.");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.max_backoff);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Every stored offset of a topic for this group, by partition.
    ///
    /// # Errors
    /// The database is unreachable (not retried: callers poll).
    pub async fn stored_offsets(
        &self,
        topic: &str,
    ) -> Result<std::collections::HashMap<i32, i64>, SinkError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(OFFSETS_OF_TOPIC).await?;
        let rows = client.query(&stmt, &[&self.group, &topic]).await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn try_stored_offset(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Option<i64>, SinkError> {
        let client = self.pool.get().await?;
        self.echo(OFFSETS_GET);
        let stmt = client.prepare_cached(OFFSETS_GET).await?;
        let row = client
            .query_opt(&stmt, &[&self.group, &topic, &partition])
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Writes a batch, retrying transient failures with exponential backoff until it commits, is
    /// fenced, or `cancel` fires (then the last error is returned and nothing was committed).
    ///
    /// # Errors
    /// [`SinkError::Fenced`] when another writer moved the partition's offset; the last transient
    /// error when cancelled while retrying.
    #[tracing::instrument(skip_all, fields(topic = %batch.topic, partition = batch.partition, first = batch.first_offset, last = batch.last_offset))]
    pub async fn write(
        &self,
        batch: &Batch,
        cancel: &CancellationToken,
    ) -> Result<WriteOutcome, SinkError> {
        let mut backoff = self.initial_backoff;
        let mut attempts = 0;
        // From the first attempt, not from when the batch was built: a batch that queued behind
        // others gets the whole wait too.
        let references_due = std::time::Instant::now() + self.reference_wait;
        loop {
            attempts += 1;
            match self.try_write(batch, references_due).await {
                Ok(mut o) => {
                    o.attempts = attempts;
                    return Ok(o);
                }
                Err(SinkError::Fenced { .. }) => {
                    let stored = self
                        .stored_offset(&batch.topic, batch.partition, cancel)
                        .await?;
                    return Err(SinkError::Fenced {
                        topic: batch.topic.to_string(),
                        partition: batch.partition,
                        expected: batch.expected,
                        stored,
                    });
                }
                Err(e) => {
                    if cancel.is_cancelled() {
                        return Err(e);
                    }
                    if let SinkError::Pending(_) = e {
                        debug!(error = %e, attempts, ?backoff, "A batch names rows not stored yet; retrying.");
                    } else if e.is_retriable() {
                        warn!(error = %e, attempts, ?backoff, "Failed to write a batch; retrying.");
                    } else {
                        // Not a data problem (those are isolated) and not transient: a missing table,
                        // a permission. Retrying keeps the data safe until an operator fixes it.
                        tracing::error!(error = %e, attempts, ?backoff, "Failed to write a batch with a non-transient error; retrying until it is fixed.");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = cancel.cancelled() => return Err(e),
                    }
                    backoff = (backoff * 2).min(self.max_backoff);
                }
            }
        }
    }

    async fn ensure_partitions(&self, batch: &Batch) -> Result<(), SinkError> {
        for table in batch.family.tables.iter().filter(|t| t.partitioned) {
            let missing: Vec<i32> = {
                let known = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
                batch
                    .staged
                    .days
                    .iter()
                    .copied()
                    .filter(|d| !known.contains(&(table.name, *d)))
                    .collect()
            };
            if missing.is_empty() {
                continue;
            }
            let client = self.pool.get().await?;
            self.echo(ENSURE_PARTITIONS);
            let stmt = client.prepare_cached(ENSURE_PARTITIONS).await?;
            for day in missing {
                let date = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
                    .and_then(|e| e.checked_add_signed(chrono::Duration::days(day as i64)))
                    .unwrap_or_default();
                client
                    .query_one(&stmt, &[&table.name, &date, &date])
                    .await?;
                self.partitions
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert((table.name, day));
            }
        }
        Ok(())
    }

    async fn try_write(
        &self,
        batch: &Batch,
        references_due: std::time::Instant,
    ) -> Result<WriteOutcome, SinkError> {
        self.ensure_partitions(batch).await?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let topic: &str = &batch.topic;
        let next = batch.next_offset();

        // The offset CAS first: it takes the row lock, so a competing writer waits here instead of
        // doing the COPY work, and a fenced batch stops before it spends any.
        let moved = match batch.expected {
            Some(expected) => {
                self.echo(OFFSETS_ADVANCE);
                let stmt = tx.prepare_cached(OFFSETS_ADVANCE).await?;
                tx.execute(
                    &stmt,
                    &[&self.group, &topic, &batch.partition, &expected, &next],
                )
                .await?
            }
            None => {
                self.echo(OFFSETS_INSERT);
                let stmt = tx.prepare_cached(OFFSETS_INSERT).await?;
                tx.execute(&stmt, &[&self.group, &topic, &batch.partition, &next])
                    .await?
            }
        };
        if moved != 1 {
            return Err(SinkError::Fenced {
                topic: topic.to_owned(),
                partition: batch.partition,
                expected: batch.expected,
                stored: None,
            });
        }

        let mut outcome = WriteOutcome {
            records: batch.records(),
            ..Default::default()
        };
        let mut rejected: Vec<Quarantined> = Vec::new();
        if !batch.valid.is_empty() {
            if let Some(n) = self.try_direct(&tx, batch).await? {
                outcome.rows_inserted = n;
                outcome.direct = true;
            } else {
                let (merged, bad) = self.stage_and_merge(&tx, batch, references_due).await?;
                outcome.rows_inserted = merged.rows;
                outcome.updated = merged.updated;
                outcome.deleted = merged.deleted;
                outcome.duplicates = merged.duplicates;
                outcome.revised = merged.revised;
                outcome.superseded = merged.superseded;
                outcome.conflicts = merged.conflicts.len() as u64;
                rejected = bad;
            }
        }

        let quarantined: Vec<&Quarantined> =
            batch.quarantined.iter().chain(rejected.iter()).collect();
        outcome.quarantined = quarantined.len();
        if !quarantined.is_empty() {
            let offsets: Vec<i64> = quarantined.iter().map(|q| q.offset).collect();
            let keys: Vec<Option<&[u8]>> = quarantined.iter().map(|q| q.key.as_deref()).collect();
            let payloads: Vec<Option<&[u8]>> =
                quarantined.iter().map(|q| q.payload.as_deref()).collect();
            let stages: Vec<&str> = quarantined.iter().map(|q| q.stage).collect();
            let reasons: Vec<&str> = quarantined.iter().map(|q| q.reason.as_str()).collect();
            let messages: Vec<&str> = quarantined.iter().map(|q| q.message.as_str()).collect();
            let tss: Vec<Option<chrono::DateTime<chrono::Utc>>> =
                quarantined.iter().map(|q| q.record_ts).collect();
            self.echo(QUARANTINE_INSERT);
            let stmt = tx.prepare_cached(QUARANTINE_INSERT).await?;
            tx.execute(
                &stmt,
                &[
                    &topic,
                    &batch.partition,
                    &offsets,
                    &keys,
                    &payloads,
                    &stages,
                    &reasons,
                    &messages,
                    &tss,
                ],
            )
            .await?;
        }

        self.echo(BATCH_AUDIT);
        let stmt = tx.prepare_cached(BATCH_AUDIT).await?;
        let audit = tx
            .query_one(
                &stmt,
                &[
                    &self.group,
                    &topic,
                    &batch.partition,
                    &batch.first_offset,
                    &batch.last_offset,
                    &(outcome.records as i32),
                    &(outcome.rows_inserted as i32),
                    &(outcome.duplicates as i32),
                    &(outcome.quarantined as i32),
                    &(outcome.revised as i32),
                    &(outcome.superseded as i32),
                    &(outcome.conflicts as i32),
                    &(outcome.updated as i32),
                    &(outcome.deleted as i32),
                ],
            )
            .await?;
        outcome.batch_id = audit.get(0);
        tx.commit().await?;
        debug!(
            rows = outcome.rows_inserted,
            duplicates = outcome.duplicates,
            revised = outcome.revised,
            superseded = outcome.superseded,
            conflicts = outcome.conflicts,
            updated = outcome.updated,
            deleted = outcome.deleted,
            quarantined = outcome.quarantined,
            "Committed a batch."
        );
        Ok(outcome)
    }

    /// The fast path: COPY straight into the targets under a savepoint. `None` when a row conflicts
    /// or is rejected (the savepoint is rolled back and the caller takes the staging path), or when
    /// recent conflicts say not to try.
    async fn try_direct(
        &self,
        tx: &Transaction<'_>,
        batch: &Batch,
    ) -> Result<Option<u64>, SinkError> {
        let family = batch.family.name;
        // References are checked, updates and deletes applied, against the staged records.
        if self.write_path == WritePath::Staged
            || batch.family.refs_sql.is_some()
            || batch.family.policy == Policy::Update
            || batch.has_deletes()
        {
            return Ok(None);
        }
        {
            let mut skip = self.skip_direct.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = skip.get_mut(family) {
                if *n > 0 {
                    *n -= 1;
                    return Ok(None);
                }
            }
        }
        tx.batch_execute("SAVEPOINT esurio_direct").await?;
        let mut n = 0u64;
        for (table, (bytes, rows)) in batch.family.tables.iter().zip(batch.staged.sealed()) {
            if rows == 0 {
                continue;
            }
            match self.copy(tx, &table.direct_copy_sql(), bytes).await {
                Ok(()) => n += rows as u64,
                Err(SinkError::Db(e)) if is_data_error(&e) => {
                    debug!(family, error = %e, "Direct COPY hit a conflict; merging through staging.");
                    tx.batch_execute(
                        "ROLLBACK TO SAVEPOINT esurio_direct; RELEASE SAVEPOINT esurio_direct",
                    )
                    .await?;
                    self.skip_direct
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(family, SKIP_DIRECT_AFTER_CONFLICT);
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
        tx.batch_execute("RELEASE SAVEPOINT esurio_direct").await?;
        Ok(Some(n))
    }

    /// The general path: COPY into temp staging tables, then merge under the family's conflict
    /// policy (bisecting rejected rows). Returns what the merge did and the records the database
    /// rejected or the policy quarantined.
    async fn stage_and_merge(
        &self,
        tx: &Transaction<'_>,
        batch: &Batch,
        references_due: std::time::Instant,
    ) -> Result<(RangeOutcome, Vec<Quarantined>), SinkError> {
        let tables = batch.family.tables;
        let stage_sql: String = tables
            .iter()
            .map(|t| t.stage_sql)
            .collect::<Vec<_>>()
            .join(";\n");
        self.echo(&stage_sql);
        tx.batch_execute(&stage_sql).await?;
        let mut staging_rejects = self.stage(tx, batch).await?;
        staging_rejects.extend(self.check_references(tx, batch, references_due).await?);
        let (mut merged, mut bad) = self.merge(tx, batch).await?;
        bad.extend(staging_rejects);
        for (offset, reason, message) in std::mem::take(&mut merged.unknown) {
            if let Some(span) = batch.span(offset) {
                bad.push(batch.reject(span, reason, message));
            }
        }
        for (offset, message) in std::mem::take(&mut merged.conflicts) {
            if let Some(span) = batch.span(offset) {
                bad.push(batch.reject(span, "conflicting_duplicate".to_owned(), message.clone()));
            }
            merged.conflicts.push((offset, message));
        }
        Ok((merged, bad))
    }

    /// The staged records that name rows the database does not know (a result's symbol, a signal's
    /// strategy): while `references_due` lies ahead the batch is retried ([`SinkError::Pending`]),
    /// since the other topic may not have been written yet; then they leave staging and are
    /// returned for quarantine.
    async fn check_references(
        &self,
        tx: &Transaction<'_>,
        batch: &Batch,
        references_due: std::time::Instant,
    ) -> Result<Vec<Quarantined>, SinkError> {
        let (Some(first), Some(last)) = (batch.valid.first(), batch.valid.last()) else {
            return Ok(Vec::new());
        };
        let unknown = writeback::unknown_refs(tx, batch.family, first.offset, last.offset, |q| {
            self.echo(q)
        })
        .await?;
        if unknown.is_empty() {
            return Ok(Vec::new());
        }
        if std::time::Instant::now() < references_due {
            let (offset, _, message) = &unknown[0];
            return Err(SinkError::Pending(format!(
                "{} of the batch's records name rows not stored yet (offset {offset}: {message})",
                unknown.len()
            )));
        }
        let offsets: Vec<i64> = unknown.iter().map(|u| u.0).collect();
        writeback::drop_staged(tx, batch.family, &offsets, |q| self.echo(q)).await?;
        Ok(unknown
            .into_iter()
            .filter_map(|(offset, reason, message)| {
                batch
                    .span(offset)
                    .map(|span| batch.reject(span, reason, message))
            })
            .collect())
    }

    /// COPYs the batch into the staging tables under a savepoint. A value PostgreSQL's input
    /// functions reject fails the whole stream; then the records are staged piece by piece,
    /// bisecting until each rejected record is alone, and those are returned for quarantine.
    async fn stage(
        &self,
        tx: &Transaction<'_>,
        batch: &Batch,
    ) -> Result<Vec<Quarantined>, SinkError> {
        let tables = batch.family.tables;
        tx.batch_execute("SAVEPOINT esurio_stage").await?;
        let mut whole = Ok(());
        for (table, (bytes, rows)) in tables.iter().zip(batch.staged.sealed()) {
            if rows == 0 {
                continue;
            }
            whole = self.copy(tx, &table.copy_sql(), bytes).await;
            if whole.is_err() {
                break;
            }
        }
        match whole {
            Ok(()) => {
                tx.batch_execute("RELEASE SAVEPOINT esurio_stage").await?;
                return Ok(Vec::new());
            }
            Err(SinkError::Db(e)) if is_data_error(&e) => {
                tx.batch_execute(
                    "ROLLBACK TO SAVEPOINT esurio_stage; RELEASE SAVEPOINT esurio_stage",
                )
                .await?;
                debug!(error = %e, "The staging COPY rejected a value; staging record by record.");
            }
            Err(e) => return Err(e),
        }
        let mut rejected = Vec::new();
        let mut todo = vec![(0usize, batch.valid.len())];
        while let Some((lo, hi)) = todo.pop() {
            tx.batch_execute("SAVEPOINT esurio_stage").await?;
            let mut failed = None;
            for (i, table) in tables.iter().enumerate().take(2) {
                let Some(bytes) = batch.copy_slice(i, lo, hi) else {
                    continue;
                };
                match self.copy(tx, &table.copy_sql(), bytes).await {
                    Ok(()) => {}
                    Err(SinkError::Db(e)) if is_data_error(&e) => {
                        failed = Some(e);
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            match failed {
                None => tx.batch_execute("RELEASE SAVEPOINT esurio_stage").await?,
                Some(e) => {
                    tx.batch_execute(
                        "ROLLBACK TO SAVEPOINT esurio_stage; RELEASE SAVEPOINT esurio_stage",
                    )
                    .await?;
                    if hi - lo == 1 {
                        let span = &batch.valid[lo];
                        warn!(offset = span.offset, error = %e, "The database rejected a value of a record; quarantining it.");
                        rejected.push(reject(batch, span, &e));
                    } else {
                        let mid = lo + (hi - lo) / 2;
                        todo.push((mid, hi));
                        todo.push((lo, mid));
                    }
                }
            }
        }
        Ok(rejected)
    }

    async fn copy(&self, tx: &Transaction<'_>, sql: &str, bytes: Bytes) -> Result<(), SinkError> {
        self.echo(sql);
        let sink = tx.copy_in::<_, Bytes>(sql).await?;
        futures_util::pin_mut!(sink);
        sink.send(bytes).await?;
        sink.finish().await?;
        Ok(())
    }

    /// Merges staged rows into the targets under a savepoint. On a data error, bisects the batch's
    /// valid records by offset until each rejected record is alone; returns what the merge did and
    /// the rejected records.
    async fn merge(
        &self,
        tx: &Transaction<'_>,
        batch: &Batch,
    ) -> Result<(RangeOutcome, Vec<Quarantined>), SinkError> {
        let mut merged = RangeOutcome::default();
        let mut rejected = Vec::new();
        // Tombstones apply in offset order between the records around them: the runs of records
        // between two tombstones merge as ranges.
        let mut start = 0;
        for (i, span) in batch.valid.iter().enumerate() {
            if span.delete {
                self.merge_indexes(tx, batch, start, i, &mut merged, &mut rejected)
                    .await?;
                self.delete(tx, batch, span, &mut merged, &mut rejected)
                    .await?;
                start = i + 1;
            }
        }
        self.merge_indexes(
            tx,
            batch,
            start,
            batch.valid.len(),
            &mut merged,
            &mut rejected,
        )
        .await?;
        Ok((merged, rejected))
    }

    /// Applies one tombstone under a savepoint (a row the database refuses is quarantined alone).
    async fn delete(
        &self,
        tx: &Transaction<'_>,
        batch: &Batch,
        span: &crate::batch::RawSpan,
        merged: &mut RangeOutcome,
        rejected: &mut Vec<Quarantined>,
    ) -> Result<(), SinkError> {
        let key = match batch.family.delete_key.map(|f| f(batch.key_of(span))) {
            Some(Ok(key)) => key,
            Some(Err(message)) => {
                rejected.push(batch.reject(span, UNKNOWN_TARGET.to_owned(), message));
                return Ok(());
            }
            None => {
                rejected.push(batch.reject(
                    span,
                    "empty_payload".to_owned(),
                    format!("{} records cannot be deleted", batch.family.name),
                ));
                return Ok(());
            }
        };
        tx.batch_execute("SAVEPOINT esurio_delete").await?;
        match writeback::delete(tx, batch.family, &key, |q| self.echo(q)).await {
            Ok(done) => {
                tx.batch_execute("RELEASE SAVEPOINT esurio_delete").await?;
                match done {
                    Deleted::Row => merged.deleted += 1,
                    Deleted::Before => merged.duplicates += 1,
                    Deleted::Unknown => rejected.push(batch.reject(
                        span,
                        UNKNOWN_TARGET.to_owned(),
                        format!(
                            "{} holds no row with the key {key} and never deleted one",
                            batch.family.name
                        ),
                    )),
                }
            }
            Err(SinkError::Db(e)) if is_data_error(&e) => {
                tx.batch_execute(
                    "ROLLBACK TO SAVEPOINT esurio_delete; RELEASE SAVEPOINT esurio_delete",
                )
                .await?;
                warn!(offset = span.offset, error = %e, "The database rejected a delete; quarantining it.");
                rejected.push(reject(batch, span, &e));
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Merges the valid records `lo..hi` (indexes into `batch.valid`, no tombstone among them).
    async fn merge_indexes(
        &self,
        tx: &Transaction<'_>,
        batch: &Batch,
        lo: usize,
        hi: usize,
        merged: &mut RangeOutcome,
        rejected: &mut Vec<Quarantined>,
    ) -> Result<(), SinkError> {
        if lo >= hi {
            return Ok(());
        }
        // Ranges of indexes into `batch.valid` still to merge; a stack so the work is depth-first
        // and in offset order (the policy's replay depends on it).
        let mut todo = vec![(lo, hi)];
        while let Some((lo, hi)) = todo.pop() {
            let from = batch.valid[lo].offset;
            let to = batch.valid[hi - 1].offset;
            tx.batch_execute("SAVEPOINT esurio_merge").await?;
            match merge::merge_range(tx, batch.family, from, to, |q| self.echo(q)).await {
                Ok(o) => {
                    tx.batch_execute("RELEASE SAVEPOINT esurio_merge").await?;
                    merged.add(o);
                }
                Err(SinkError::Db(e)) if is_no_partition(&e) => {
                    // A day partition this worker created or saw was dropped since (retention):
                    // forget what it knows and retry the batch, which creates it again (rows
                    // outside the partition window never get here: the validator quarantines them).
                    self.partitions
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clear();
                    return Err(SinkError::Concurrent(format!(
                        "a day partition is missing: {}",
                        super::describe(&e)
                    )));
                }
                Err(SinkError::Db(e)) if is_data_error(&e) => {
                    tx.batch_execute(
                        "ROLLBACK TO SAVEPOINT esurio_merge; RELEASE SAVEPOINT esurio_merge",
                    )
                    .await?;
                    if hi - lo == 1 {
                        let span = &batch.valid[lo];
                        warn!(offset = span.offset, error = %e, "The database rejected a record; quarantining it.");
                        rejected.push(reject(batch, span, &e));
                    } else {
                        let mid = lo + (hi - lo) / 2;
                        todo.push((mid, hi));
                        todo.push((lo, mid));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// A row for a day whose partition does not exist (dropped since the worker ensured it).
fn is_no_partition(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        db.code() == &tokio_postgres::error::SqlState::CHECK_VIOLATION
            && db.message().starts_with("no partition of relation")
    })
}

fn reject(batch: &Batch, span: &crate::batch::RawSpan, e: &tokio_postgres::Error) -> Quarantined {
    let (reason, message) = match e.as_db_error() {
        // A row for a day whose partition does not exist (dropped by retention meanwhile).
        Some(db)
            if db.code() == &tokio_postgres::error::SqlState::CHECK_VIOLATION
                && db.constraint().is_none()
                && db.message().starts_with("no partition of relation") =>
        {
            (
                "no_partition".to_owned(),
                format!(
                    "{}: the day's partition does not exist (dropped by retention?)",
                    db.message()
                ),
            )
        }
        Some(db) => (
            match db.constraint() {
                Some(c) => format!("constraint:{c}"),
                None => format!("sqlstate:{}", db.code().code()),
            },
            match db.detail() {
                Some(d) => format!("{} ({d})", db.message()),
                None => db.message().to_owned(),
            },
        ),
        None => ("database".to_owned(), e.to_string()),
    };
    batch.reject(span, reason, message)
}
