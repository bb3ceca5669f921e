//! Binary COPY encoding, done by the consumer thread while it builds a batch, so that the database
//! connection only ever streams ready bytes.
//!
//! This is the format `tokio_postgres::binary_copy::BinaryCopyInWriter` writes; encoding it ourselves
//! lets the work happen synchronously, per record, off the connection (and lets a batch be retried
//! after a lost connection without re-encoding).

use bytes::{BufMut, Bytes, BytesMut};
use tokio_postgres::types::{IsNull, ToSql, Type};

const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Where the first row starts in a COPY stream (after the header).
pub const ROWS_START: usize = HEADER.len();

/// A target table: its COPY column list (lineage last) with types, and its SQL.
#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    /// The natural key (the primary key's columns): what "the same record" means.
    pub key: &'static [&'static str],
    /// Column names in encoding order, lineage columns (`source_topic, source_partition,
    /// source_offset`) last.
    pub columns: &'static [&'static str],
    pub types: &'static [Type],
    /// Range-partitioned by day on a timestamp: partitions must exist before rows arrive.
    pub partitioned: bool,
    /// Creates `pg_temp.stage_<name>` on a connection.
    pub stage_sql: &'static str,
}

impl Table {
    /// COPY straight into the table: the fast path when no row of the batch conflicts.
    pub fn direct_copy_sql(&self) -> String {
        format!(
            "COPY {} ({}) FROM STDIN (FORMAT binary)",
            self.name,
            self.columns.join(", ")
        )
    }

    /// Whether the table orders versions of a key by a `version_at` column (revise families).
    pub fn versioned(&self) -> bool {
        self.columns.contains(&"version_at")
    }

    /// The columns that make two rows of the same key identical: every record column, without the
    /// version time and the lineage.
    pub fn identity_columns(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.columns.iter().copied().filter(|c| {
            !matches!(
                *c,
                "version_at" | "source_topic" | "source_partition" | "source_offset"
            )
        })
    }

    pub fn copy_sql(&self) -> String {
        format!(
            "COPY pg_temp.stage_{} ({}) FROM STDIN (FORMAT binary)",
            self.name,
            self.columns.join(", ")
        )
    }
}

/// Where a row came from: stored with it so that every row traces back to a Kafka offset.
#[derive(Debug, Clone, Copy)]
pub struct Lineage<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// The Kafka record's timestamp: the version time of families whose records carry no time of
    /// their own that says how new they are.
    pub timestamp: Option<chrono::DateTime<chrono::Utc>>,
}

impl Lineage<'_> {
    /// The version time of a record without one of its own: its Kafka timestamp (the spider's
    /// produce time), or now for a record without one.
    pub fn version_time(&self) -> chrono::DateTime<chrono::Utc> {
        self.timestamp.unwrap_or_else(chrono::Utc::now)
    }
}

/// The rows of one table in binary COPY format.
#[derive(Debug)]
pub struct CopyBuffer {
    buf: BytesMut,
    rows: usize,
}

impl Default for CopyBuffer {
    fn default() -> Self {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        buf.put_slice(HEADER);
        Self { buf, rows: 0 }
    }
}

impl CopyBuffer {
    /// Appends one row: `values` for the table's own columns, then the lineage.
    ///
    /// # Errors
    /// A value's `ToSql` failed (a bug: validated records always encode); the buffer is unchanged.
    pub fn row(
        &mut self,
        types: &[Type],
        values: &[&(dyn ToSql + Sync)],
        lineage: &Lineage<'_>,
    ) -> Result<(), String> {
        let start = self.buf.len();
        let res = self.try_row(types, values, lineage);
        if res.is_err() {
            self.buf.truncate(start);
        } else {
            self.rows += 1;
        }
        res
    }

    fn try_row(
        &mut self,
        types: &[Type],
        values: &[&(dyn ToSql + Sync)],
        lineage: &Lineage<'_>,
    ) -> Result<(), String> {
        let n = values.len() + 3;
        if types.len() != n {
            return Err(format!(
                "{} values for {} columns",
                values.len(),
                types.len()
            ));
        }
        self.buf.put_i16(n as i16);
        let lineage_values: [&(dyn ToSql + Sync); 3] =
            [&lineage.topic, &lineage.partition, &lineage.offset];
        for (v, ty) in values.iter().chain(lineage_values.iter()).zip(types) {
            let at = self.buf.len();
            self.buf.put_i32(0);
            match v
                .to_sql_checked(ty, &mut self.buf)
                .map_err(|e| e.to_string())?
            {
                IsNull::Yes => {
                    self.buf.truncate(at);
                    self.buf.put_i32(-1);
                }
                IsNull::No => {
                    let len = i32::try_from(self.buf.len() - at - 4)
                        .map_err(|_| "value larger than 2 GiB".to_string())?;
                    self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
                }
            }
        }
        Ok(())
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn len_bytes(&self) -> usize {
        self.buf.len()
    }

    /// The finished COPY stream (header, rows, trailer).
    pub fn finish(mut self) -> Bytes {
        self.buf.put_i16(-1);
        self.buf.freeze()
    }

    fn truncate(&mut self, len: usize, rows: usize) {
        self.buf.truncate(len);
        self.rows = rows;
    }
}

/// The staged rows of a batch: one COPY buffer per table of the family, plus the days that
/// partitioned tables need. Sealed once, before the batch is handed to its writer, so that retries
/// resend the same bytes without copying them.
#[derive(Debug)]
pub struct StagedRows {
    pub buffers: Vec<CopyBuffer>,
    sealed: Vec<(Bytes, usize)>,
    /// The allocation the sealed streams still hold (a frozen `Bytes` keeps its buffer's capacity).
    sealed_capacity: usize,
    /// Distinct UTC days (days since 1970-01-01) of rows bound for day-partitioned tables.
    pub days: Vec<i32>,
}

/// A point to roll staged rows back to when a record fails half-way through encoding.
pub struct Mark(Vec<(usize, usize)>);

impl StagedRows {
    pub fn new(tables: usize) -> Self {
        Self {
            buffers: (0..tables).map(|_| CopyBuffer::default()).collect(),
            sealed: Vec::new(),
            sealed_capacity: 0,
            days: Vec::new(),
        }
    }

    pub fn note_day(&mut self, ts: &chrono::DateTime<chrono::Utc>) {
        let day = ts.timestamp().div_euclid(86_400) as i32;
        if !self.days.contains(&day) {
            self.days.push(day);
        }
    }

    pub fn bytes(&self) -> usize {
        self.buffers
            .iter()
            .map(CopyBuffer::len_bytes)
            .sum::<usize>()
            + self.sealed.iter().map(|(b, _)| b.len()).sum::<usize>()
    }

    /// The heap memory the buffers hold: their capacity while they grow, then what sealing kept.
    pub fn capacity(&self) -> usize {
        self.buffers.iter().map(|b| b.buf.capacity()).sum::<usize>() + self.sealed_capacity
    }

    /// Finishes every buffer; after this no rows can be added.
    pub fn seal(&mut self) {
        self.sealed_capacity += self.buffers.iter().map(|b| b.buf.capacity()).sum::<usize>();
        self.sealed = std::mem::take(&mut self.buffers)
            .into_iter()
            .map(|b| {
                let rows = b.rows();
                (b.finish(), rows)
            })
            .collect();
    }

    /// Each table's finished COPY stream (cheap clones) and row count, in table order.
    pub fn sealed(&self) -> impl Iterator<Item = (Bytes, usize)> + '_ {
        self.sealed.iter().map(|(b, n)| (b.clone(), *n))
    }

    /// Bytes written so far to each table's buffer (at most two tables per family), so that a
    /// record's rows can be cut out of the sealed streams again ([`StagedRows::slice`]).
    pub fn ends(&self) -> [u32; 2] {
        let mut e = [ROWS_START as u32; 2];
        for (i, b) in self.buffers.iter().take(2).enumerate() {
            e[i] = b.len_bytes() as u32;
        }
        e
    }

    /// A complete COPY stream of the rows between byte positions `start..end` of table `table`'s
    /// sealed stream (positions from [`StagedRows::ends`]): used to stage a batch piece by piece
    /// when the whole stream is rejected.
    pub fn slice(&self, table: usize, start: usize, end: usize) -> Bytes {
        let Some((bytes, _)) = self.sealed.get(table) else {
            return Bytes::new();
        };
        let end = end.min(bytes.len().saturating_sub(2)).max(start);
        let mut b = BytesMut::with_capacity(HEADER.len() + end - start + 2);
        b.put_slice(HEADER);
        b.put_slice(&bytes[start..end]);
        b.put_i16(-1);
        b.freeze()
    }

    pub fn mark(&self) -> Mark {
        Mark(self.buffers.iter().map(|b| (b.buf.len(), b.rows)).collect())
    }

    pub fn rollback(&mut self, mark: Mark) {
        for (b, (len, rows)) in self.buffers.iter_mut().zip(mark.0) {
            b.truncate(len, rows);
        }
    }
}
