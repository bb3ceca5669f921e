//! The sink: writes batches to PostgreSQL, exactly once.
//!
//! # Delivery guarantee
//! Every Kafka record ends as its rows or as one quarantine row, exactly once, whatever crashes. What
//! keeps it:
//! - A batch's rows (binary COPY into a temp staging table, then `INSERT ... ON CONFLICT DO NOTHING`),
//!   its quarantined records, its audit row and the move of its partition's `consumed_offsets` row are
//!   one transaction. Either all of it is committed or none of it is.
//! - The offset move is a compare-and-set from the value the worker last read: if another writer (a
//!   worker that still thinks it owns the partition after a rebalance) moved it first, zero rows match,
//!   the transaction rolls back ([`SinkError::Fenced`]) and the consumer re-seeks to the stored value.
//! - A consumer starts each assigned partition at the stored `next_offset`, never at Kafka's committed
//!   offset (Kafka commits follow for lag tooling only).
//! - Natural keys catch records that were produced twice; they are counted as duplicates, not errors.
//!
//! A failure of infrastructure (connection lost, statement timeout, server shutting down) rolls the
//! transaction back and the batch is retried with backoff; it is never quarantined. A row the database
//! rejects (a constraint) is isolated by bisecting the merge under savepoints and quarantined alone.

pub mod copy;
pub mod merge;
pub mod migrate;
pub mod offsets;
pub mod pool;
mod write;
pub mod writeback;

pub use write::{Sink, WriteOutcome};

use tokio_postgres::error::SqlState;

/// Why a batch write failed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("database error: {}", describe(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("no database connection: {}", chain(.0))]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("another writer moved the stored offset of {topic}[{partition}] to {stored:?}; this batch expected {expected:?}")]
    Fenced {
        topic: String,
        partition: i32,
        expected: Option<i64>,
        stored: Option<i64>,
    },
    /// Another writer stored a key this batch was about to insert, after this transaction looked:
    /// the batch is retried and then sees that row.
    #[error("concurrent write: {0}")]
    Concurrent(String),
    /// Records of the batch name rows that are not stored yet (a strategy, a symbol); the batch is
    /// retried until they are or `database.reference_wait` has passed, then those records are
    /// quarantined.
    #[error("waiting for referenced rows: {0}")]
    Pending(String),
}

impl SinkError {
    /// Retry what a retry can fix: lost connections, timeouts, server restarts, serialization
    /// failures, deadlocks, exhausted resources.
    pub fn is_retriable(&self) -> bool {
        match self {
            SinkError::Db(e) => is_transient(e),
            SinkError::Pool(_) => true,
            SinkError::Fenced { .. } => false,
            SinkError::Concurrent(_) => true,
            SinkError::Pending(_) => true,
        }
    }
}

/// An error with its causes ("error connecting to server: Connection refused (os error 111)"):
/// deadpool's and tokio-postgres' own Display stop at the outermost one.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        let c = cause.to_string();
        if !s.ends_with(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        src = cause.source();
    }
    s
}

/// The whole story of a database error: tokio-postgres' own Display says only "db error".
pub fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        if let Some(d) = db.detail() {
            s.push_str(": ");
            s.push_str(d);
        }
        return s;
    }
    chain(e)
}

/// Whether a database error is worth retrying the whole transaction for.
pub fn is_transient(e: &tokio_postgres::Error) -> bool {
    let Some(code) = e.code() else {
        // No SQLSTATE: an I/O error, a closed connection or a timeout on our side.
        return true;
    };
    let c = code.code();
    c.starts_with("08") // connection exception
        || c.starts_with("53") // insufficient resources
        || c.starts_with("57P") // admin/crash shutdown, cannot connect now
        || *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
        || *code == SqlState::QUERY_CANCELED // statement_timeout
        || *code == SqlState::LOCK_NOT_AVAILABLE
        || *code == SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT
}

/// Whether a database error is about the data (a constraint or a bad value), so that isolating and
/// quarantining the row is the right answer.
pub fn is_data_error(e: &tokio_postgres::Error) -> bool {
    e.code()
        .map(|c| c.code().starts_with("23") || c.code().starts_with("22"))
        .unwrap_or(false)
}
