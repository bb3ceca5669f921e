//! Hand-over: the rows a batch's direct COPY stored, passed from its writer to the relay after the
//! commit, so the relay encodes their events without reading them back.
//!
//! # Why this is safe
//! A direct COPY (no conflict, no merge) stores exactly the rows of the COPY stream: the relay
//! decodes that stream with the same binary formats the database parsed it with
//! (`tokio_postgres`'s `FromSql`, as the read-back does) and fits `char(n)`/`varchar(n)` values as
//! the server does, so a handed-over event is byte for byte the one a read-back would give (the
//! crash test compares them). Tables with a JSON column are never handed over: `jsonb`
//! normalizes its text on input.
//!
//! # Why it never changes the guarantee
//! The hand-over is a cache, not a source of truth: the relay still lists the partition's
//! committed batches from `ingest_batches` and moves the cursor as before; a batch it finds
//! without a hand-over (committed before a restart, by another worker, on the merge path, a
//! moment before its writer offered it, or while the cache was full) is read back. Nothing
//! waits for a hand-over, so no stop can hang on one.

use super::event::{Cell, StoredRow};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio_postgres::types::{FromSql, Type};

/// At most this many bytes of COPY rows wait for the relay; beyond, writers hand nothing over
/// (those batches are read back) instead of growing the worker's memory.
pub const MAX_HELD_BYTES: usize = 32 * 1024 * 1024;

/// Hand-overs older than this are dropped (their partition moved to another worker's relay, or
/// its cursor went past them some other way); if still needed, the batch is read back.
pub const MAX_AGE: Duration = Duration::from_secs(60);

/// One batch's rows as the direct COPY sent them.
#[derive(Debug)]
pub struct Held {
    /// The family table's COPY stream (header, rows, trailer).
    pub rows: Bytes,
    at: Instant,
}

#[derive(Default)]
struct Inner {
    bytes: usize,
    /// By (topic, partition), then batch id.
    batches: HashMap<(String, i32), BTreeMap<i64, Held>>,
}

/// The hand-overs waiting for the relay, shared by the writers (who offer) and the relay (who
/// takes, prunes and expires).
pub struct HandOvers {
    /// Consumed topics whose batches may be handed over: events on, one table, no JSON column.
    topics: HashSet<String>,
    cap: usize,
    inner: Mutex<Inner>,
}

/// Whether a table's rows can be handed over (see the module docs): lineage columns last, as
/// the decoder expects, and no column whose stored text differs from what was sent.
pub fn eligible(table: &crate::sink::copy::Table) -> bool {
    let n = table.columns.len();
    n >= 3
        && table.columns[n - 3..] == ["source_topic", "source_partition", "source_offset"]
        && !table
            .types
            .iter()
            .any(|t| matches!(*t, Type::JSON | Type::JSONB))
}

impl HandOvers {
    pub fn new(topics: HashSet<String>, cap: usize) -> Self {
        Self {
            topics,
            cap,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A writer's offer after its batch `batch_id` committed through the direct COPY. Returns
    /// whether it was taken (false: not an eligible topic, or the cache is full).
    pub fn offer(&self, topic: &str, partition: i32, batch_id: i64, rows: Bytes) -> bool {
        if !self.topics.contains(topic) {
            return false;
        }
        let mut g = self.lock();
        if g.bytes + rows.len() > self.cap {
            return false;
        }
        g.bytes += rows.len();
        let old = g
            .batches
            .entry((topic.to_owned(), partition))
            .or_default()
            .insert(
                batch_id,
                Held {
                    rows,
                    at: Instant::now(),
                },
            );
        if let Some(old) = old {
            g.bytes -= old.rows.len();
        }
        true
    }

    /// The hand-over of batch `batch_id`, if its writer offered one.
    pub fn take(&self, topic: &str, partition: i32, batch_id: i64) -> Option<Held> {
        let mut g = self.lock();
        let key = (topic.to_owned(), partition);
        let map = g.batches.get_mut(&key)?;
        let held = map.remove(&batch_id)?;
        if map.is_empty() {
            g.batches.remove(&key);
        }
        g.bytes -= held.rows.len();
        Some(held)
    }

    /// Drops the partition's hand-overs of batches up to `upto` (the cursor is past them).
    pub fn prune(&self, topic: &str, partition: i32, upto: i64) {
        let mut g = self.lock();
        let key = (topic.to_owned(), partition);
        let Some(map) = g.batches.get_mut(&key) else {
            return;
        };
        let keep = map.split_off(&(upto + 1));
        let dropped: usize = map.values().map(|h| h.rows.len()).sum();
        *map = keep;
        if map.is_empty() {
            g.batches.remove(&key);
        }
        g.bytes -= dropped;
    }

    /// Drops hand-overs older than `max_age`.
    pub fn expire(&self, max_age: Duration) {
        let mut g = self.lock();
        let mut dropped = 0;
        for map in g.batches.values_mut() {
            map.retain(|_, h| {
                let keep = h.at.elapsed() < max_age;
                if !keep {
                    dropped += h.rows.len();
                }
                keep
            });
        }
        g.batches.retain(|_, m| !m.is_empty());
        g.bytes -= dropped;
    }

    /// Bytes held now.
    pub fn held_bytes(&self) -> usize {
        self.lock().bytes
    }
}

/// How the server fits a text value into its column: `char(n)` pads with spaces to n characters,
/// and `char(n)`/`varchar(n)` cut a longer value to n (only trailing spaces can be cut: anything
/// else fails the COPY).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    AsIs,
    Char(usize),
    Varchar(usize),
}

impl Fit {
    fn apply(self, s: &mut String) {
        let (n, pad) = match self {
            Fit::AsIs => return,
            Fit::Char(n) => (n, true),
            Fit::Varchar(n) => (n, false),
        };
        let chars = s.chars().count();
        if chars > n {
            if let Some((at, _)) = s.char_indices().nth(n) {
                s.truncate(at);
            }
        } else if pad && chars < n {
            s.extend(std::iter::repeat_n(' ', n - chars));
        }
    }
}

/// Why a handed-over stream could not be decoded (a defect: the worker wrote it itself); the relay
/// then reads the batch back.
#[derive(Debug, thiserror::Error)]
#[error("cannot decode a handed-over COPY row: {0}")]
pub struct DecodeError(String);

fn get<'a, T: FromSql<'a>>(ty: &Type, raw: &'a [u8]) -> Result<T, DecodeError> {
    T::from_sql(ty, raw).map_err(|e| DecodeError(format!("{ty}: {e}")))
}

/// [`cell_of`] into `cell`, reusing the text buffer it already holds (most columns are text, and
/// a row is decoded into the same cells for every event of a pass).
fn fill(cell: &mut Cell, ty: &Type, raw: Option<&[u8]>, fit: Fit) -> Result<(), DecodeError> {
    if let (Cell::Text(s), Some(raw)) = (&mut *cell, raw) {
        if !matches!(
            *ty,
            Type::INT2
                | Type::INT4
                | Type::INT8
                | Type::FLOAT8
                | Type::TIMESTAMPTZ
                | Type::DATE
                | Type::UUID
                | Type::FLOAT8_ARRAY
                | Type::TEXT_ARRAY
                | Type::JSON
                | Type::JSONB
        ) {
            s.clear();
            s.push_str(get::<&str>(ty, raw)?);
            fit.apply(s);
            return Ok(());
        }
    }
    *cell = cell_of(ty, raw, fit)?;
    Ok(())
}

/// A column's value from its binary COPY bytes, as [`super::event::cell`] reads it from a row.
fn cell_of(ty: &Type, raw: Option<&[u8]>, fit: Fit) -> Result<Cell, DecodeError> {
    let Some(raw) = raw else {
        return Ok(Cell::Null);
    };
    Ok(match *ty {
        Type::INT2 => Cell::Int(get::<i16>(ty, raw)?.into()),
        Type::INT4 => Cell::Int(get(ty, raw)?),
        Type::INT8 => Cell::Long(get(ty, raw)?),
        Type::FLOAT8 => Cell::Double(get(ty, raw)?),
        Type::TIMESTAMPTZ => Cell::Timestamp(get(ty, raw)?),
        Type::DATE => Cell::Date(get(ty, raw)?),
        Type::UUID => Cell::Uuid(get(ty, raw)?),
        Type::FLOAT8_ARRAY => Cell::Doubles(get(ty, raw)?),
        Type::TEXT_ARRAY => Cell::Texts(get(ty, raw)?),
        Type::JSON | Type::JSONB => return Err(DecodeError("JSON is never handed over".into())),
        _ => {
            let mut s: String = get(ty, raw)?;
            fit.apply(&mut s);
            Cell::Text(s)
        }
    })
}

/// The rows of a COPY stream the worker encoded for `types` (record columns, then the lineage:
/// topic, partition, offset), one at a time into `row`.
pub struct CopyRows<'a> {
    buf: &'a [u8],
    types: &'a [Type],
    fits: &'a [Fit],
    done: bool,
}

impl<'a> CopyRows<'a> {
    /// `fits` has one entry per record column (all but the lineage).
    pub fn new(stream: &'a [u8], types: &'a [Type], fits: &'a [Fit]) -> Self {
        let start = crate::sink::copy::ROWS_START.min(stream.len());
        Self {
            buf: &stream[start..],
            types,
            fits,
            done: false,
        }
    }

    /// Whether every row was read, up to the trailer.
    pub fn done(&self) -> bool {
        self.done
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError("the stream ends inside a row".into()));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn field(&mut self) -> Result<Option<&'a [u8]>, DecodeError> {
        let len = i32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes"));
        if len < 0 {
            return Ok(None);
        }
        self.take(len as usize).map(Some)
    }

    /// The next row into `row` (its cells and offset; the partition is the caller's). `false` at
    /// the trailer.
    ///
    /// # Errors
    /// The stream is not one the worker's encoder wrote for these types.
    pub fn next_into(&mut self, row: &mut StoredRow) -> Result<bool, DecodeError> {
        let n = i16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes"));
        if n < 0 {
            self.done = true;
            return Ok(false);
        }
        if n as usize != self.types.len() || self.types.len() < 3 {
            return Err(DecodeError(format!(
                "{n} fields for {} columns",
                self.types.len()
            )));
        }
        let record = self.types.len() - 3;
        row.cells.resize(record, Cell::Null);
        for (i, ty) in self.types[..record].iter().enumerate() {
            let raw = self.field()?;
            let fit = self.fits.get(i).copied().unwrap_or(Fit::AsIs);
            fill(&mut row.cells[i], ty, raw, fit)?;
        }
        // Lineage: the topic and partition are the batch's; the offset is the row's.
        self.field()?;
        self.field()?;
        let offset = self
            .field()?
            .ok_or_else(|| DecodeError("a row without an offset".into()))?;
        row.offset = get(&Type::INT8, offset)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::copy::{CopyBuffer, Lineage};
    use chrono::{DateTime, NaiveDate, Utc};
    use tokio_postgres::types::ToSql;

    fn fresh_row() -> StoredRow {
        StoredRow {
            cells: Vec::new(),
            partition: 0,
            offset: 0,
            entities: Vec::new(),
        }
    }

    #[test]
    fn every_cell_type_comes_back_as_the_database_returns_it() {
        let types = [
            Type::TEXT,
            Type::BPCHAR,
            Type::INT2,
            Type::INT4,
            Type::INT8,
            Type::FLOAT8,
            Type::TIMESTAMPTZ,
            Type::DATE,
            Type::UUID,
            Type::FLOAT8_ARRAY,
            Type::TEXT_ARRAY,
            Type::FLOAT8,
            Type::TEXT,
            Type::INT4,
            Type::INT8,
        ];
        let ts: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-12-05T10:00:00.123456Z")
            .unwrap()
            .into();
        let date = NaiveDate::from_ymd_opt(2026, 12, 5).unwrap();
        let id = uuid::Uuid::from_u128(7);
        let doubles = vec![Some(1.5), None, Some(-0.0)];
        let texts = vec![Some("a".to_owned()), None];
        let none: Option<f64> = None;
        let values: [&(dyn ToSql + Sync); 12] = [
            &"é text",
            &"US",
            &7i16,
            &-8i32,
            &(1i64 << 40),
            &f64::MIN_POSITIVE,
            &ts,
            &date,
            &id,
            &doubles,
            &texts,
            &none,
        ];
        let mut buf = CopyBuffer::default();
        let lineage = Lineage {
            topic: "t",
            partition: 3,
            offset: 41,
            timestamp: None,
        };
        buf.row(&types, &values, &lineage).unwrap();
        buf.row(
            &types,
            &values,
            &Lineage {
                offset: 42,
                ..lineage
            },
        )
        .unwrap();
        let stream = buf.finish();
        let mut fits = vec![Fit::AsIs; 12];
        fits[1] = Fit::Char(3);
        let mut rows = CopyRows::new(&stream, &types, &fits);
        let mut row = fresh_row();
        assert!(rows.next_into(&mut row).unwrap());
        assert_eq!(row.offset, 41);
        assert_eq!(
            row.cells,
            vec![
                Cell::Text("é text".into()),
                Cell::Text("US ".into()),
                Cell::Int(7),
                Cell::Int(-8),
                Cell::Long(1 << 40),
                Cell::Double(f64::MIN_POSITIVE),
                Cell::Timestamp(ts),
                Cell::Date(date),
                Cell::Uuid(id),
                Cell::Doubles(doubles.clone()),
                Cell::Texts(texts.clone()),
                Cell::Null,
            ]
        );
        assert!(rows.next_into(&mut row).unwrap());
        assert_eq!(row.offset, 42);
        assert!(!rows.next_into(&mut row).unwrap(), "the trailer ends it");
    }

    #[test]
    fn a_cut_stream_is_an_error_not_a_panic() {
        let types = [Type::TEXT, Type::TEXT, Type::INT4, Type::INT8];
        let mut buf = CopyBuffer::default();
        let lineage = Lineage {
            topic: "t",
            partition: 0,
            offset: 1,
            timestamp: None,
        };
        buf.row(&types, &[&"abc"], &lineage).unwrap();
        let stream = buf.finish();
        for cut in crate::sink::copy::ROWS_START..stream.len() - 2 {
            let mut rows = CopyRows::new(&stream[..cut], &types, &[]);
            let mut row = fresh_row();
            assert!(rows.next_into(&mut row).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn text_fits_its_column_as_the_server_fits_it() {
        let fit = |f: Fit, s: &str| {
            let mut s = s.to_owned();
            f.apply(&mut s);
            s
        };
        assert_eq!(fit(Fit::Char(3), "US"), "US ");
        assert_eq!(fit(Fit::Char(3), "USD  "), "USD");
        assert_eq!(fit(Fit::Char(2), "é"), "é ");
        assert_eq!(fit(Fit::Varchar(3), "ab"), "ab");
        assert_eq!(fit(Fit::Varchar(3), "abc  "), "abc");
        assert_eq!(fit(Fit::AsIs, "x  "), "x  ");
    }

    #[test]
    fn the_cache_is_bounded_pruned_and_expired() {
        let topics: HashSet<String> = ["md".to_owned()].into();
        let h = HandOvers::new(topics, 100);
        let rows = |n: usize| Bytes::from(vec![0u8; n]);
        assert!(!h.offer("other", 0, 1, rows(10)), "not an eligible topic");
        assert!(h.offer("md", 0, 1, rows(40)));
        assert!(h.offer("md", 0, 2, rows(40)));
        assert!(!h.offer("md", 1, 3, rows(40)), "over the cap");
        assert_eq!(h.held_bytes(), 80);
        assert_eq!(h.take("md", 0, 2).map(|x| x.rows.len()), Some(40));
        assert!(h.take("md", 0, 2).is_none(), "taken once");
        assert!(h.offer("md", 0, 3, rows(10)));
        h.prune("md", 0, 1);
        assert_eq!(h.held_bytes(), 10);
        assert!(h.take("md", 0, 1).is_none());
        h.expire(Duration::ZERO);
        assert_eq!(h.held_bytes(), 0);
        assert!(h.take("md", 0, 3).is_none());
    }

    #[test]
    fn tables_with_json_are_never_handed_over() {
        for spec in crate::records::FAMILIES {
            for t in spec.tables {
                let json = t.types.contains(&Type::JSONB);
                assert_eq!(eligible(t), !json, "{}", t.name);
            }
        }
    }
}
