//! The spider simulator: `esurio simulate` produces realistic, reproducible synthetic records for
//! every record family to Kafka, with an exact share of invalid ones whose rejection reasons are known
//! in advance, and prints (on stdout, as one JSON object) what the worker must make of them: rows per
//! table and rejections per reason.
//!
//! - [`generate`] builds the records of one family without Kafka ([`SimRecord`]: key, payload and the
//!   [`Expect`]ed outcome); the unit tests run them through the real decoder and validator.
//! - [`run`] creates the topics (and their dead-letter topics) if missing, registers the Avro schemas
//!   when the registry format is used, produces everything and prints the [`Summary`].
//!
//! Reproducibility: the records are a function of (seed, base time, family, index, options). Without
//! `--realism`, valid records' natural keys are unique within a run and do not collide across runs
//! whose seeds differ (time keys carry `seed % 1000` µs; id keys carry the seed, and the base time
//! where the id format has room). With it, a share of the valid records come back to an earlier
//! key (see `spider`), and the summary's `tables`, `history` and outcome counts say what the
//! database must make of that; same-millisecond trades use other microseconds, which another seed's
//! keys may use. Every record's Kafka timestamp is explicit: `base_time + index` ms, or a revision's
//! version time.
//! The default base time is yesterday 00:00 UTC, so the same seed on the same day gives byte-identical
//! records.

mod families;
mod gen;
mod spider;
mod universe;
mod wire;

#[cfg(test)]
mod tests;

pub use gen::{
    applicable_reasons, base36, default_base_time, generate, rotation, Expect, GenOptions,
    Generator, References, SimFormat, SimRecord, WireFormat, BOGUS_SCHEMA_ID, TOO_LARGE_EVERY,
    TOO_LARGE_MAX_LIMIT,
};
pub use spider::{kinds, policy, Effect, Outcome, Policy, Spider, CONFLICTING_DUPLICATE};

use crate::config::Settings;
use crate::decode::Format;
use crate::records::FamilySpec;
use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Arguments of `esurio simulate`.
///
/// Every record is a function of (--seed, --base-time, family, index): re-running with the same
/// values produces byte-identical records (so the worker drops them all as duplicates), and a
/// different seed produces records with new natural keys. The JSON summary on stdout states how many
/// rows each table must gain and how many records each reason must reject.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Records to produce per topic, valid and invalid together.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub records: usize,

    /// Families to simulate, comma-separated (e.g. market_data,news_article). Default: the
    /// configured kafka.topics (all 13 families unless configured otherwise). The topic of a family
    /// is kafka.topic_prefix + family.
    #[arg(long, value_delimiter = ',', value_name = "FAMILY,...")]
    pub topics: Vec<String>,

    /// Share of invalid records, 0..=1. Exactly round(N * F) records per topic are invalid, at
    /// positions the seed chooses; each has exactly one defect, with a known reason code, cycling
    /// through every reason that applies to the family and format.
    #[arg(long, default_value_t = 0.1, value_name = "F", value_parser = parse_ratio)]
    pub invalid_ratio: f64,

    /// Share of the valid records that are spider realism, 0..=1: records that come back to an
    /// earlier record's natural key as real spiders do. Exactly round(V * R) of the V valid
    /// positions (never the first), cycling through the kinds that apply to the family: identical
    /// replays (possibly in another encoding); conflicting ticks (market_data, crypto_data,
    /// order_book: same key, another price or book); revisions with a newer and with an older
    /// version time (every other family); re-crawls of articles and posts with a changed entity set
    /// and with the same entities in another order; trades in the same millisecond at another
    /// microsecond (market_data, crypto_data). The summary states what the database must then hold.
    #[arg(long, default_value_t = 0.0, value_name = "R", value_parser = parse_ratio)]
    pub realism: f64,

    /// Encoding of the records. `mixed` rotates per record among JSON, Avro single-object and (when
    /// decode.schema_registry_url is set) Avro schema-registry. The registry format registers each
    /// family's schema under the subject `<topic>-value` first.
    #[arg(long, value_enum, default_value_t = SimFormat::Json)]
    pub format: SimFormat,

    /// Seed of all randomness. Different seeds give records with different natural keys.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// RFC 3339 instant the valid records' timestamps start at (record i is at base + i ms + seed % 1000
    /// µs). Default: yesterday 00:00 UTC. Must lie inside the worker's plausibility window
    /// (validate.max_past .. validate.max_future around now).
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    pub base_time: Option<DateTime<Utc>>,

    /// Partitions of the topics created when missing (their dead-letter topics are created by
    /// `esurio run`). Existing topics are left alone.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub partitions: i32,

    /// Generate and print the summary without touching Kafka or the schema registry.
    #[arg(long)]
    pub dry_run: bool,
}

fn parse_ratio(s: &str) -> Result<f64, String> {
    let f: f64 = s
        .parse()
        .map_err(|e| format!("{s:?} is not a number: {e}"))?;
    if (0.0..=1.0).contains(&f) {
        Ok(f)
    } else {
        Err(format!("{f} is not within 0..=1"))
    }
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 instant: {e}"))
}

/// What one topic got.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicSummary {
    pub topic: String,
    pub produced: u64,
    pub valid: u64,
    pub invalid: u64,
    /// Invalid records per expected reason code.
    pub invalid_by_reason: BTreeMap<String, u64>,
    /// Realism records per kind (`--realism`).
    #[serde(default)]
    pub spider: BTreeMap<String, u64>,
    /// Valid records the database must drop as identical to a version it has seen.
    #[serde(default)]
    pub duplicates: u64,
    /// Records that must revise their key's row (a newer version).
    #[serde(default)]
    pub revised: u64,
    /// Records older than their key's row: stored in the history table only.
    #[serde(default)]
    pub superseded: u64,
    /// Records of reject families that conflict with their key's row; they are among `invalid`,
    /// with the reason `conflicting_duplicate`.
    #[serde(default)]
    pub conflicting: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub produced: u64,
    pub valid: u64,
    pub invalid: u64,
    #[serde(default)]
    pub duplicates: u64,
    #[serde(default)]
    pub revised: u64,
    #[serde(default)]
    pub superseded: u64,
    #[serde(default)]
    pub conflicting: u64,
}

/// The outcome of a run: what the worker must make of the records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub seed: u64,
    pub format: SimFormat,
    pub base_time: DateTime<Utc>,
    pub records_per_topic: u64,
    pub invalid_ratio: f64,
    #[serde(default)]
    pub realism: f64,
    /// Per family. `invalid` (and `invalid_by_reason`) is what the worker must quarantine,
    /// conflicting records included; `valid` the rest.
    pub topics: BTreeMap<String, TopicSummary>,
    /// Per table: the rows it must hold afterwards (entities included), starting from empty.
    pub tables: BTreeMap<String, u64>,
    /// Per history table (`<table>_history` of the revise families): the rows it must hold.
    #[serde(default)]
    pub history: BTreeMap<String, u64>,
    pub totals: Totals,
}

impl Summary {
    fn new(opts: &GenOptions, records: usize) -> Self {
        Self {
            seed: opts.seed,
            format: opts.format,
            base_time: opts.base_time,
            records_per_topic: records as u64,
            invalid_ratio: opts.invalid_ratio,
            realism: opts.realism,
            topics: BTreeMap::new(),
            tables: BTreeMap::new(),
            history: BTreeMap::new(),
            totals: Totals::default(),
        }
    }

    /// Accounts one topic's records.
    pub fn add(&mut self, family: &'static FamilySpec, tally: Tally) {
        let t = tally.t;
        self.totals.produced += t.produced;
        self.totals.valid += t.valid;
        self.totals.invalid += t.invalid;
        self.totals.duplicates += t.duplicates;
        self.totals.revised += t.revised;
        self.totals.superseded += t.superseded;
        self.totals.conflicting += t.conflicting;
        for table in family.tables {
            let n = tally.rows.get(table.name).copied().unwrap_or(0);
            *self.tables.entry(table.name.to_owned()).or_default() += n.max(0) as u64;
            if policy(family.name) == Policy::Revise {
                *self
                    .history
                    .entry(format!("{}_history", table.name))
                    .or_default() += tally.history.get(table.name).copied().unwrap_or(0);
            }
        }
        self.topics.insert(family.name.to_owned(), t);
    }
}

/// Tallies records of one topic: what the database must make of them.
#[derive(Debug, Default)]
pub struct Tally {
    pub t: TopicSummary,
    /// Per table: rows it must hold.
    pub rows: BTreeMap<&'static str, i64>,
    /// Per table: rows its history table must hold.
    pub history: BTreeMap<&'static str, u64>,
}

impl Tally {
    pub fn add(&mut self, r: &SimRecord) {
        self.t.produced += 1;
        if let Some(k) = r.spider {
            *self.t.spider.entry(k.as_str().to_owned()).or_default() += 1;
        }
        let reason = match (&r.expect, r.outcome) {
            (Expect::Invalid { reason }, _) => Some(*reason),
            (_, Outcome::Conflicting) => Some(CONFLICTING_DUPLICATE),
            _ => None,
        };
        match reason {
            Some(reason) => {
                self.t.invalid += 1;
                *self
                    .t
                    .invalid_by_reason
                    .entry(reason.to_owned())
                    .or_default() += 1;
            }
            None => self.t.valid += 1,
        }
        match r.outcome {
            Outcome::Duplicate => self.t.duplicates += 1,
            Outcome::Revised => self.t.revised += 1,
            Outcome::Superseded => self.t.superseded += 1,
            Outcome::Conflicting => self.t.conflicting += 1,
            Outcome::Inserted | Outcome::Rejected => {}
        }
        for (table, n) in &r.effect.tables {
            *self.rows.entry(table).or_default() += n;
        }
        for (table, n) in &r.effect.history {
            *self.history.entry(table).or_default() += n;
        }
    }
}

/// A checked run: the families, options and their compatibility with the worker's settings.
struct Plan {
    families: Vec<&'static FamilySpec>,
    opts: GenOptions,
    records: usize,
    registry: Option<String>,
}

impl Plan {
    fn new(settings: &Settings, args: &SimulateArgs, now: DateTime<Utc>) -> anyhow::Result<Self> {
        let names = if args.topics.is_empty() {
            settings.kafka.topics.clone()
        } else {
            args.topics.clone()
        };
        let mut families: Vec<&'static FamilySpec> = Vec::new();
        for n in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
            // Updates need rows to exist: the simulator leaves them to the model services (the
            // configured topics list sentiment_update by default).
            if args.topics.is_empty() && crate::records::UPDATE_FAMILIES.iter().any(|f| f.name == n)
            {
                continue;
            }
            let f = crate::records::family(n).with_context(|| {
                format!(
                    "{n:?} is not a record family (known: {})",
                    crate::records::FAMILIES
                        .iter()
                        .map(|f| f.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
            if !families.iter().any(|g| g.name == f.name) {
                families.push(f);
            }
        }
        if families.is_empty() {
            bail!("no families to simulate");
        }
        let base_time = args.base_time.unwrap_or_else(|| default_base_time(now));
        let v = &settings.validate;
        let span = chrono::Duration::milliseconds(args.records as i64 + 1);
        let earliest =
            now - chrono::Duration::from_std(v.max_past).unwrap_or(chrono::TimeDelta::MAX);
        let latest =
            now + chrono::Duration::from_std(v.max_future).unwrap_or(chrono::TimeDelta::MAX);
        if base_time < earliest + chrono::Duration::hours(1) || base_time + span > latest {
            bail!(
                "--base-time {base_time} (+{} ms for {} records) is outside the worker's plausibility \
                 window ({earliest} .. {latest}, validate.max_past / validate.max_future): the valid \
                 records would be rejected",
                args.records,
                args.records
            );
        }
        let registry = settings
            .decode
            .schema_registry_url
            .clone()
            .filter(|u| !u.trim().is_empty());
        if args.format == SimFormat::AvroRegistry && registry.is_none() {
            bail!("--format avro-registry needs decode.schema_registry_url (ESURIO__DECODE__SCHEMA_REGISTRY_URL)");
        }
        const MIN_RECORD_BYTES: usize = 64 * 1024;
        if settings.decode.max_record_bytes < MIN_RECORD_BYTES {
            bail!(
                "decode.max_record_bytes is {}: the simulator's records (some invalid ones carry texts of \
                 40000 characters) need at least {MIN_RECORD_BYTES}",
                settings.decode.max_record_bytes
            );
        }
        let mut opts = GenOptions::new(args.seed, base_time);
        opts.now = now;
        opts.invalid_ratio = args.invalid_ratio;
        opts.realism = args.realism;
        opts.format = args.format;
        opts.max_record_bytes = settings.decode.max_record_bytes;
        opts.max_future = v.max_future;
        opts.max_past = v.max_past;
        opts.partition_max_past = settings.database.partition_max_past;
        if families
            .iter()
            .any(|f| matches!(f.name, "feature" | "insight" | "signal"))
        {
            // Which records are valid, and their keys, do not depend on the encoding.
            let mut json = opts.clone();
            json.format = SimFormat::Json;
            opts.references = Some(std::sync::Arc::new(References::of_run(
                &families,
                args.records,
                &json,
            )?));
        }
        for f in &families {
            let worker = settings.format_for(f.name);
            let ok = matches!(
                (worker, args.format),
                (Format::Auto, _)
                    | (Format::Json, SimFormat::Json)
                    | (Format::AvroSingleObject, SimFormat::AvroSingleObject)
                    | (Format::AvroRegistry, SimFormat::AvroRegistry)
            );
            if !ok {
                bail!(
                    "the worker decodes {} as {worker:?} (decode.format / decode.formats), so --format {} \
                     would make every record undecodable; use a matching --format or decode.format auto",
                    f.name,
                    args.format.as_str()
                );
            }
        }
        Ok(Self {
            families,
            opts,
            records: args.records,
            registry,
        })
    }

    /// Generator options for one family (the worker's decode format for its topic).
    fn opts_for(&self, settings: &Settings, f: &FamilySpec) -> GenOptions {
        let mut o = self.opts.clone();
        o.worker_format = settings.format_for(f.name);
        o
    }

    fn uses_registry(&self) -> bool {
        match self.opts.format {
            SimFormat::AvroRegistry => true,
            SimFormat::Mixed => self.registry.is_some(),
            _ => false,
        }
    }
}

/// Counts deliveries (the producer's callbacks run on its polling thread).
#[derive(Default)]
struct Delivery {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Delivery {}

impl ProducerContext for Delivery {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
                if first.is_none() {
                    *first = Some(e.to_string());
                }
            }
        }
    }
}

fn client_config(settings: &Settings, client_id: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &settings.kafka.brokers)
        .set("client.id", client_id);
    for (k, v) in &settings.kafka.librdkafka {
        c.set(k, v);
    }
    c
}

/// Largest message the simulator's topics accept (`too_large` records exceed
/// decode.max_record_bytes, at most 2 MiB, and must still reach the worker). Set per topic: brokers
/// keep Kafka's default (1 MiB). The dead-letter topics are not ours: `esurio run` creates them, and
/// its relay cuts what they do not take.
const TOPIC_MAX_MESSAGE_BYTES: &str = "16777216";

fn producer(settings: &Settings) -> anyhow::Result<ThreadedProducer<Delivery>> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &settings.kafka.brokers)
        .set("client.id", "esurio-simulate")
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "1000000")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.max.bytes", TOPIC_MAX_MESSAGE_BYTES)
        .set("message.timeout.ms", "60000");
    for (k, v) in &settings.kafka.librdkafka {
        c.set(k, v);
    }
    c.create_with_context(Delivery::default())
        .context("cannot create the Kafka producer")
}

/// Creates the topics that do not exist yet (brokers do not auto-create them).
async fn ensure_topics(
    settings: &Settings,
    families: &[&'static FamilySpec],
    partitions: i32,
) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(settings, "esurio-simulate-admin")
        .create()
        .context("cannot create the Kafka admin client")?;
    let mut names: Vec<(String, i32)> = Vec::new();
    for f in families {
        names.push((settings.topic(f.name), partitions));
    }
    let new: Vec<NewTopic<'_>> = names
        .iter()
        .map(|(n, p)| {
            // -1: the broker's default replication factor.
            NewTopic::new(n, *p, TopicReplication::Fixed(-1))
                .set("max.message.bytes", TOPIC_MAX_MESSAGE_BYTES)
        })
        .collect();
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(30)))
        .request_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&new, &opts)
        .await
        .with_context(|| format!("cannot create topics on {}", settings.kafka.brokers))?;
    for r in results {
        match r {
            Ok(name) => eprintln!("simulate: created topic {name}"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => bail!("cannot create topic {name}: {code}"),
        }
    }
    Ok(())
}

/// Registers each family's schema under `<topic>-value`; returns the ids by family.
fn register_schemas(
    settings: &Settings,
    url: &str,
    families: &[&'static FamilySpec],
) -> anyhow::Result<BTreeMap<String, u32>> {
    #[derive(Deserialize)]
    struct Registered {
        id: u32,
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(
            settings
                .decode
                .schema_registry_timeout
                .max(Duration::from_secs(5)),
        ))
        .build()
        .into();
    let mut ids = BTreeMap::new();
    for f in families {
        let subject = format!("{}-value", settings.topic(f.name));
        let endpoint = format!("{}/subjects/{subject}/versions", url.trim_end_matches('/'));
        let reg: Registered = agent
            .post(&endpoint)
            .header(
                "Accept",
                "application/vnd.schemaregistry.v1+json, application/json",
            )
            .send_json(serde_json::json!({ "schema": f.avro_schema }))
            .and_then(|mut r| r.body_mut().read_json())
            .with_context(|| format!("cannot register the {} schema at {endpoint}", f.name))?;
        eprintln!("simulate: schema of {} is registry id {}", f.name, reg.id);
        ids.insert(f.name.to_owned(), reg.id);
    }
    Ok(ids)
}

/// Sends one record, waiting while the producer's queue is full.
fn send(p: &ThreadedProducer<Delivery>, topic: &str, r: &SimRecord) -> anyhow::Result<()> {
    let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
    if let Some(k) = &r.key {
        rec = rec.key(k.as_slice());
    }
    if let Some(v) = &r.payload {
        rec = rec.payload(v.as_slice());
    }
    // Explicit, so that the version time of the families versioned by it is reproducible.
    rec = rec.timestamp(r.timestamp);
    loop {
        match p.send(rec) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                rec = back;
                p.poll(Duration::from_millis(10));
            }
            Err((e, _)) => return Err(e).with_context(|| format!("cannot produce to {topic}")),
        }
    }
}

/// Progress on stderr, every 100 000 records.
struct Progress {
    done: AtomicU64,
    started: Instant,
}

impl Progress {
    const EVERY: u64 = 100_000;

    fn tick(&self) {
        let n = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if n % Self::EVERY == 0 {
            let secs = self.started.elapsed().as_secs_f64();
            eprintln!(
                "simulate: {n} records, {:.0} records/s",
                n as f64 / secs.max(1e-9)
            );
        }
    }
}

/// Generates (and, with a producer, produces) every family's records on a few threads.
fn produce_all(
    settings: &Settings,
    plan: &Plan,
    producer: Option<&ThreadedProducer<Delivery>>,
) -> anyhow::Result<Summary> {
    let progress = Progress {
        done: AtomicU64::new(0),
        started: Instant::now(),
    };
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map_or(2, usize::from)
        .min(plan.families.len())
        .max(1);
    let results: Mutex<Vec<(usize, Tally)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| -> anyhow::Result<()> {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| -> anyhow::Result<()> {
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        let Some(f) = plan.families.get(k) else {
                            return Ok(());
                        };
                        let topic = settings.topic(f.name);
                        let mut tally = Tally::default();
                        tally.t.topic.clone_from(&topic);
                        for r in generate(f, plan.records, &plan.opts_for(settings, f))? {
                            if let Some(p) = producer {
                                send(p, &topic, &r)?;
                            }
                            tally.add(&r);
                            progress.tick();
                        }
                        results
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push((k, tally));
                    }
                })
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(r) => r?,
                Err(p) => std::panic::resume_unwind(p),
            }
        }
        Ok(())
    })?;
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.sort_by_key(|(k, _)| *k);
    let mut summary = Summary::new(&plan.opts, plan.records);
    for (k, t) in results {
        summary.add(plan.families[k], t);
    }
    let secs = progress.started.elapsed().as_secs_f64();
    eprintln!(
        "simulate: generated {} records in {secs:.2}s ({:.0} records/s){}",
        summary.totals.produced,
        summary.totals.produced as f64 / secs.max(1e-9),
        if producer.is_some() { ", flushing" } else { "" }
    );
    Ok(summary)
}

/// Generates every family's records without Kafka (what `--dry-run` prints).
///
/// # Errors
/// Invalid arguments or settings (unknown family, base time outside the plausibility window, a
/// format the worker's decode settings cannot read).
pub fn dry_run(settings: &Settings, args: &SimulateArgs) -> anyhow::Result<Summary> {
    let mut plan = Plan::new(settings, args, Utc::now())?;
    if plan.uses_registry() {
        // No registry is contacted: placeholder ids (the records differ only in those 4 bytes).
        plan.opts.registry_ids = plan
            .families
            .iter()
            .zip(1u32..)
            .map(|(f, id)| (f.name.to_owned(), id))
            .collect();
    }
    produce_all(settings, &plan, None)
}

/// Runs `esurio simulate`: produces the records and prints the [`Summary`] as JSON on stdout.
///
/// # Errors
/// Invalid arguments, Kafka or the schema registry unreachable, or a record not delivered.
pub async fn run(settings: &Settings, args: SimulateArgs) -> anyhow::Result<()> {
    let summary = if args.dry_run {
        let (settings, args) = (settings.clone(), args.clone());
        tokio::task::spawn_blocking(move || dry_run(&settings, &args)).await??
    } else {
        let mut plan = Plan::new(settings, &args, Utc::now())?;
        ensure_topics(settings, &plan.families, args.partitions).await?;
        if plan.uses_registry() {
            let url = plan.registry.clone().unwrap_or_default();
            let (s, fams) = (settings.clone(), plan.families.clone());
            plan.opts.registry_ids =
                tokio::task::spawn_blocking(move || register_schemas(&s, &url, &fams)).await??;
        }
        let settings = settings.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<Summary> {
            let p = producer(&settings)?;
            let started = Instant::now();
            let summary = produce_all(&settings, &plan, Some(&p))?;
            p.flush(Duration::from_secs(120))
                .context("cannot flush the Kafka producer (are the brokers reachable?)")?;
            let ctx = p.context();
            let failed = ctx.failed.load(Ordering::Relaxed);
            let delivered = ctx.delivered.load(Ordering::Relaxed);
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "simulate: delivered {delivered} records in {secs:.2}s ({:.0} records/s), {failed} failed",
                delivered as f64 / secs.max(1e-9)
            );
            if failed > 0 {
                let first = ctx
                    .first_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
                    .unwrap_or_default();
                bail!("{failed} records were not delivered (first error: {first})");
            }
            if delivered != summary.totals.produced {
                bail!(
                    "{delivered} records were acknowledged, {} produced",
                    summary.totals.produced
                );
            }
            Ok(summary)
        })
        .await??
    };
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
