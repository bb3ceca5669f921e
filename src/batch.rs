//! The batch: what one partition accumulated between two writes. Built by the topic's consumer
//! thread (records decoded, validated and already encoded for COPY), handed to the partition's writer.
//!
//! A batch is cut when it reaches `batch.max_records` records or `batch.max_bytes` encoded bytes, or
//! when its oldest record has waited `batch.linger`.
//!
//! Every batch charges the memory it holds to the process-wide [`MemoryBudget`] while it exists
//! (being built, queued, or written), and gives it back when it is dropped.

use crate::config::BatchSettings;
use crate::records::FamilySpec;
use crate::sink::copy::StagedRows;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The bound on memory held in batches across all topics and partitions (`batch.max_in_flight_bytes`).
/// Per-partition bounds alone (queue depth x batch size) grow with the number of partitions: 13
/// topics of 4 partitions each held ~1 GiB in a backlog. Consumers stop fetching while the budget is
/// exhausted; writers keep draining (they need no budget), so the bound cannot deadlock.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: usize,
    used: AtomicUsize,
    /// Set when use reaches the limit, cleared when it falls below three quarters of it, so that
    /// consumers do not pause and resume on every batch.
    holding: AtomicBool,
}

impl MemoryBudget {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            used: AtomicUsize::new(0),
            holding: AtomicBool::new(false),
        })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes currently charged.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Whether consumers should stop fetching now.
    pub fn exhausted(&self) -> bool {
        let used = self.used();
        if used >= self.limit {
            self.holding.store(true, Ordering::Relaxed);
            true
        } else if used < self.limit / 4 * 3 {
            self.holding.store(false, Ordering::Relaxed);
            false
        } else {
            self.holding.load(Ordering::Relaxed)
        }
    }

    fn charge(&self, from: usize, to: usize) {
        if to > from {
            self.used.fetch_add(to - from, Ordering::Relaxed);
        } else {
            self.used.fetch_sub(from - to, Ordering::Relaxed);
        }
    }
}

/// A record that will not become rows, with why.
#[derive(Debug, Clone)]
pub struct Quarantined {
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    /// `decode`, `validate` or `database`.
    pub stage: &'static str,
    pub reason: String,
    pub message: String,
    /// The Kafka record's timestamp, kept for triage.
    pub record_ts: Option<chrono::DateTime<chrono::Utc>>,
}

/// Where a valid record's raw bytes sit in the batch's arena: kept so that a record the database
/// itself rejects can still be quarantined with its original bytes.
#[derive(Debug, Clone, Copy)]
pub struct RawSpan {
    pub offset: i64,
    start: u32,
    key_len: u32,
    payload_len: u32,
    has_key: bool,
    /// A tombstone (null value) that deletes the row of its key: it stages no rows.
    pub delete: bool,
    record_ts: Option<i64>,
    /// Where this record's rows end in each table's COPY stream (they start where the previous
    /// valid record's end).
    ends: [u32; 2],
}

#[derive(Debug)]
pub struct Batch {
    pub family: &'static FamilySpec,
    pub topic: Arc<str>,
    pub partition: i32,
    /// Which assignment of this partition produced the batch; a writer that was fenced drops batches
    /// of older epochs.
    pub epoch: u64,
    /// The `consumed_offsets.next_offset` this batch continues from (`None`: no row yet). The write
    /// only commits if the stored value still equals it.
    pub expected: Option<i64>,
    /// First and last Kafka offsets covered (valid or not).
    pub first_offset: i64,
    pub last_offset: i64,
    pub staged: StagedRows,
    /// Valid records, ascending by offset, with their raw bytes in `arena`.
    pub valid: Vec<RawSpan>,
    arena: Vec<u8>,
    pub quarantined: Vec<Quarantined>,
    pub started: Instant,
    budget: Arc<MemoryBudget>,
    /// Bytes charged to `budget` so far.
    charged: usize,
    /// Heap bytes the quarantined records own (kept as a sum: recounting per record would make a
    /// batch full of bad records quadratic).
    quarantined_heap: usize,
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.budget.charge(self.charged, 0);
    }
}

impl Batch {
    pub fn new(
        family: &'static FamilySpec,
        topic: Arc<str>,
        partition: i32,
        epoch: u64,
        expected: Option<i64>,
        first_offset: i64,
        budget: Arc<MemoryBudget>,
    ) -> Self {
        let mut b = Self {
            family,
            topic,
            partition,
            epoch,
            expected,
            first_offset,
            last_offset: first_offset - 1,
            staged: StagedRows::new(family.tables.len()),
            valid: Vec::new(),
            arena: Vec::new(),
            quarantined: Vec::new(),
            started: Instant::now(),
            budget,
            charged: 0,
            quarantined_heap: 0,
        };
        b.recharge();
        b
    }

    /// The heap memory the batch holds (allocated, not only used: buffers grow by doubling).
    fn footprint(&self) -> usize {
        self.staged.capacity()
            + self.arena.capacity()
            + self.valid.capacity() * std::mem::size_of::<RawSpan>()
            + self.quarantined.capacity() * std::mem::size_of::<Quarantined>()
            + self.quarantined_heap
    }

    /// Brings the budget's charge up to date with what the batch holds now.
    fn recharge(&mut self) {
        let now = self.footprint();
        // Most records fit in capacity already there: skip the shared atomic (13 consumer threads
        // would otherwise bounce its cache line on every record).
        if now != self.charged {
            self.budget.charge(self.charged, now);
            self.charged = now;
        }
    }

    /// The offset to store once this batch is committed.
    pub fn next_offset(&self) -> i64 {
        self.last_offset + 1
    }

    pub fn records(&self) -> usize {
        self.valid.len() + self.quarantined.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last_offset < self.first_offset
    }

    pub fn bytes(&self) -> usize {
        self.staged.bytes() + self.arena.len()
    }

    /// Notes a valid record (its rows are already in `staged`).
    pub fn push_valid(
        &mut self,
        offset: i64,
        key: Option<&[u8]>,
        payload: &[u8],
        record_ts: Option<i64>,
    ) {
        let start = self.arena.len() as u32;
        let k = key.unwrap_or_default();
        self.arena.extend_from_slice(k);
        self.arena.extend_from_slice(payload);
        self.valid.push(RawSpan {
            offset,
            start,
            key_len: k.len() as u32,
            payload_len: payload.len() as u32,
            has_key: key.is_some(),
            delete: false,
            record_ts,
            ends: self.staged.ends(),
        });
        self.last_offset = offset;
        self.recharge();
    }

    /// Notes a tombstone whose key names a row to delete (families with deletes only). It stages
    /// no rows; the sink applies it in offset order between the merges of the records around it.
    pub fn push_delete(&mut self, offset: i64, key: Option<&[u8]>, record_ts: Option<i64>) {
        self.push_valid(offset, key, &[], record_ts);
        if let Some(last) = self.valid.last_mut() {
            last.delete = true;
        }
    }

    /// Whether the batch holds tombstones.
    pub fn has_deletes(&self) -> bool {
        self.valid.iter().any(|s| s.delete)
    }

    /// The Kafka key of a valid record.
    pub fn key_of(&self, span: &RawSpan) -> Option<&[u8]> {
        let s = span.start as usize;
        span.has_key
            .then(|| &self.arena[s..s + span.key_len as usize])
    }

    pub fn push_quarantined(&mut self, q: Quarantined) {
        self.last_offset = q.offset;
        self.quarantined_heap += q.key.as_ref().map_or(0, Vec::capacity)
            + q.payload.as_ref().map_or(0, Vec::capacity)
            + q.reason.capacity()
            + q.message.capacity();
        self.quarantined.push(q);
        self.recharge();
    }

    /// Finishes the staged rows (see [`StagedRows::seal`]); no rows can be added afterwards.
    pub fn seal(&mut self) {
        self.staged.seal();
        self.recharge();
    }

    /// A COPY stream of table `table`'s rows of the valid records `lo..hi` (indexes into `valid`),
    /// and whether it holds any row.
    pub fn copy_slice(&self, table: usize, lo: usize, hi: usize) -> Option<bytes::Bytes> {
        let start = if lo == 0 {
            crate::sink::copy::ROWS_START
        } else {
            self.valid[lo - 1].ends[table] as usize
        };
        let end = self.valid[hi - 1].ends[table] as usize;
        (end > start).then(|| self.staged.slice(table, start, end))
    }

    /// The valid record at `offset`, if the batch holds one.
    pub fn span(&self, offset: i64) -> Option<&RawSpan> {
        self.valid
            .binary_search_by_key(&offset, |s| s.offset)
            .ok()
            .map(|i| &self.valid[i])
    }

    /// Moves a valid record to quarantine after the database rejected its rows.
    pub fn reject(&self, span: &RawSpan, reason: String, message: String) -> Quarantined {
        let s = span.start as usize;
        let k = span.key_len as usize;
        let p = span.payload_len as usize;
        Quarantined {
            offset: span.offset,
            key: span.has_key.then(|| self.arena[s..s + k].to_vec()),
            payload: (!span.delete).then(|| self.arena[s + k..s + k + p].to_vec()),
            stage: "database",
            reason,
            message,
            record_ts: span
                .record_ts
                .and_then(chrono::DateTime::from_timestamp_millis),
        }
    }

    /// Whether the batch must be written now.
    pub fn is_full(&self, s: &BatchSettings) -> bool {
        self.records() >= s.max_records || self.bytes() >= s.max_bytes
    }

    /// When the batch must be written at the latest.
    pub fn deadline(&self, linger: Duration) -> Instant {
        self.started + linger
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BatchSettings {
        BatchSettings {
            max_records: 3,
            max_bytes: 1 << 20,
            linger: Duration::from_millis(50),
            queue_depth: 1,
            max_in_flight_bytes: 1 << 30,
        }
    }

    #[test]
    fn cuts_on_records_and_tracks_offsets() {
        let fam = crate::records::family("market_data").unwrap();
        let mut b = Batch::new(
            fam,
            "t".into(),
            0,
            1,
            Some(10),
            10,
            MemoryBudget::new(1 << 30),
        );
        assert!(b.is_empty());
        b.push_valid(10, Some(b"k"), b"{}", None);
        b.push_quarantined(Quarantined {
            offset: 12,
            key: None,
            payload: None,
            stage: "decode",
            reason: "x".into(),
            message: "y".into(),
            record_ts: None,
        });
        assert!(!b.is_full(&settings()));
        b.push_valid(13, None, b"{\"a\":1}", Some(0));
        assert!(b.is_full(&settings()));
        assert_eq!(b.next_offset(), 14);
        let q = b.reject(&b.valid[1], "r".into(), "m".into());
        assert_eq!(q.payload.as_deref(), Some(&b"{\"a\":1}"[..]));
        assert_eq!(q.key, None);
        let q = b.reject(&b.valid[0], "r".into(), "m".into());
        assert_eq!(q.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(q.payload.as_deref(), Some(&b"{}"[..]));
    }

    #[test]
    fn cuts_on_bytes() {
        let fam = crate::records::family("market_data").unwrap();
        let mut b = Batch::new(fam, "t".into(), 0, 1, None, 0, MemoryBudget::new(1 << 30));
        let s = BatchSettings {
            max_bytes: 64,
            ..settings()
        };
        b.push_valid(0, None, &[b'x'; 70], None);
        assert!(b.is_full(&s));
    }

    #[test]
    fn batches_charge_the_budget_while_they_live() {
        let fam = crate::records::family("market_data").unwrap();
        let budget = MemoryBudget::new(1 << 20);
        let mut b = Batch::new(fam, "t".into(), 0, 1, None, 0, budget.clone());
        let empty = budget.used();
        assert!(empty > 0, "the COPY buffers are allocated up front");
        for i in 0..1000 {
            b.push_valid(i, None, &[b'x'; 1000], None);
        }
        assert!(budget.used() >= empty + 1_000_000);
        let before = budget.used();
        b.push_quarantined(Quarantined {
            offset: 1000,
            key: None,
            payload: Some(vec![0; 10_000]),
            stage: "decode",
            reason: "x".into(),
            message: "y".into(),
            record_ts: None,
        });
        assert!(budget.used() >= before + 10_000);
        assert!(budget.exhausted());
        b.seal();
        let other = Batch::new(fam, "t".into(), 1, 1, None, 0, budget.clone());
        drop(b);
        // Below the limit but above three quarters: still holding until it drains further.
        assert!(budget.used() < budget.limit());
        drop(other);
        assert_eq!(budget.used(), 0);
        assert!(!budget.exhausted());
    }
}
