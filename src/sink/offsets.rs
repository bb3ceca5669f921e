//! Moves of a stored offset that are not a batch: an operator's `esurio offsets reset`, and the
//! worker's own reset over an offset gap (`kafka.on_offset_gap = reset_to_earliest`).
//!
//! Such a move skips or replays records, so it is never silent: the move and its audit row
//! (`offset_resets`, sql/migrations/0005_offset_resets.sql) commit in one transaction, with the
//! broker's low and high offsets of that moment. The row is locked first (`FOR UPDATE`), so a batch
//! committing concurrently is serialized with the reset: the batch either commits first (and the
//! reset overwrites its end) or waits and then fails its compare-and-set. Either way the partition's
//! owner is fenced and seeks to the reset offset; the delivery guarantee (see [`crate::sink`]) holds
//! for everything after it.

use super::describe;

const LOCK: &str = include_str!("../../sql/offsets/lock.sql");
const SET: &str = include_str!("../../sql/offsets/set.sql");
const AUDIT: &str = include_str!("../../sql/offsets/audit.sql");
const LIST: &str = include_str!("../../sql/offsets/list.sql");

/// Why a reset failed.
#[derive(Debug, thiserror::Error)]
pub enum OffsetsError {
    #[error("database error: {}", describe(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("no database connection: {}", crate::sink::chain(.0))]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The stored offset is not the one the decision was based on (a batch or another reset moved
    /// it meanwhile); nothing was changed.
    #[error("the stored offset of {topic}[{partition}] is {found:?}, not {expected:?} as expected; nothing was changed")]
    Moved {
        topic: String,
        partition: i32,
        expected: Option<i64>,
        found: Option<i64>,
    },
}

impl OffsetsError {
    /// Connection trouble is worth a retry; a moved offset needs a fresh decision, not a retry.
    pub fn is_retriable(&self) -> bool {
        match self {
            OffsetsError::Db(e) => super::is_transient(e),
            OffsetsError::Pool(_) => true,
            OffsetsError::Moved { .. } => false,
        }
    }
}

/// One partition's reset.
#[derive(Debug, Clone)]
pub struct Reset<'a> {
    pub group: &'a str,
    pub topic: &'a str,
    pub partition: i32,
    /// The stored offset the decision was based on; `None`: apply whatever is stored.
    pub expect: Option<Option<i64>>,
    pub new_offset: i64,
    /// The broker's low and high offsets when the new offset was chosen (for the audit row).
    pub low: i64,
    pub high: i64,
    /// `manual:earliest`, `manual:latest`, `manual:offset`, `manual:time` or `auto:earliest`.
    pub how: &'a str,
    pub reason: Option<&'a str>,
    /// Who ran the command (the OS user); `None` for the worker.
    pub os_user: Option<&'a str>,
}

/// What a reset did (or, for a dry run, would do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResetDone {
    /// The stored offset before (`None`: the partition had none, a row was inserted).
    pub old: Option<i64>,
    pub new: i64,
}

/// Applies a reset and its audit row in one transaction. With `dry_run`, or when the stored offset
/// already is the new one (no change, nothing to audit), only reads it under the same lock.
///
/// # Errors
/// [`OffsetsError::Moved`] when `expect` is set and the stored offset differs (nothing changed);
/// database errors.
pub async fn apply(
    client: &mut tokio_postgres::Client,
    r: &Reset<'_>,
    dry_run: bool,
) -> Result<ResetDone, OffsetsError> {
    let tx = client.transaction().await?;
    let old: Option<i64> = tx
        .query_opt(LOCK, &[&r.group, &r.topic, &r.partition])
        .await?
        .map(|row| row.get(0));
    if let Some(expected) = r.expect {
        if expected != old {
            return Err(OffsetsError::Moved {
                topic: r.topic.to_owned(),
                partition: r.partition,
                expected,
                found: old,
            });
        }
    }
    let done = ResetDone {
        old,
        new: r.new_offset,
    };
    if dry_run || old == Some(r.new_offset) {
        tx.rollback().await?;
        return Ok(done);
    }
    tx.execute(SET, &[&r.group, &r.topic, &r.partition, &r.new_offset])
        .await?;
    tx.execute(
        AUDIT,
        &[
            &r.group,
            &r.topic,
            &r.partition,
            &old,
            &r.new_offset,
            &r.low,
            &r.high,
            &r.how,
            &r.reason,
            &r.os_user,
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(done)
}

/// One stored offset, as `esurio offsets list` shows it.
#[derive(Debug, Clone)]
pub struct StoredOffset {
    pub topic: String,
    pub partition: i32,
    pub next_offset: i64,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// The stored offsets of a group, of one topic or of all.
///
/// # Errors
/// Database errors.
pub async fn list(
    client: &tokio_postgres::Client,
    group: &str,
    topic: Option<&str>,
) -> Result<Vec<StoredOffset>, OffsetsError> {
    let rows = client.query(LIST, &[&group, &topic]).await?;
    Ok(rows
        .iter()
        .map(|r| StoredOffset {
            topic: r.get(0),
            partition: r.get(1),
            next_offset: r.get(2),
            updated_at: r.get(3),
        })
        .collect())
}
