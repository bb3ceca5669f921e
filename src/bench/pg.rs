//! The benchmark's PostgreSQL side: a private database per measurement, the raw COPY ceiling, and
//! the queries that read the worker's progress and audit trail.

use crate::config::Settings;
use crate::decode::Decoder;
use crate::records::{Ctx, FamilySpec};
use crate::sink::copy::{Lineage, StagedRows, Table};
use anyhow::{bail, Context};
use bytes::Bytes;
use futures_util::SinkExt;
use std::collections::BTreeMap;
use std::time::Instant;
use tokio_postgres::{Client, NoTls};

/// The binary COPY header `sink::copy` writes at the start of every buffer (signature, flags,
/// header extension length).
const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The end-of-data marker (a tuple with -1 fields).
const COPY_TRAILER: &[u8] = &[0xff, 0xff];

pub async fn connect(url: &str) -> anyhow::Result<Client> {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .context("cannot connect to PostgreSQL")?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("bench: warning: a database connection failed: {e}");
        }
    });
    Ok(client)
}

/// A database of its own (created from the configured database.url's server, as its user, which
/// must have CREATEDB), migrated; dropped again by [`BenchDb::drop`].
pub struct BenchDb {
    pub name: String,
    pub url: String,
    admin_url: String,
}

impl BenchDb {
    pub async fn create(settings: &Settings, name: &str) -> anyhow::Result<Self> {
        let admin_url = settings.database.url().to_owned();
        let mut u = url::Url::parse(&admin_url).context("database.url is not a URL")?;
        u.set_path(&format!("/{name}"));
        let db = Self {
            name: name.to_owned(),
            url: u.to_string(),
            admin_url,
        };
        let admin = connect(&db.admin_url).await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| {
                format!("cannot create the database {name} (does the user have CREATEDB?)")
            })?;
        // `esurio migrate` against it (a child process, so its log stays out of the report).
        let url = db.url.clone();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(std::env::current_exe()?)
                .arg("migrate")
                .env("ESURIO__DATABASE__URL", url)
                .stdin(std::process::Stdio::null())
                .output()
        })
        .await
        .map_err(anyhow::Error::from)
        .and_then(|r| r.map_err(anyhow::Error::from));
        match out {
            Ok(o) if o.status.success() => Ok(db),
            Ok(o) => {
                db.drop().await;
                bail!(
                    "`esurio migrate` failed on {name} ({}): {}",
                    o.status,
                    String::from_utf8_lossy(&o.stderr)
                )
            }
            Err(e) => {
                db.drop().await;
                Err(e.context("cannot run `esurio migrate`"))
            }
        }
    }

    pub async fn connect(&self) -> anyhow::Result<Client> {
        connect(&self.url).await
    }

    /// Drops the database (best effort: retried for a minute while PostgreSQL is unreachable,
    /// e.g. restarted by another user of the stack; reported on failure).
    pub async fn drop(&self) {
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let res = async {
                let admin = connect(&self.admin_url).await?;
                admin
                    .batch_execute(&format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        self.name
                    ))
                    .await?;
                anyhow::Ok(())
            }
            .await;
            match res {
                Ok(()) => return,
                Err(e) if Instant::now() >= deadline => {
                    eprintln!(
                        "bench: warning: cannot drop the database {}: {e:#}",
                        self.name
                    );
                    return;
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_secs(2)).await,
            }
        }
    }
}

/// Creates the day partitions the worker creates at start (yesterday..today+7) for every
/// day-partitioned table, so the ceiling writes into the same partitions.
pub async fn ensure_partitions_ahead(client: &Client) -> anyhow::Result<()> {
    let today = chrono::Utc::now().date_naive();
    for t in crate::records::all_tables().filter(|t| t.partitioned) {
        client
            .query_one(
                include_str!("../../sql/sink/ensure_partitions.sql"),
                &[
                    &t.name,
                    &(today - chrono::Duration::days(1)),
                    &(today + chrono::Duration::days(7)),
                ],
            )
            .await?;
    }
    Ok(())
}

/// Sum of the stored next offsets of a consumer group: the records it has committed (the topics
/// start at offset 0).
pub async fn committed_records(client: &Client, group: &str) -> anyhow::Result<i64> {
    Ok(client
        .query_one(
            "SELECT coalesce(sum(next_offset), 0)::bigint FROM consumed_offsets WHERE consumer_group = $1",
            &[&group],
        )
        .await?
        .get(0))
}

/// Checks that every table holds exactly the expected rows and nothing was quarantined.
pub async fn verify_rows(client: &Client, expected: &BTreeMap<String, u64>) -> anyhow::Result<()> {
    for (table, want) in expected {
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await?
            .get(0);
        if n as u64 != *want {
            bail!("{table} holds {n} rows, {want} expected");
        }
    }
    let q: i64 = client
        .query_one("SELECT count(*) FROM quarantine", &[])
        .await?
        .get(0);
    if q != 0 {
        bail!("{q} records were quarantined, none expected");
    }
    Ok(())
}

/// The worker's audit trail of one group, summarized.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct BatchStats {
    pub batches: i64,
    pub records: i64,
    /// Unix seconds of the first and last commit.
    pub first_commit: f64,
    pub last_commit: f64,
}

pub async fn batch_stats(client: &Client, group: &str) -> anyhow::Result<BatchStats> {
    let r = client
        .query_one(
            "SELECT count(*), coalesce(sum(records), 0)::bigint,
                    coalesce(extract(epoch FROM min(committed_at)), 0)::float8,
                    coalesce(extract(epoch FROM max(committed_at)), 0)::float8
               FROM ingest_batches WHERE consumer_group = $1",
            &[&group],
        )
        .await?;
    Ok(BatchStats {
        batches: r.get(0),
        records: r.get(1),
        first_commit: r.get(2),
        last_commit: r.get(3),
    })
}

/// One committed batch: its offsets, and when its transaction started and committed (Unix ms, µs
/// precision). The start is the `ingested_at` (`now()`, the transaction's start) of the batch's
/// first row in the family's first table.
#[derive(Debug, Clone)]
pub struct BatchRow {
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub started_ms: f64,
    pub committed_ms: f64,
}

/// The committed batches of one topic, by partition and offset.
///
/// The transaction starts come from one scan of the family's first table, grouped by partition
/// and `ingested_at` (a batch's rows share its transaction's `now()`), not from a join: the fresh
/// tables have no statistics, and the planner's nested loop over them took minutes.
pub async fn batches(
    client: &Client,
    group: &str,
    topic: &str,
    first_table: &str,
) -> anyhow::Result<Vec<BatchRow>> {
    let starts: std::collections::HashMap<(i32, i64), f64> = client
        .query(
            &format!(
                "SELECT source_partition, min(source_offset),
                        (extract(epoch FROM ingested_at) * 1000)::float8
                   FROM {first_table} WHERE source_topic = $1
                  GROUP BY source_partition, ingested_at"
            ),
            &[&topic],
        )
        .await?
        .into_iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect();
    Ok(client
        .query(
            "SELECT partition, first_offset, last_offset,
                    (extract(epoch FROM committed_at) * 1000)::float8
               FROM ingest_batches
              WHERE consumer_group = $1 AND topic = $2
              ORDER BY partition, first_offset",
            &[&group, &topic],
        )
        .await?
        .into_iter()
        .map(|r| {
            let (partition, first_offset) = (r.get(0), r.get(1));
            BatchRow {
                partition,
                first_offset,
                last_offset: r.get(2),
                started_ms: starts
                    .get(&(partition, first_offset))
                    .copied()
                    .unwrap_or(f64::NAN),
                committed_ms: r.get(3),
            }
        })
        .collect())
}

/// One table's rows for the ceiling, as sealed COPY buffers of the crate's own encoder.
pub struct TableData {
    pub table: &'static Table,
    pub chunks: Vec<Bytes>,
    pub rows: u64,
}

/// Every row of a workload, encoded before the clock starts.
pub struct CopyData {
    /// Parents before children (the order of `records::all_tables`).
    pub tables: Vec<TableData>,
    pub records: u64,
    pub rows: u64,
    pub bytes: u64,
}

/// Records per encoded chunk (the worker's default batch.max_records).
const CHUNK: usize = 5000;

/// Reads the topics back and runs every record through the worker's own decode, validate and
/// encode code (`Decoder::decode`, the family's `process` into `StagedRows`, `seal`) with its
/// real lineage, so the ceiling writes exactly the rows the worker writes.
pub fn encode_topics(
    settings: &Settings,
    families: &[&'static FamilySpec],
    topics: &[String],
) -> anyhow::Result<CopyData> {
    crate::decode::limit_avro_allocations(settings.decode.max_record_bytes);
    let decoders = families
        .iter()
        .map(|f| {
            Decoder::new(
                f.avro_schema,
                settings.format_for(f.name),
                settings.decode.max_record_bytes,
                None,
            )
            .with_context(|| format!("the Avro schema of {} does not parse", f.name))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut ctx = Ctx::new(settings.validate.max_future, settings.validate.max_past)
        .with_partition_max_past(settings.database.partition_max_past);
    ctx.now = chrono::Utc::now();
    let mut staged: Vec<(StagedRows, usize)> = families
        .iter()
        .map(|f| (StagedRows::new(f.tables.len()), 0))
        .collect();
    let mut out: BTreeMap<&'static str, TableData> = BTreeMap::new();
    let mut sealed = |k: usize, s: &mut StagedRows| {
        s.seal();
        for (table, (bytes, rows)) in families[k].tables.iter().zip(s.sealed()) {
            let td = out.entry(table.name).or_insert_with(|| TableData {
                table,
                chunks: Vec::new(),
                rows: 0,
            });
            td.rows += rows as u64;
            td.chunks.push(bytes);
        }
    };
    let records = super::kafka::read_back(settings, topics, |k, partition, offset, bytes| {
        let lineage = Lineage {
            topic: &topics[k],
            partition,
            offset,
            timestamp: None,
        };
        let payload = decoders[k]
            .decode(bytes)
            .with_context(|| format!("{}[{partition}]@{offset} does not decode", topics[k]))?;
        let (s, n) = &mut staged[k];
        (families[k].process)(payload, &ctx, &lineage, s)
            .with_context(|| format!("{}[{partition}]@{offset} is not valid", topics[k]))?;
        *n += 1;
        if *n == CHUNK {
            sealed(k, s);
            *s = StagedRows::new(families[k].tables.len());
            *n = 0;
        }
        Ok(())
    })?;
    for (k, (s, n)) in staged.iter_mut().enumerate() {
        if *n > 0 {
            sealed(k, s);
        }
    }
    let mut data = CopyData {
        tables: Vec::new(),
        records,
        rows: 0,
        bytes: 0,
    };
    for t in crate::records::all_tables() {
        if let Some(td) = out.remove(t.name) {
            data.rows += td.rows;
            data.bytes += td.chunks.iter().map(|c| c.len() as u64).sum::<u64>();
            data.tables.push(td);
        }
    }
    Ok(data)
}

/// The ceiling: `COPY <table> (...) FROM STDIN (FORMAT binary)` (the columns of
/// `Table::direct_copy_sql`, the statement the worker's fast path runs), autocommit, on all of
/// `clients` at once: connection k streams every k-th encoded chunk of each table in one COPY per
/// table (parents before children, so foreign keys hold). With one connection this is the plain
/// single-stream ceiling; with one per partition it has the worker's parallelism. Returns the
/// seconds it took.
pub async fn copy_all(clients: &[Client], data: &CopyData) -> anyhow::Result<f64> {
    let started = Instant::now();
    let n = clients.len().max(1);
    let per_connection = clients.iter().enumerate().map(|(k, client)| async move {
        let mut written = vec![0u64; data.tables.len()];
        for (t, td) in data.tables.iter().enumerate() {
            let mine: Vec<&Bytes> = td.chunks.iter().skip(k).step_by(n).collect();
            if td.rows > 0 && !mine.is_empty() {
                written[t] = copy_chunks(client, td.table, &mine).await?;
            }
        }
        anyhow::Ok(written)
    });
    let written = futures_util::future::try_join_all(per_connection).await?;
    for (t, td) in data.tables.iter().enumerate() {
        let n: u64 = written.iter().map(|w| w[t]).sum();
        if n != td.rows {
            bail!(
                "COPY into {} wrote {n} rows, {} expected",
                td.table.name,
                td.rows
            );
        }
    }
    Ok(started.elapsed().as_secs_f64())
}

/// One COPY streaming the given encoded chunks (each a complete binary COPY buffer) as one stream:
/// one header, the chunks' tuples, one trailer. Returns the rows written.
async fn copy_chunks(client: &Client, table: &Table, chunks: &[&Bytes]) -> anyhow::Result<u64> {
    let sink = client.copy_in::<_, Bytes>(&table.direct_copy_sql()).await?;
    futures_util::pin_mut!(sink);
    sink.feed(Bytes::from_static(COPY_HEADER)).await?;
    for c in chunks {
        if !c.starts_with(COPY_HEADER) || !c.ends_with(COPY_TRAILER) {
            bail!("an encoded COPY buffer does not have the expected header and trailer");
        }
        sink.feed(c.slice(COPY_HEADER.len()..c.len() - COPY_TRAILER.len()))
            .await?;
    }
    sink.feed(Bytes::from_static(COPY_TRAILER)).await?;
    Ok(sink.finish().await?)
}

/// What the client backends of one database were doing, sampled every 20 ms from
/// `pg_stat_activity`: per state, the number of (backend, sample) pairs. `active` backends count
/// under their wait event (`IO:WALSync`, `LWLock:BufferContent`, `Client:ClientRead` when a
/// COPY waits for data, ...) or `CPU` when they wait for nothing; the others under their state
/// (`idle in transaction`: waiting for the client's next statement; `idle`: no transaction).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WaitProfile {
    pub samples: u64,
    pub counts: BTreeMap<String, u64>,
}

impl WaitProfile {
    pub fn add(&mut self, other: &WaitProfile) {
        self.samples += other.samples;
        for (k, v) in &other.counts {
            *self.counts.entry(k.clone()).or_default() += v;
        }
    }

    /// The average number of backends in each state, largest first.
    pub fn averages(&self) -> Vec<(String, f64)> {
        let mut v: Vec<(String, f64)> = self
            .counts
            .iter()
            .map(|(k, n)| (k.clone(), *n as f64 / self.samples.max(1) as f64))
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v
    }
}

/// Samples a database's backends until stopped.
pub struct WaitSampler {
    stop: tokio_util::sync::CancellationToken,
    handle: tokio::task::JoinHandle<WaitProfile>,
}

const WAIT_SAMPLE: &str = "SELECT CASE WHEN state = 'active'
                 THEN coalesce(wait_event_type || ':' || wait_event, 'CPU')
                 ELSE coalesce(state, 'unknown') END,
            count(*)::int8
       FROM pg_stat_activity
      WHERE datname = current_database() AND pid <> pg_backend_pid()
        AND backend_type = 'client backend'
      GROUP BY 1";

impl WaitSampler {
    pub async fn start(url: &str) -> anyhow::Result<Self> {
        let client = connect(url).await?;
        let stop = tokio_util::sync::CancellationToken::new();
        let token = stop.clone();
        let handle = tokio::spawn(async move {
            let mut p = WaitProfile::default();
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(20));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = token.cancelled() => return p,
                    _ = tick.tick() => {}
                }
                if let Ok(rows) = client.query(WAIT_SAMPLE, &[]).await {
                    p.samples += 1;
                    for r in rows {
                        *p.counts.entry(r.get::<_, String>(0)).or_default() +=
                            r.get::<_, i64>(1) as u64;
                    }
                }
            }
        });
        Ok(Self { stop, handle })
    }

    pub async fn stop(self) -> WaitProfile {
        self.stop.cancel();
        self.handle.await.unwrap_or_default()
    }
}
