//! `esurio bench`: how fast the worker ingests, against the ceiling the database allows, and how
//! long a record takes from Kafka to a committed row. All in one run on one machine:
//!
//! 1. **Fill** fresh topics with N valid simulated records ([`crate::simulate::generate`]), once
//!    per encoding (`--formats`, separate topics per encoding).
//! 2. **End to end** (`e2e`): the real worker binary (`esurio run --exit-when-idle 2s`, the normal
//!    exactly-once path) on those topics, into a fresh migrated database. Timed from its start until
//!    `sum(consumed_offsets.next_offset)` of its group equals the records produced (the idle-exit
//!    wait is not counted). Its peak RSS (`VmHWM`) and CPU time come from `/proc`, as do the CPU
//!    seconds PostgreSQL and the broker used meanwhile.
//! 3. **Ceiling**: the same rows, decoded, validated and COPY-encoded beforehand by the worker's
//!    own code (with the same lineage), streamed by one plain `COPY ... FROM STDIN (FORMAT binary)`
//!    per table on one connection into an equally fresh database: what PostgreSQL itself can take.
//!    `ceiling-parallel` does the same on one connection per partition at once (the worker's
//!    parallelism), for comparison.
//! 4. **Latency**: fresh topics, the worker started and warmed up, then records produced at a fixed
//!    rate (`--latency-load` x the median end-to-end rate) for `--latency-duration`, evenly over
//!    the partitions, each stamped with its send time as its Kafka CreateTime. A record's latency is
//!    its batch's `ingest_batches.committed_at` (clock_timestamp() at the end of the batch's
//!    transaction) minus that timestamp.
//!
//! Every repetition uses its own database (dropped afterwards), so each inserts the same rows into
//! an empty indexed table; `e2e` and `ceiling` alternate so drift hits both alike. Medians with min
//! and max are printed as a table on stdout; progress goes to stderr; `--json` writes everything.
//!
//! The worker is started with this process's environment plus its own database, topic prefix,
//! group and topics, so `ESURIO__BATCH__MAX_RECORDS=20000 esurio bench ...` measures that setting.

mod kafka;
mod pg;
mod procfs;
mod stats;

use crate::config::Settings;
use crate::records::FamilySpec;
use crate::simulate::{default_base_time, generate, Expect, GenOptions, SimFormat};
use anyhow::{bail, Context};
use pg::{BenchDb, CopyData};
use procfs::{CpuSnapshot, CpuUse, Stack};
use serde::Serialize;
use stats::{percentile, thousands, Spread};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// What to fill the topics with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Market-data ticks only (topic market_data).
    Market,
    /// All 13 spider topics, N/13 records each (articles and posts with their entities).
    Mixed,
}

/// The encoding of a variant's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BenchFormat {
    /// JSON objects.
    Json,
    /// Avro, single-object encoding (C3 01, fingerprint, body); needs no schema registry.
    Avro,
}

impl BenchFormat {
    fn sim(self) -> SimFormat {
        match self {
            BenchFormat::Json => SimFormat::Json,
            BenchFormat::Avro => SimFormat::AvroSingleObject,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            BenchFormat::Json => "json",
            BenchFormat::Avro => "avro",
        }
    }
}

/// A measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Measure {
    /// The worker, end to end.
    E2e,
    /// Raw COPY of the same rows on one connection (the ceiling the ratio is taken against).
    Ceiling,
    /// Raw COPY of the same rows on one connection per partition at once: the ceiling with the
    /// worker's parallelism (informational; on few cores it may be no faster than one).
    CeilingParallel,
    /// Per-record latency at a fixed offered rate.
    Latency,
}

/// Arguments of `esurio bench`.
///
/// Needs the local stack (or any PostgreSQL whose database.url user has CREATEDB, and a Kafka that
/// lets it create and delete topics). Creates, and drops again, its own databases
/// (`<name>_<id>_...`), topics (`<name>.<id>.<format>.<family>`) and consumer groups, so it can run
/// next to other users of the same stack. Worker settings (batch.*, database.pool_size, ...) come
/// from the environment and config files, as for `esurio run`: the worker inherits this process's
/// environment and working directory, so choose its config directory with ESURIO_CONFIG_DIR (a
/// --config-dir flag is not passed on).
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Records to produce (per encoding; spread evenly over the families of the workload).
    #[arg(long, default_value_t = 2_000_000, value_name = "N")]
    pub records: usize,

    /// Which topics to fill.
    #[arg(long, value_enum, default_value_t = Workload::Market)]
    pub workload: Workload,

    /// Encodings to measure, comma-separated; each gets its own topics.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [BenchFormat::Json, BenchFormat::Avro])]
    pub formats: Vec<BenchFormat>,

    /// Measurements to take, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Measure::E2e, Measure::Ceiling, Measure::CeilingParallel, Measure::Latency])]
    pub measure: Vec<Measure>,

    /// Repetitions of each measurement (medians are reported).
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub repeat: usize,

    /// Partitions of every topic the benchmark creates.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub partitions: i32,

    /// Offered load of the latency runs, as a share of the median end-to-end records/s.
    #[arg(long, default_value_t = 0.2, value_name = "F")]
    pub latency_load: f64,

    /// Offered load of the latency runs in records/s (overrides --latency-load; needed when e2e is
    /// not measured).
    #[arg(long, value_name = "R")]
    pub latency_rate: Option<f64>,

    /// How long each latency run produces.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub latency_duration: Duration,

    /// Seed of the simulated records.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,

    /// Give up a worker run when its committed offsets did not move for this long.
    #[arg(long, default_value = "3m", value_parser = humantime::parse_duration)]
    pub stall_timeout: Duration,

    /// Times a failed measurement is repeated before the benchmark gives up (the stack may be
    /// shared with tests that restart PostgreSQL or Kafka).
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub retries: usize,

    /// Prefix of the databases, topics and consumer groups the benchmark creates.
    #[arg(long, default_value = "bench", value_parser = parse_name)]
    pub name: String,

    /// Keep the topics (they are deleted at the end by default).
    #[arg(long)]
    pub keep_topics: bool,

    /// Also measure end to end with enrichment events on for every benchmarked family (in
    /// `enrichment.format`), each repetition right after the same run with them off; "done" is
    /// then when every row's event was acknowledged, and the table says what the events cost.
    #[arg(long)]
    pub enrichment: bool,

    /// Also write every measurement as JSON to this file (`-`: stdout, the table then goes to
    /// stderr).
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,

    /// Directory for the worker logs (default: the system temp directory).
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
}

fn parse_name(s: &str) -> Result<String, String> {
    if !s.is_empty()
        && s.len() <= 20
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{s:?}: use 1 to 20 of a-z, 0-9, _ (starting with a letter)"
        ))
    }
}

/// One end-to-end run of the worker.
#[derive(Debug, Clone, Serialize)]
pub struct E2eRun {
    pub rep: usize,
    /// From the worker's start until every record was committed.
    pub secs: f64,
    pub rows_per_s: f64,
    pub records_per_s: f64,
    /// From the worker's start until its first batch committed.
    pub startup_secs: f64,
    /// Rows per second between the first and the last commit (`ingest_batches.committed_at`).
    pub steady_rows_per_s: f64,
    /// From the last commit until the worker exited (idle wait and shutdown; not counted).
    pub exit_secs: f64,
    pub peak_rss_mib: f64,
    /// CPU seconds over `secs`, by process.
    pub cpu: CpuUse,
    /// What the database's backends were doing meanwhile.
    pub waits: pg::WaitProfile,
    /// The worker's CPU seconds until it exited.
    pub worker_cpu_total: f64,
    pub batches: i64,
    pub records_per_batch: f64,
    /// With enrichment on: the events published and their bytes (payload and key).
    pub events: Option<i64>,
    pub event_bytes: Option<i64>,
    pub log: PathBuf,
}

/// One raw COPY run.
#[derive(Debug, Clone, Serialize)]
pub struct CeilingRun {
    pub rep: usize,
    /// Connections streaming at once.
    pub connections: usize,
    pub secs: f64,
    pub rows_per_s: f64,
    pub cpu: CpuUse,
    pub waits: pg::WaitProfile,
}

/// One latency run.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyRun {
    pub rep: usize,
    pub offered_per_s: f64,
    pub achieved_per_s: f64,
    /// How late the producer was at worst against its schedule (s).
    pub producer_worst_late_secs: f64,
    pub records: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    /// The same split at the batch's transaction start (`ingested_at`, the transaction's `now()`):
    /// the time until its transaction began (batching, linger, queueing, consuming), and the
    /// transaction itself (offset CAS, COPY, audit, COMMIT).
    pub before_tx_p50_ms: f64,
    pub before_tx_p99_ms: f64,
    pub in_tx_p50_ms: f64,
    pub in_tx_p99_ms: f64,
    pub batches: usize,
    pub records_per_batch: f64,
    pub peak_rss_mib: f64,
    pub cpu: CpuUse,
    pub waits: pg::WaitProfile,
    pub log: PathBuf,
}

/// Medians (with min and max) of a variant's runs.
#[derive(Debug, Clone, Serialize, Default)]
pub struct VariantSummary {
    pub e2e_rows_per_s: Option<Spread>,
    pub e2e_steady_rows_per_s: Option<Spread>,
    pub e2e_startup_secs: Option<Spread>,
    pub ceiling_rows_per_s: Option<Spread>,
    /// median(e2e) / median(ceiling); min and max over the per-repetition ratios.
    pub ratio: Option<Spread>,
    /// The same with one COPY connection per partition.
    pub ceiling_parallel_rows_per_s: Option<Spread>,
    pub ratio_parallel: Option<Spread>,
    pub peak_rss_mib: Option<Spread>,
    pub worker_cpu_secs: Option<Spread>,
    pub pg_cpu_secs: Option<Spread>,
    pub kafka_cpu_secs: Option<Spread>,
    pub other_cpu_secs: Option<Spread>,
    pub ceiling_pg_cpu_secs: Option<Spread>,
    pub ceiling_parallel_pg_cpu_secs: Option<Spread>,
    pub records_per_batch: Option<Spread>,
    /// With enrichment events on: rows/s, and its median over the median with them off (the
    /// target is >= 0.75), what the events cost the broker and the worker, and their size.
    pub enriched_rows_per_s: Option<Spread>,
    pub enriched_ratio: Option<Spread>,
    pub enriched_kafka_cpu_secs: Option<Spread>,
    pub enriched_worker_cpu_secs: Option<Spread>,
    pub enriched_pg_cpu_secs: Option<Spread>,
    pub event_bytes_per_row: Option<Spread>,
    pub event_mib: Option<Spread>,
    pub latency_rate: Option<f64>,
    pub latency_p50_ms: Option<Spread>,
    pub latency_p99_ms: Option<Spread>,
    pub latency_peak_rss_mib: Option<Spread>,
    pub latency_before_tx_p99_ms: Option<Spread>,
    pub latency_in_tx_p99_ms: Option<Spread>,
    /// Average number of the database's client backends per state, over all runs of a kind.
    pub e2e_waits: Vec<(String, f64)>,
    pub ceiling_waits: Vec<(String, f64)>,
    pub ceiling_parallel_waits: Vec<(String, f64)>,
    pub latency_waits: Vec<(String, f64)>,
}

/// Everything measured for one encoding.
#[derive(Debug, Clone, Serialize)]
pub struct VariantReport {
    pub format: BenchFormat,
    pub topics: Vec<String>,
    pub fill: kafka::Filled,
    pub copy_bytes: Option<u64>,
    pub e2e: Vec<E2eRun>,
    /// The same runs with enrichment events on (`--enrichment`).
    pub e2e_enriched: Vec<E2eRun>,
    pub ceiling: Vec<CeilingRun>,
    pub ceiling_parallel: Vec<CeilingRun>,
    pub latency: Vec<LatencyRun>,
    pub summary: VariantSummary,
}

/// Where the benchmark ran.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub memory_mib: Option<u64>,
    pub postgres: Option<String>,
    pub kafka: Option<String>,
    pub librdkafka: String,
    pub build: &'static str,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub id: String,
    pub started: chrono::DateTime<chrono::Utc>,
    pub machine: Machine,
    pub workload: Workload,
    pub records: usize,
    pub partitions: i32,
    pub repeat: usize,
    /// The worker settings the runs used (from this process's settings).
    pub batch_max_records: usize,
    pub batch_linger_ms: u128,
    pub pool_size: usize,
    pub variants: Vec<VariantReport>,
}

/// What every measurement needs.
struct Bench<'a> {
    settings: &'a Settings,
    args: &'a BenchArgs,
    id: String,
    families: Vec<&'static FamilySpec>,
    counts: Vec<usize>,
    log_dir: PathBuf,
    seq: std::sync::atomic::AtomicUsize,
}

/// Repeats a failed measurement up to `--retries` times (another user of the shared stack may
/// restart PostgreSQL or Kafka under it); the failure is reported either way.
macro_rules! retried {
    ($bench:expr, $retries:expr, $label:expr, $run:expr) => {{
        let mut attempt = 0usize;
        loop {
            match $run.await {
                Ok(r) => break r,
                Err(e) if attempt < $retries => {
                    attempt += 1;
                    eprintln!(
                        "bench: warning: {} failed: {e:#}\nbench: repeating it (attempt {} of {})",
                        $label,
                        attempt + 1,
                        $retries + 1
                    );
                    $bench.wait_for_stack().await;
                }
                Err(e) => return Err(e),
            }
        }
    }};
}

/// Runs `esurio bench`.
///
/// # Errors
/// Invalid arguments, the stack unreachable, or a run that fails or stalls (its database is
/// dropped and its topics deleted even then).
pub async fn run(settings: &Settings, args: BenchArgs) -> anyhow::Result<()> {
    if args.records == 0 || args.repeat == 0 || args.partitions < 1 {
        bail!("--records, --repeat and --partitions must be at least 1");
    }
    if !(args.latency_load > 0.0 && args.latency_load <= 1.0) {
        bail!("--latency-load must be within (0, 1]");
    }
    if args.formats.is_empty() || args.measure.is_empty() {
        bail!("nothing to measure");
    }
    if cfg!(debug_assertions) {
        eprintln!(
            "bench: warning: this is a debug build; build with --release for meaningful figures"
        );
    }
    let families: Vec<&'static FamilySpec> = match args.workload {
        Workload::Market => vec![crate::records::family("market_data").context("market_data")?],
        Workload::Mixed => crate::records::FAMILIES.iter().collect(),
    };
    let per = args.records / families.len();
    let counts: Vec<usize> = (0..families.len())
        .map(|i| per + usize::from(i < args.records % families.len()))
        .collect();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let id = format!("{}_{:06x}", std::process::id(), nanos & 0xff_ffff);
    let log_dir = args
        .log_dir
        .clone()
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("esurio-{}-{id}", args.name));
    std::fs::create_dir_all(&log_dir)
        .with_context(|| format!("cannot create {}", log_dir.display()))?;
    let stack = Stack::find();
    if stack.postmasters.is_empty() || stack.kafka.is_none() {
        eprintln!("bench: warning: PostgreSQL or Kafka process not found in /proc; their CPU shares are not reported");
    }
    let b = Bench {
        settings,
        args: &args,
        id: id.clone(),
        families,
        counts,
        log_dir,
        seq: std::sync::atomic::AtomicUsize::new(1),
    };
    let mut report = Report {
        id,
        started: chrono::Utc::now(),
        machine: machine(settings).await,
        workload: args.workload,
        records: args.records,
        partitions: args.partitions,
        repeat: args.repeat,
        batch_max_records: settings.batch.max_records,
        batch_linger_ms: settings.batch.linger.as_millis(),
        pool_size: settings.database.pool_size,
        variants: Vec::new(),
    };
    eprintln!(
        "bench: id {}, {} records of {:?} per encoding, formats {:?}, measures {:?}, {} repetitions; worker logs in {}",
        b.id,
        args.records,
        args.workload,
        args.formats,
        args.measure,
        args.repeat,
        b.log_dir.display()
    );
    for fmt in &args.formats {
        let v = b.variant(*fmt).await?;
        report.variants.push(v);
    }
    let table = summary_table(&report);
    match args.json.as_deref() {
        Some(p) if p == Path::new("-") => {
            eprint!("{table}");
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Some(p) => {
            std::fs::write(p, serde_json::to_string_pretty(&report)?)
                .with_context(|| format!("cannot write {}", p.display()))?;
            print!("{table}");
        }
        None => print!("{table}"),
    }
    Ok(())
}

async fn machine(settings: &Settings) -> Machine {
    let memory_mib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|k| k / 1024)
    });
    let postgres = match pg::connect(settings.database.url()).await {
        Ok(c) => c
            .query_one("SELECT version()", &[])
            .await
            .ok()
            .map(|r| r.get::<_, String>(0)),
        Err(_) => None,
    };
    let kafka = std::env::var("ESURIO_KAFKA_VERSION").ok().or_else(|| {
        let pom = std::fs::read_to_string("deploy/kafka/pom.xml").ok()?;
        pom.split("<kafka.version>")
            .skip(1)
            .filter_map(|s| s.split('<').next())
            .map(str::trim)
            .find(|v| v.starts_with(|c: char| c.is_ascii_digit()))
            .map(str::to_owned)
    });
    Machine {
        cpus: std::thread::available_parallelism().map_or(0, usize::from),
        memory_mib,
        postgres,
        kafka,
        librdkafka: rdkafka::util::get_rdkafka_version().1,
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    }
}

/// Kills a worker still running when dropped (an error path).
struct WorkerGuard(Option<Child>);

impl WorkerGuard {
    fn pid(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }

    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("a running worker")
    }
}

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}

/// The last lines of a log file, for error messages.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

const MIB: f64 = 1024.0;

/// What [`Bench::watch`] saw.
struct Watched {
    done: Instant,
    cpu_done: CpuSnapshot,
}

impl Bench<'_> {
    fn topics(&self, prefix: &str) -> Vec<String> {
        self.families
            .iter()
            .map(|f| format!("{prefix}{}", f.name))
            .collect()
    }

    fn gen_options(&self, fmt: BenchFormat, f: &FamilySpec) -> GenOptions {
        let now = chrono::Utc::now();
        let v = &self.settings.validate;
        let mut o = GenOptions::new(self.args.seed, default_base_time(now));
        o.now = now;
        o.invalid_ratio = 0.0;
        o.format = fmt.sim();
        o.max_record_bytes = self.settings.decode.max_record_bytes;
        o.max_future = v.max_future;
        o.max_past = v.max_past;
        o.worker_format = self.settings.format_for(f.name);
        o
    }

    /// After a failed measurement: waits (up to 3 minutes) until PostgreSQL accepts connections
    /// again and then 5 s more, in case another user of the stack is restarting it.
    async fn wait_for_stack(&self) {
        let deadline = Instant::now() + Duration::from_secs(180);
        while Instant::now() < deadline {
            if pg::connect(self.settings.database.url()).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }

    /// A number no other name of this run has (a repeated attempt must not reuse a name).
    fn uniq(&self) -> usize {
        self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    fn db_name(&self, fmt: BenchFormat, what: &str, rep: usize) -> String {
        format!(
            "{}_{}_{}_{what}{rep}_{}",
            self.args.name,
            self.id,
            fmt.as_str(),
            self.uniq()
        )
    }

    fn group(&self, fmt: BenchFormat, what: &str, rep: usize) -> String {
        format!(
            "{}-{}-{}-{what}{rep}-{}",
            self.args.name,
            self.id,
            fmt.as_str(),
            self.uniq()
        )
    }

    /// Fills one encoding's topics and measures it; deletes its topics whatever happens.
    async fn variant(&self, fmt: BenchFormat) -> anyhow::Result<VariantReport> {
        let prefix = format!("{}.{}.{}.", self.args.name, self.id, fmt.as_str());
        let topics = self.topics(&prefix);
        kafka::create_topics(self.settings, &topics, self.args.partitions).await?;
        let res = self.variant_on(fmt, &prefix, &topics).await;
        if !self.args.keep_topics {
            kafka::delete_topics(self.settings, &topics).await;
        }
        res
    }

    async fn variant_on(
        &self,
        fmt: BenchFormat,
        prefix: &str,
        topics: &[String],
    ) -> anyhow::Result<VariantReport> {
        let a = self.args;
        eprintln!(
            "bench: [{}] producing {} records to {}",
            fmt.as_str(),
            a.records,
            topics.join(", ")
        );
        let fill = {
            let settings = self.settings.clone();
            let families = self.families.clone();
            let topics = topics.to_vec();
            let counts = self.counts.clone();
            let opts: Vec<GenOptions> = families.iter().map(|f| self.gen_options(fmt, f)).collect();
            tokio::task::spawn_blocking(move || {
                kafka::fill(&settings, &families, &topics, &counts, &opts)
            })
            .await??
        };
        eprintln!(
            "bench: [{}] produced {} records ({} rows) in {:.1}s",
            fmt.as_str(),
            fill.records,
            fill.total_rows,
            fill.secs
        );
        let copy: Option<Arc<CopyData>> = if a.measure.contains(&Measure::Ceiling)
            || a.measure.contains(&Measure::CeilingParallel)
        {
            let started = Instant::now();
            let settings = self.settings.clone();
            let families = self.families.clone();
            let topics = topics.to_vec();
            let data = tokio::task::spawn_blocking(move || {
                pg::encode_topics(&settings, &families, &topics)
            })
            .await??;
            if data.records != fill.records || data.rows != fill.total_rows {
                bail!(
                    "read back {} records ({} rows); {} records ({} rows) were produced",
                    data.records,
                    data.rows,
                    fill.records,
                    fill.total_rows
                );
            }
            eprintln!(
                "bench: [{}] read back and encoded {} rows ({:.0} MiB of COPY data) in {:.1}s",
                fmt.as_str(),
                data.rows,
                data.bytes as f64 / MIB / MIB,
                started.elapsed().as_secs_f64()
            );
            Some(Arc::new(data))
        } else {
            None
        };
        let mut v = VariantReport {
            format: fmt,
            topics: topics.to_vec(),
            copy_bytes: copy.as_ref().map(|c| c.bytes),
            fill,
            e2e: Vec::new(),
            e2e_enriched: Vec::new(),
            ceiling: Vec::new(),
            ceiling_parallel: Vec::new(),
            latency: Vec::new(),
            summary: VariantSummary::default(),
        };
        for rep in 1..=a.repeat {
            if a.measure.contains(&Measure::E2e) {
                let r = retried!(
                    self,
                    a.retries,
                    format!("[{}] e2e #{rep}", fmt.as_str()),
                    self.e2e(fmt, rep, prefix, &v.fill, false)
                );
                eprintln!(
                    "bench: [{}] e2e #{rep}: {:.1}s, {} rows/s (steady {} rows/s, first commit after {:.2}s), peak RSS {:.0} MiB, worker CPU {:.1}s",
                    fmt.as_str(),
                    r.secs,
                    thousands(r.rows_per_s),
                    thousands(r.steady_rows_per_s),
                    r.startup_secs,
                    r.peak_rss_mib,
                    r.cpu.worker.unwrap_or(f64::NAN)
                );
                v.e2e.push(r);
                if a.enrichment {
                    let r = retried!(
                        self,
                        a.retries,
                        format!("[{}] e2e with events #{rep}", fmt.as_str()),
                        self.e2e(fmt, rep, prefix, &v.fill, true)
                    );
                    eprintln!(
                        "bench: [{}] e2e with events #{rep}: {:.1}s, {} rows/s, {} events ({:.0} MiB), worker CPU {:.1}s, broker CPU {:.1}s",
                        fmt.as_str(),
                        r.secs,
                        thousands(r.rows_per_s),
                        r.events.unwrap_or(0),
                        r.event_bytes.unwrap_or(0) as f64 / MIB / MIB,
                        r.cpu.worker.unwrap_or(f64::NAN),
                        r.cpu.kafka.unwrap_or(f64::NAN)
                    );
                    v.e2e_enriched.push(r);
                }
            }
            if let Some(data) = &copy {
                let parallel = a.partitions.max(1) as usize;
                for (measure, connections) in
                    [(Measure::Ceiling, 1), (Measure::CeilingParallel, parallel)]
                {
                    if !a.measure.contains(&measure) {
                        continue;
                    }
                    let r = retried!(
                        self,
                        a.retries,
                        format!("[{}] ceiling x{connections} #{rep}", fmt.as_str()),
                        self.ceiling(fmt, rep, connections, data, &v.fill)
                    );
                    eprintln!(
                        "bench: [{}] ceiling x{connections} #{rep}: {:.1}s, {} rows/s",
                        fmt.as_str(),
                        r.secs,
                        thousands(r.rows_per_s)
                    );
                    match measure {
                        Measure::Ceiling => v.ceiling.push(r),
                        _ => v.ceiling_parallel.push(r),
                    }
                }
            }
        }
        drop(copy);
        if a.measure.contains(&Measure::Latency) {
            let rate = match a.latency_rate {
                Some(r) => Some(r),
                None => Spread::of(v.e2e.iter().map(|r| r.records_per_s))
                    .map(|s| s.median * a.latency_load),
            };
            match rate {
                Some(rate) if rate > 0.0 => {
                    v.summary.latency_rate = Some(rate);
                    for rep in 1..=a.repeat {
                        let r = retried!(
                            self,
                            a.retries,
                            format!("[{}] latency #{rep}", fmt.as_str()),
                            self.latency(fmt, rep, rate)
                        );
                        eprintln!(
                            "bench: [{}] latency #{rep}: {} records at {} /s: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({:.0} records per batch; before the transaction p50 {:.0} / p99 {:.0} ms, in it p50 {:.0} / p99 {:.0} ms)",
                            fmt.as_str(),
                            r.records,
                            thousands(r.achieved_per_s),
                            r.p50_ms,
                            r.p99_ms,
                            r.max_ms,
                            r.records_per_batch,
                            r.before_tx_p50_ms,
                            r.before_tx_p99_ms,
                            r.in_tx_p50_ms,
                            r.in_tx_p99_ms
                        );
                        v.latency.push(r);
                    }
                }
                _ => eprintln!(
                    "bench: [{}] skipping latency: no rate (measure e2e or pass --latency-rate)",
                    fmt.as_str()
                ),
            }
        }
        v.summary = summarize(&v);
        Ok(v)
    }

    fn spawn_worker(
        &self,
        db: &BenchDb,
        prefix: &str,
        group: &str,
        log: &Path,
        enriched: bool,
    ) -> anyhow::Result<WorkerGuard> {
        let exe = std::env::current_exe().context("cannot find the esurio binary")?;
        let file = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let topics: Vec<&str> = self.families.iter().map(|f| f.name).collect();
        let families = if enriched {
            topics.join(",")
        } else {
            String::new()
        };
        let child = Command::new(exe)
            .args(["run", "--exit-when-idle", "2s"])
            .env("ESURIO__ENRICHMENT__FAMILIES", families)
            .env("ESURIO__DATABASE__URL", &db.url)
            .env("ESURIO__KAFKA__BROKERS", &self.settings.kafka.brokers)
            .env("ESURIO__KAFKA__TOPIC_PREFIX", prefix)
            .env("ESURIO__KAFKA__GROUP_ID", group)
            .env("ESURIO__KAFKA__TOPICS", topics.join(","))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .spawn()
            .context("cannot start the worker")?;
        Ok(WorkerGuard(Some(child)))
    }

    /// Polls until the group committed `target` records; fails if the worker exits first or
    /// stalls.
    async fn watch(
        &self,
        w: &mut WorkerGuard,
        client: &Client,
        group: &str,
        target: i64,
        log: &Path,
        label: &str,
    ) -> anyhow::Result<Watched> {
        let started = Instant::now();
        let mut last = 0i64;
        let mut last_move = Instant::now();
        let mut last_print = Instant::now();
        loop {
            let n = pg::committed_records(client, group).await?;
            let now = Instant::now();
            if n >= target {
                let cpu_done = CpuSnapshot::take(Some(w.pid()));
                return Ok(Watched {
                    done: now,
                    cpu_done,
                });
            }
            if n != last {
                last = n;
                last_move = now;
            }
            if let Some(status) = w.child().try_wait()? {
                bail!(
                    "{label}: the worker exited ({status}) after committing {n} of {target} records; log {}:\n{}",
                    log.display(),
                    tail(log, 30)
                );
            }
            if last_move.elapsed() > self.args.stall_timeout {
                bail!(
                    "{label}: no progress for {:?} at {n} of {target} records; log {}:\n{}",
                    self.args.stall_timeout,
                    log.display(),
                    tail(log, 30)
                );
            }
            if last_print.elapsed() >= Duration::from_secs(10) {
                eprintln!(
                    "bench: {label}: {n}/{target} records committed ({} /s)",
                    thousands(n as f64 / started.elapsed().as_secs_f64())
                );
                last_print = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits for the worker to exit (sampling its peak RSS meanwhile); returns the peak in KiB and
    /// its CPU seconds at the last sample.
    async fn wait_exit(
        &self,
        w: &mut WorkerGuard,
        log: &Path,
        label: &str,
    ) -> anyhow::Result<(u64, f64)> {
        let pid = w.pid();
        let (mut hwm, mut cpu) = (0u64, 0f64);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(k) = procfs::vm_hwm_kib(pid) {
                hwm = hwm.max(k);
            }
            if let Some(c) = procfs::cpu_secs(pid) {
                cpu = c;
            }
            if let Some(status) = w.child().try_wait()? {
                if !status.success() {
                    bail!(
                        "{label}: the worker failed ({status}); log {}:\n{}",
                        log.display(),
                        tail(log, 30)
                    );
                }
                return Ok((hwm, cpu));
            }
            if Instant::now() > deadline {
                bail!("{label}: the worker did not exit within 120 s of catching up");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn e2e(
        &self,
        fmt: BenchFormat,
        rep: usize,
        prefix: &str,
        fill: &kafka::Filled,
        enriched: bool,
    ) -> anyhow::Result<E2eRun> {
        let what = if enriched { "e2e_events" } else { "e2e" };
        let db = BenchDb::create(self.settings, &self.db_name(fmt, what, rep)).await?;
        let res = self.e2e_on(&db, fmt, rep, prefix, fill, enriched).await;
        db.drop().await;
        if enriched {
            // Each run publishes its own events; the next starts from an empty topic.
            let names: Vec<String> = self
                .topics(prefix)
                .iter()
                .map(|t| format!("{t}{}", self.settings.enrichment.topic_suffix))
                .collect();
            kafka::delete_topics_only(self.settings, &names).await;
        }
        res
    }

    async fn e2e_on(
        &self,
        db: &BenchDb,
        fmt: BenchFormat,
        rep: usize,
        prefix: &str,
        fill: &kafka::Filled,
        enriched: bool,
    ) -> anyhow::Result<E2eRun> {
        let what = if enriched { "e2e_events" } else { "e2e" };
        let label = format!("[{}] {what} #{rep}", fmt.as_str());
        let group = self.group(fmt, what, rep);
        let client = db.connect().await?;
        let log = self
            .log_dir
            .join(format!("{}-e2e{rep}-{}.log", fmt.as_str(), self.uniq()));
        let sampler = pg::WaitSampler::start(&db.url).await?;
        let cpu0 = CpuSnapshot::take(None);
        let wall0 = chrono::Utc::now();
        let t0 = Instant::now();
        let mut w = self.spawn_worker(db, prefix, &group, &log, enriched)?;
        let mut seen = self
            .watch(&mut w, &client, &group, fill.records as i64, &log, &label)
            .await;
        let mut events = None;
        if enriched && seen.is_ok() {
            // Done when every row's event was acknowledged (each row has one event).
            let r = self
                .watch_events(&mut w, &client, fill.total_rows as i64, &log, &label)
                .await;
            match r {
                Ok((watched, n, bytes)) => {
                    seen = Ok(watched);
                    events = Some((n, bytes));
                }
                Err(e) => seen = Err(e),
            }
        }
        let waits = sampler.stop().await;
        let seen = seen?;
        let (hwm, worker_cpu_total) = self.wait_exit(&mut w, &log, &label).await?;
        let exited = Instant::now();
        if !cpu0.same_stack(&seen.cpu_done) {
            bail!("{label}: PostgreSQL or Kafka was restarted during the run");
        }
        pg::verify_rows(&client, &fill.rows)
            .await
            .with_context(|| label.clone())?;
        let bs = pg::batch_stats(&client, &group).await?;
        let secs = (seen.done - t0).as_secs_f64();
        let wall0_s = wall0.timestamp_micros() as f64 / 1e6;
        Ok(E2eRun {
            rep,
            secs,
            rows_per_s: fill.total_rows as f64 / secs,
            records_per_s: fill.records as f64 / secs,
            startup_secs: (bs.first_commit - wall0_s).max(0.0),
            steady_rows_per_s: fill.total_rows as f64
                / (bs.last_commit - bs.first_commit).max(1e-3),
            exit_secs: (exited - seen.done).as_secs_f64(),
            peak_rss_mib: hwm as f64 / MIB,
            cpu: cpu0.until(&seen.cpu_done),
            waits,
            worker_cpu_total,
            batches: bs.batches,
            records_per_batch: bs.records as f64 / (bs.batches.max(1) as f64),
            events: events.map(|e| e.0),
            event_bytes: events.map(|e| e.1),
            log,
        })
    }

    /// After the rows: polls until the enrichment cursors counted `target` events.
    async fn watch_events(
        &self,
        w: &mut WorkerGuard,
        client: &Client,
        target: i64,
        log: &Path,
        label: &str,
    ) -> anyhow::Result<(Watched, i64, i64)> {
        let mut last = (0i64, Instant::now());
        loop {
            let row = client
                .query_one(
                    "SELECT coalesce(sum(events), 0)::bigint, coalesce(sum(bytes), 0)::bigint FROM enrichment_cursor",
                    &[],
                )
                .await?;
            let (n, bytes): (i64, i64) = (row.get(0), row.get(1));
            if n >= target {
                let cpu_done = CpuSnapshot::take(Some(w.pid()));
                return Ok((
                    Watched {
                        done: Instant::now(),
                        cpu_done,
                    },
                    n,
                    bytes,
                ));
            }
            if n != last.0 {
                last = (n, Instant::now());
            }
            if let Some(status) = w.child().try_wait()? {
                bail!(
                    "{label}: the worker exited ({status}) after publishing {n} of {target} events; log {}:\n{}",
                    log.display(),
                    tail(log, 30)
                );
            }
            if last.1.elapsed() > self.args.stall_timeout {
                bail!(
                    "{label}: no event published for {:?} at {n} of {target}",
                    self.args.stall_timeout
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn ceiling(
        &self,
        fmt: BenchFormat,
        rep: usize,
        connections: usize,
        data: &CopyData,
        fill: &kafka::Filled,
    ) -> anyhow::Result<CeilingRun> {
        let db = BenchDb::create(
            self.settings,
            &self.db_name(fmt, &format!("copy{connections}"), rep),
        )
        .await?;
        let res = async {
            let client = db.connect().await?;
            pg::ensure_partitions_ahead(&client).await?;
            let mut clients = vec![client];
            while clients.len() < connections {
                clients.push(db.connect().await?);
            }
            let sampler = pg::WaitSampler::start(&db.url).await?;
            let cpu0 = CpuSnapshot::take(None);
            let secs = pg::copy_all(&clients, data).await;
            let cpu1 = CpuSnapshot::take(None);
            let waits = sampler.stop().await;
            let secs = secs?;
            if !cpu0.same_stack(&cpu1) {
                bail!("PostgreSQL or Kafka was restarted during the run");
            }
            pg::verify_rows(&clients[0], &fill.rows).await?;
            anyhow::Ok(CeilingRun {
                rep,
                connections,
                secs,
                rows_per_s: data.rows as f64 / secs,
                cpu: cpu0.until(&cpu1),
                waits,
            })
        }
        .await;
        db.drop().await;
        res
    }

    async fn latency(&self, fmt: BenchFormat, rep: usize, rate: f64) -> anyhow::Result<LatencyRun> {
        let prefix = format!(
            "{}.{}.{}.lat{rep}-{}.",
            self.args.name,
            self.id,
            fmt.as_str(),
            self.uniq()
        );
        let topics = self.topics(&prefix);
        kafka::create_topics(self.settings, &topics, self.args.partitions).await?;
        let res = async {
            let db = BenchDb::create(self.settings, &self.db_name(fmt, "lat", rep)).await?;
            let r = self.latency_on(&db, fmt, rep, rate, &prefix, &topics).await;
            db.drop().await;
            r
        }
        .await;
        if !self.args.keep_topics {
            kafka::delete_topics(self.settings, &topics).await;
        }
        res
    }

    async fn latency_on(
        &self,
        db: &BenchDb,
        fmt: BenchFormat,
        rep: usize,
        rate: f64,
        prefix: &str,
        topics: &[String],
    ) -> anyhow::Result<LatencyRun> {
        let label = format!("[{}] latency #{rep}", fmt.as_str());
        let parts = self.args.partitions;
        let fams = self.families.len();
        let total = (rate * self.args.latency_duration.as_secs_f64()).ceil() as usize;
        let total = total.max(fams);
        // Generate everything first: one warm-up record per partition, then the paced ones, round
        // robin over the families and, within each, over the partitions.
        let mut warm: Vec<kafka::Paced> = Vec::new();
        let mut lanes: Vec<std::collections::VecDeque<kafka::Paced>> = Vec::new();
        let mut rows: BTreeMap<String, u64> = BTreeMap::new();
        for (k, f) in self.families.iter().enumerate() {
            let n = total / fams + usize::from(k < total % fams);
            let mut lane = std::collections::VecDeque::with_capacity(n);
            for (i, r) in generate(f, n + parts as usize, &self.gen_options(fmt, f))?.enumerate() {
                let Expect::Valid { rows: rr } = &r.expect else {
                    bail!("the simulator made an invalid {} record", f.name);
                };
                for (t, c) in rr {
                    *rows.entry((*t).to_owned()).or_default() += *c as u64;
                }
                let p = kafka::Paced {
                    topic: k,
                    partition: (i % parts as usize) as i32,
                    key: r.key,
                    payload: r.payload.unwrap_or_default(),
                };
                if i < parts as usize {
                    warm.push(p);
                } else {
                    lane.push_back(p);
                }
            }
            lanes.push(lane);
        }
        let mut paced = Vec::with_capacity(total);
        while lanes.iter().any(|l| !l.is_empty()) {
            for l in lanes.iter_mut() {
                if let Some(p) = l.pop_front() {
                    paced.push(p);
                }
            }
        }
        let warm_n = warm.len() as i64;
        let all_n = warm_n + paced.len() as i64;

        let client = db.connect().await?;
        let group = self.group(fmt, "lat", rep);
        let log = self
            .log_dir
            .join(format!("{}-lat{rep}-{}.log", fmt.as_str(), self.uniq()));
        let producer = Arc::new(kafka::producer(self.settings, topics, false)?);
        let mut w = self.spawn_worker(db, prefix, &group, &log, false)?;
        {
            let (p, t) = (producer.clone(), topics.to_vec());
            tokio::task::spawn_blocking(move || {
                kafka::send_paced(&p, &t, &warm, 1e9)?;
                kafka::finish(&p, warm.len() as u64)
            })
            .await??;
        }
        self.watch(&mut w, &client, &group, warm_n, &log, &label)
            .await?;
        kafka::take_acks(&producer);
        eprintln!(
            "bench: {label}: worker is warm; producing {} records at {} /s",
            paced.len(),
            thousands(rate)
        );
        let sampler = pg::WaitSampler::start(&db.url).await?;
        let cpu0 = CpuSnapshot::take(Some(w.pid()));
        let sent: anyhow::Result<(f64, f64)> = {
            let (p, t) = (producer.clone(), topics.to_vec());
            tokio::task::spawn_blocking(move || {
                let r = kafka::send_paced(&p, &t, &paced, rate)?;
                kafka::finish(&p, (warm_n as usize + paced.len()) as u64)?;
                anyhow::Ok(r)
            })
            .await
            .map_err(anyhow::Error::from)
            .and_then(|r| r)
        };
        let seen = match &sent {
            Ok(_) => {
                self.watch(&mut w, &client, &group, all_n, &log, &label)
                    .await
            }
            Err(_) => Err(anyhow::anyhow!("{label}: producing failed")),
        };
        let waits = sampler.stop().await;
        let (send_secs, late) = sent?;
        let seen = seen?;
        let (hwm, _) = self.wait_exit(&mut w, &log, &label).await?;
        if !cpu0.same_stack(&seen.cpu_done) {
            bail!("{label}: PostgreSQL or Kafka was restarted during the run");
        }
        pg::verify_rows(&client, &rows)
            .await
            .with_context(|| label.clone())?;
        let acks = kafka::take_acks(&producer);
        let mut by_part: HashMap<(usize, i32), Vec<pg::BatchRow>> = HashMap::new();
        let mut n_batches = 0usize;
        for (k, (topic, f)) in topics.iter().zip(&self.families).enumerate() {
            let first_table = f.tables.first().map_or("", |t| t.name);
            for b in pg::batches(&client, &group, topic, first_table).await? {
                // The warm-up batches hold offset 0 only.
                n_batches += usize::from(b.last_offset > 0);
                by_part.entry((k, b.partition)).or_default().push(b);
            }
        }
        // Per record: total (commit - CreateTime), before its transaction started, inside it.
        let mut lat: Vec<f64> = Vec::with_capacity(acks.len());
        let mut before: Vec<f64> = Vec::with_capacity(acks.len());
        let mut inside: Vec<f64> = Vec::with_capacity(acks.len());
        for a in &acks {
            let batch = by_part.get(&(a.topic, a.partition)).and_then(|v| {
                let i = v.partition_point(|b| b.first_offset <= a.offset);
                i.checked_sub(1)
                    .map(|i| &v[i])
                    .filter(|b| b.last_offset >= a.offset)
            });
            let Some(b) = batch else {
                bail!(
                    "{label}: no committed batch holds {}[{}]@{}",
                    topics.get(a.topic).map_or("?", String::as_str),
                    a.partition,
                    a.offset
                );
            };
            lat.push(b.committed_ms - a.ts_ms as f64);
            before.push(b.started_ms - a.ts_ms as f64);
            inside.push(b.committed_ms - b.started_ms);
        }
        if lat.is_empty() {
            bail!("{label}: no records were acknowledged");
        }
        for v in [&mut lat, &mut before, &mut inside] {
            v.sort_by(f64::total_cmp);
        }
        let pct = |v: &[f64], p: f64| percentile(v, p).unwrap_or(f64::NAN);
        let paced_batches = n_batches;
        Ok(LatencyRun {
            rep,
            offered_per_s: rate,
            achieved_per_s: acks.len() as f64 / send_secs,
            producer_worst_late_secs: late,
            records: acks.len() as u64,
            p50_ms: pct(&lat, 50.0),
            p90_ms: pct(&lat, 90.0),
            p99_ms: pct(&lat, 99.0),
            before_tx_p50_ms: pct(&before, 50.0),
            before_tx_p99_ms: pct(&before, 99.0),
            in_tx_p50_ms: pct(&inside, 50.0),
            in_tx_p99_ms: pct(&inside, 99.0),
            max_ms: lat[lat.len() - 1],
            mean_ms: lat.iter().sum::<f64>() / lat.len() as f64,
            batches: paced_batches,
            records_per_batch: acks.len() as f64 / paced_batches.max(1) as f64,
            peak_rss_mib: hwm as f64 / MIB,
            cpu: cpu0.until(&seen.cpu_done),
            waits,
            log,
        })
    }
}

fn summarize(v: &VariantReport) -> VariantSummary {
    let e = &v.e2e;
    let c = &v.ceiling;
    let l = &v.latency;
    let e2e = Spread::of(e.iter().map(|r| r.rows_per_s));
    let ceiling = Spread::of(c.iter().map(|r| r.rows_per_s));
    let ceiling_parallel = Spread::of(v.ceiling_parallel.iter().map(|r| r.rows_per_s));
    let ratio_to = |ceiling: Option<Spread>, runs: &[CeilingRun]| match (e2e, ceiling) {
        (Some(a), Some(b)) => {
            let per_rep: Vec<f64> = e
                .iter()
                .zip(runs)
                .map(|(x, y)| x.rows_per_s / y.rows_per_s)
                .collect();
            Spread::of(per_rep.iter().copied()).map(|s| Spread {
                median: a.median / b.median,
                ..s
            })
        }
        _ => None,
    };
    let ratio = ratio_to(ceiling, c);
    let en = &v.e2e_enriched;
    let enriched = Spread::of(en.iter().map(|r| r.rows_per_s));
    let enriched_ratio = match (enriched, e2e) {
        (Some(on), Some(off)) => {
            let per_rep: Vec<f64> = en
                .iter()
                .zip(e)
                .map(|(x, y)| x.rows_per_s / y.rows_per_s)
                .collect();
            Spread::of(per_rep.iter().copied()).map(|s| Spread {
                median: on.median / off.median,
                ..s
            })
        }
        _ => None,
    };
    let ratio_parallel = ratio_to(ceiling_parallel, &v.ceiling_parallel);
    VariantSummary {
        e2e_rows_per_s: e2e,
        e2e_steady_rows_per_s: Spread::of(e.iter().map(|r| r.steady_rows_per_s)),
        e2e_startup_secs: Spread::of(e.iter().map(|r| r.startup_secs)),
        ceiling_rows_per_s: ceiling,
        ratio,
        ceiling_parallel_rows_per_s: ceiling_parallel,
        ratio_parallel,
        peak_rss_mib: Spread::of(e.iter().map(|r| r.peak_rss_mib)),
        worker_cpu_secs: Spread::of(e.iter().filter_map(|r| r.cpu.worker)),
        pg_cpu_secs: Spread::of(e.iter().filter_map(|r| r.cpu.pg)),
        kafka_cpu_secs: Spread::of(e.iter().filter_map(|r| r.cpu.kafka)),
        other_cpu_secs: Spread::of(e.iter().filter_map(|r| r.cpu.other)),
        ceiling_pg_cpu_secs: Spread::of(c.iter().filter_map(|r| r.cpu.pg)),
        ceiling_parallel_pg_cpu_secs: Spread::of(
            v.ceiling_parallel.iter().filter_map(|r| r.cpu.pg),
        ),
        records_per_batch: Spread::of(e.iter().map(|r| r.records_per_batch)),
        enriched_rows_per_s: enriched,
        enriched_ratio,
        enriched_kafka_cpu_secs: Spread::of(en.iter().filter_map(|r| r.cpu.kafka)),
        enriched_worker_cpu_secs: Spread::of(en.iter().filter_map(|r| r.cpu.worker)),
        enriched_pg_cpu_secs: Spread::of(en.iter().filter_map(|r| r.cpu.pg)),
        event_bytes_per_row: Spread::of(
            en.iter()
                .filter_map(|r| Some(r.event_bytes? as f64 / (r.events?.max(1)) as f64)),
        ),
        event_mib: Spread::of(
            en.iter()
                .filter_map(|r| Some(r.event_bytes? as f64 / MIB / MIB)),
        ),
        latency_rate: v.summary.latency_rate,
        latency_p50_ms: Spread::of(l.iter().map(|r| r.p50_ms)),
        latency_p99_ms: Spread::of(l.iter().map(|r| r.p99_ms)),
        latency_peak_rss_mib: Spread::of(l.iter().map(|r| r.peak_rss_mib)),
        latency_before_tx_p99_ms: Spread::of(l.iter().map(|r| r.before_tx_p99_ms)),
        latency_in_tx_p99_ms: Spread::of(l.iter().map(|r| r.in_tx_p99_ms)),
        e2e_waits: merged(e.iter().map(|r| &r.waits)),
        ceiling_waits: merged(c.iter().map(|r| &r.waits)),
        ceiling_parallel_waits: merged(v.ceiling_parallel.iter().map(|r| &r.waits)),
        latency_waits: merged(l.iter().map(|r| &r.waits)),
    }
}

fn merged<'a>(runs: impl Iterator<Item = &'a pg::WaitProfile>) -> Vec<(String, f64)> {
    let mut all = pg::WaitProfile::default();
    for w in runs {
        all.add(w);
    }
    all.averages()
}

/// The compact table printed at the end.
fn summary_table(r: &Report) -> String {
    use std::fmt::Write as _;
    let m = &r.machine;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nesurio bench {}: {:?} workload, {} records per encoding, {} partitions, {} repetitions (median [min .. max])",
        r.id, r.workload, r.records, r.partitions, r.repeat
    );
    let _ = writeln!(
        out,
        "machine: {} CPUs, {} MiB; {}; Kafka {}; librdkafka {}; {} build; batch.max_records {}, batch.linger {} ms, database.pool_size {}",
        m.cpus,
        m.memory_mib.unwrap_or(0),
        m.postgres
            .as_deref()
            .and_then(|v| v.split(" on ").next())
            .unwrap_or("PostgreSQL ?"),
        m.kafka.as_deref().unwrap_or("?"),
        m.librdkafka,
        m.build,
        r.batch_max_records,
        r.batch_linger_ms,
        r.pool_size
    );
    let _ = writeln!(
        out,
        "{:<6} {:<40} {:>12} {:>12} {:>12}  {:<8}",
        "format", "metric", "median", "min", "max", "target"
    );
    for v in &r.variants {
        let s = &v.summary;
        let f = v.format.as_str();
        let mut row =
            |name: String, sp: Option<Spread>, digits: usize, target: &str, ok: Option<bool>| {
                let Some(sp) = sp else { return };
                let fmt = |x: f64| {
                    if digits == 0 {
                        thousands(x)
                    } else {
                        format!("{x:.digits$}")
                    }
                };
                let verdict = match ok {
                    Some(true) => "ok",
                    Some(false) => "MISSED",
                    None => "",
                };
                let _ = writeln!(
                    out,
                    "{f:<6} {name:<40} {:>12} {:>12} {:>12}  {target:<8} {verdict}",
                    fmt(sp.median),
                    fmt(sp.min),
                    fmt(sp.max)
                );
            };
        row("end-to-end rows/s".into(), s.e2e_rows_per_s, 0, "", None);
        row(
            "raw COPY ceiling rows/s".into(),
            s.ceiling_rows_per_s,
            0,
            "",
            None,
        );
        row(
            "ratio end-to-end / ceiling".into(),
            s.ratio,
            3,
            ">= 0.85",
            s.ratio.map(|x| x.median >= 0.85),
        );
        row(
            format!("raw COPY, {} connections, rows/s", r.partitions),
            s.ceiling_parallel_rows_per_s,
            0,
            "",
            None,
        );
        row(
            format!("ratio end-to-end / {}-connection COPY", r.partitions),
            s.ratio_parallel,
            3,
            "",
            None,
        );
        row(
            "end-to-end steady rows/s (1st-last commit)".into(),
            s.e2e_steady_rows_per_s,
            0,
            "",
            None,
        );
        row(
            "worker start to first commit, s".into(),
            s.e2e_startup_secs,
            2,
            "",
            None,
        );
        row(
            "worker peak RSS, MiB".into(),
            s.peak_rss_mib,
            1,
            "< 256",
            s.peak_rss_mib.map(|x| x.max < 256.0),
        );
        row("worker CPU, s".into(), s.worker_cpu_secs, 1, "", None);
        row(
            "PostgreSQL CPU during e2e, s".into(),
            s.pg_cpu_secs,
            1,
            "",
            None,
        );
        row(
            "Kafka broker CPU during e2e, s".into(),
            s.kafka_cpu_secs,
            1,
            "",
            None,
        );
        row(
            "other CPU during e2e, s".into(),
            s.other_cpu_secs,
            1,
            "",
            None,
        );
        row(
            "end-to-end rows/s, events on".into(),
            s.enriched_rows_per_s,
            0,
            "",
            None,
        );
        row(
            "events on / off".into(),
            s.enriched_ratio,
            2,
            ">= 0.75",
            s.enriched_ratio.map(|r| r.median >= 0.75),
        );
        row(
            "event bytes per row (events on)".into(),
            s.event_bytes_per_row,
            0,
            "",
            None,
        );
        row("events, MiB (events on)".into(), s.event_mib, 0, "", None);
        row(
            "worker CPU, s (events on)".into(),
            s.enriched_worker_cpu_secs,
            1,
            "",
            None,
        );
        row(
            "PostgreSQL CPU, s (events on)".into(),
            s.enriched_pg_cpu_secs,
            1,
            "",
            None,
        );
        row(
            "Kafka broker CPU, s (events on)".into(),
            s.enriched_kafka_cpu_secs,
            1,
            "",
            None,
        );
        row(
            "PostgreSQL CPU during ceiling, s".into(),
            s.ceiling_pg_cpu_secs,
            1,
            "",
            None,
        );
        row(
            "PostgreSQL CPU during parallel ceiling, s".into(),
            s.ceiling_parallel_pg_cpu_secs,
            1,
            "",
            None,
        );
        row(
            "records per batch (e2e)".into(),
            s.records_per_batch,
            0,
            "",
            None,
        );
        if let Some(rate) = s.latency_rate {
            row(
                format!("latency p50 ms @ {} records/s", thousands(rate)),
                s.latency_p50_ms,
                0,
                "",
                None,
            );
            row(
                format!("latency p99 ms @ {} records/s", thousands(rate)),
                s.latency_p99_ms,
                0,
                "< 250",
                s.latency_p99_ms.map(|x| x.median < 250.0),
            );
            row(
                "  p99 until the batch's transaction, ms".into(),
                s.latency_before_tx_p99_ms,
                0,
                "",
                None,
            );
            row(
                "  p99 inside the transaction, ms".into(),
                s.latency_in_tx_p99_ms,
                0,
                "",
                None,
            );
        }
    }
    for v in &r.variants {
        let s = &v.summary;
        for (what, w) in [
            ("e2e", &s.e2e_waits),
            ("ceiling", &s.ceiling_waits),
            ("parallel ceiling", &s.ceiling_parallel_waits),
            ("latency", &s.latency_waits),
        ] {
            if w.is_empty() {
                continue;
            }
            let states: Vec<String> = w
                .iter()
                .filter(|(_, n)| *n >= 0.005)
                .map(|(k, n)| format!("{k} {n:.2}"))
                .collect();
            let _ = writeln!(
                out,
                "{:<6} PostgreSQL backends during {what} (average count by state): {}",
                v.format.as_str(),
                states.join(", ")
            );
        }
    }
    out
}
