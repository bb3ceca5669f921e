//! The record generator: deterministic synthetic records of one family, a share of them with exactly
//! one defect whose rejection reason is known in advance.
//!
//! Determinism: a record's valid content depends only on (seed, base time, family, index): each
//! index gets its own ChaCha8 stream (`set_stream(index)`) of one key derived from the seed and the
//! family name. Which indexes are invalid and which defect each gets come from a separate stream, so
//! changing `--invalid-ratio` or `--records` does not change the valid records' content. The only
//! state carried from record to record is the per-instrument random walk of prices.

use super::families::{self, Builder, Defect, Kind, On};
use super::spider::{self, Effect, Outcome, Spider, Spiders};
use super::wire::{Rec, TsStyle, V};
use crate::decode::Format;
use crate::records::FamilySpec;
use anyhow::Context;
use apache_avro::Schema;
use chrono::{DateTime, Datelike, Duration as ChronoDuration, NaiveDate, TimeZone, Utc};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::time::Duration;

/// The encoding(s) a run produces.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum SimFormat {
    /// JSON objects (timestamps as RFC 3339 strings or epoch milliseconds).
    Json,
    /// Avro in the Confluent schema-registry wire format (`00`, schema id, body); the schemas are
    /// registered under `<topic>-value` first. Needs decode.schema_registry_url.
    AvroRegistry,
    /// Avro single-object encoding (`C3 01`, schema fingerprint, body).
    AvroSingleObject,
    /// Rotate per record among JSON, single-object and (if a registry is configured) registry Avro.
    Mixed,
}

impl SimFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            SimFormat::Json => "json",
            SimFormat::AvroRegistry => "avro-registry",
            SimFormat::AvroSingleObject => "avro-single-object",
            SimFormat::Mixed => "mixed",
        }
    }
}

/// The encoding of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WireFormat {
    Json,
    AvroSingleObject,
    AvroRegistry,
}

impl WireFormat {
    pub fn is_avro(self) -> bool {
        !matches!(self, WireFormat::Json)
    }
}

/// What a generated record must become in the worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Processes without error and stages exactly these rows (table name, row count), one entry per
    /// table of the family.
    Valid { rows: Vec<(&'static str, usize)> },
    /// Is rejected with this reason code (a `DecodeError::reason()` or `RecordError::reason()`).
    Invalid { reason: &'static str },
}

impl Expect {
    pub fn is_valid(&self) -> bool {
        matches!(self, Expect::Valid { .. })
    }
}

/// One simulated Kafka record.
#[derive(Debug, Clone)]
pub struct SimRecord {
    /// Position in the run (0-based), the input of all of this record's randomness.
    pub index: u64,
    pub format: WireFormat,
    /// The Kafka message key: the family's grouping key (symbol for market data, ...).
    pub key: Option<Vec<u8>>,
    /// The Kafka value; `None` is a record without a value (a tombstone), i.e. `empty_payload`.
    pub payload: Option<Vec<u8>>,
    /// The Kafka timestamp (CreateTime, epoch milliseconds): `base_time + index ms`, or a revision's
    /// version time for the families whose version time is the Kafka timestamp.
    pub timestamp: i64,
    pub expect: Expect,
    /// The realism kind, for records that come back to an earlier record's key (`--realism`).
    pub spider: Option<Spider>,
    /// What the database must make of the record.
    pub outcome: Outcome,
    /// The rows the record adds to the tables and their history tables.
    pub effect: Effect,
}

/// Everything a generator needs, so that generating needs neither Kafka nor a registry.
#[derive(Debug, Clone)]
pub struct GenOptions {
    pub seed: u64,
    /// Valid records' timestamps are `base_time + index ms + (seed % 1000) µs`.
    pub base_time: DateTime<Utc>,
    /// The clock the invalid timestamps are placed against (future / too old); only its UTC day
    /// matters, so that a run is reproducible within a day.
    pub now: DateTime<Utc>,
    /// Share of invalid records; exactly `round(n * invalid_ratio)` of `n` are invalid.
    pub invalid_ratio: f64,
    /// Share of the valid records that are spider realism (see `spider`): exactly
    /// `min(round(v * realism), v - 1)` of the `v` valid positions, never the first.
    pub realism: f64,
    pub format: SimFormat,
    /// Schema registry ids by family name (needed for `AvroRegistry`; `Mixed` uses the registry
    /// only for families that have an id here).
    pub registry_ids: BTreeMap<String, u32>,
    /// The worker's `decode.max_record_bytes`.
    pub max_record_bytes: usize,
    /// The worker's `validate.max_future` / `validate.max_past`.
    pub max_future: Duration,
    pub max_past: Duration,
    /// The worker's `database.partition_max_past`: ticks older than it are quarantined as
    /// `outside_partition_window`.
    pub partition_max_past: Duration,
    /// The worker's configured decode format for the topic (`auto` unless overridden): it decides
    /// what an unknown first byte is reported as.
    pub worker_format: Format,
    /// What the run's other families store that results refer to (see [`References`]); `None`:
    /// results name symbols and strategies from the whole universe.
    pub references: Option<std::sync::Arc<References>>,
}

/// The symbols and strategy versions a run's valid records store, so that its results (features,
/// insights, signals) name only those: the worker quarantines a result that names a symbol or
/// strategy the database does not know (`unknown_entity`, `unknown_strategy`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    /// Symbols of valid market_data, crypto_data and order_book records.
    pub symbols: Vec<String>,
    /// `(strategy_id, version)` of valid strategy records.
    pub strategies: Vec<(String, i32)>,
}

impl References {
    /// What `families` (generated with `opts`, `n` records each) store for results to refer to.
    ///
    /// # Errors
    /// A family cannot be generated.
    pub fn of_run(
        families: &[&'static crate::records::FamilySpec],
        n: usize,
        opts: &GenOptions,
    ) -> anyhow::Result<Self> {
        let mut refs = References::default();
        let mut symbols = std::collections::BTreeSet::new();
        let mut strategies = std::collections::BTreeSet::new();
        for f in families {
            let symbolic = matches!(f.name, "market_data" | "crypto_data" | "order_book");
            if !symbolic && f.name != "strategy" {
                continue;
            }
            for r in generate(f, n, opts)? {
                if !r.expect.is_valid() {
                    continue;
                }
                let Some(key) = r.key.as_deref() else {
                    continue;
                };
                let key = String::from_utf8_lossy(key).into_owned();
                if symbolic {
                    symbols.insert(key);
                } else if r.spider.is_none() {
                    strategies.insert((key, families::strategy_version(r.index)));
                }
            }
        }
        refs.symbols = symbols.into_iter().collect();
        refs.strategies = strategies.into_iter().collect();
        Ok(refs)
    }
}

/// Yesterday 00:00 UTC: the default base time, so that the same seed on the same day gives the same
/// records.
pub fn default_base_time(now: DateTime<Utc>) -> DateTime<Utc> {
    let day = now.date_naive() - ChronoDuration::days(1);
    Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).unwrap_or_default())
}

impl GenOptions {
    /// Options with the worker's default limits.
    pub fn new(seed: u64, base_time: DateTime<Utc>) -> Self {
        let v = crate::config::ValidateSettings::default();
        let d = crate::config::DecodeSettings::default();
        Self {
            seed,
            base_time,
            now: Utc::now(),
            invalid_ratio: 0.1,
            realism: 0.0,
            format: SimFormat::Json,
            registry_ids: BTreeMap::new(),
            max_record_bytes: d.max_record_bytes,
            max_future: v.max_future,
            max_past: v.max_past,
            partition_max_past: crate::config::DatabaseSettings::default().partition_max_past,
            worker_format: Format::Auto,
            references: None,
        }
    }
}

/// Records larger than the limit are only generated when the limit is at most this (2 MiB).
pub const TOO_LARGE_MAX_LIMIT: usize = 2 * 1024 * 1024;
/// `too_large` takes part in one reason cycle out of this many (the first one included), so such
/// records stay rare.
pub const TOO_LARGE_EVERY: u64 = 256;
/// Schema id used for `unknown_schema_id` (and 999998 should the registry really hand out 999999).
pub const BOGUS_SCHEMA_ID: u32 = 999_999;

/// Constants of one run that the family builders need.
pub(crate) struct Env {
    pub seed: u64,
    /// The seed in upper-case base 36, for ids.
    pub seed36: String,
    pub base: DateTime<Utc>,
    pub base_micros: i64,
    /// Base time in epoch seconds, and in upper-case base 36.
    pub base_secs: i64,
    pub base36: String,
    /// Sub-millisecond offset of every valid timestamp: `seed % 1000` µs.
    pub seed_off: i64,
    pub future_micros: Option<i64>,
    pub old_micros: Option<i64>,
    /// A day inside `max_past` but older than `partition_max_past` (none when the two windows
    /// leave no such day).
    pub stale_day_micros: Option<i64>,
    /// What results may refer to ([`GenOptions::references`]).
    pub references: Option<std::sync::Arc<References>>,
}

impl Env {
    fn new(o: &GenOptions) -> Self {
        let base_micros = o.base_time.timestamp_micros();
        let today = o.now.max(o.base_time).date_naive();
        let day_start = |d: NaiveDate| d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
        // Future: two days after today's start plus max_future (+1 day): still in the future when the
        // worker consumes on the next day. Too old: max_past before today's start, minus two days.
        let future = day_start(today)
            .and_then(|t| t.checked_add_signed(ChronoDuration::days(3)))
            .and_then(|t| t.checked_add_signed(ChronoDuration::from_std(o.max_future).ok()?))
            .filter(|t| t.year() <= 9999)
            .map(|t| t.timestamp_micros());
        let oldest_today = o.now.min(o.base_time).date_naive();
        let old = day_start(oldest_today)
            .and_then(|t| t.checked_sub_signed(ChronoDuration::days(2)))
            .and_then(|t| t.checked_sub_signed(ChronoDuration::from_std(o.max_past).ok()?))
            .filter(|t| t.year() >= 1)
            .map(|t| t.timestamp_micros());
        // Ten days past the partition window, and at least ten days inside max_past.
        let stale = day_start(oldest_today)
            .and_then(|t| t.checked_sub_signed(ChronoDuration::days(10)))
            .and_then(|t| {
                t.checked_sub_signed(ChronoDuration::from_std(o.partition_max_past).ok()?)
            })
            .filter(|_| o.partition_max_past + Duration::from_secs(30 * 86_400) < o.max_past)
            .map(|t| t.timestamp_micros());
        Self {
            seed: o.seed,
            seed36: base36(o.seed),
            base: o.base_time,
            base_micros,
            base_secs: o.base_time.timestamp(),
            base36: base36(o.base_time.timestamp().max(0) as u64),
            seed_off: (o.seed % 1000) as i64,
            future_micros: future,
            old_micros: old,
            stale_day_micros: stale,
            references: o.references.clone(),
        }
    }

    /// The timestamp of a valid record: unique per index, and per seed modulo 1000.
    pub fn ts(&self, i: u64) -> i64 {
        self.base_micros + (i as i64) * 1000 + self.seed_off
    }

    pub fn base_date(&self) -> NaiveDate {
        self.base.date_naive()
    }
}

/// Upper-case base 36.
pub fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut out = Vec::with_capacity(13);
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// A stable 64-bit hash (FNV-1a) of a name, so that a family's stream does not depend on the order of
/// `FAMILIES`.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn key_for(seed: u64, family: &str) -> [u8; 32] {
    let mut state = seed ^ fnv(family);
    let mut key = [0u8; 32];
    for chunk in key.chunks_mut(8) {
        chunk.copy_from_slice(&splitmix(&mut state).to_le_bytes());
    }
    key
}

// Decode-level reason codes (`DecodeError::reason()`, and `RecordError::Shape`'s).
pub const EMPTY_PAYLOAD: &str = "empty_payload";
pub const TOO_LARGE: &str = "too_large";
pub const UNKNOWN_FORMAT: &str = "unknown_format";
pub const WRONG_MAGIC: &str = "wrong_magic_byte";
pub const TRUNCATED_JSON: &str = "truncated_json";
pub const INVALID_JSON: &str = "invalid_json";
pub const INVALID_UTF8: &str = "invalid_utf8";
pub const NESTING_TOO_DEEP: &str = "nesting_too_deep";
pub const SCHEMA_MISMATCH: &str = "schema_mismatch";
pub const INVALID_AVRO: &str = "invalid_avro";
pub const UNKNOWN_FINGERPRINT: &str = "unknown_fingerprint";
pub const UNKNOWN_SCHEMA_ID: &str = "unknown_schema_id";
pub const TRUNCATED_HEADER: &str = "truncated_header";
pub const TRAILING_BYTES: &str = "trailing_bytes";

/// The decode-level reasons a format can be given, in a fixed order.
fn decode_reasons(f: WireFormat, o: &GenOptions) -> Vec<&'static str> {
    let mut v = vec![EMPTY_PAYLOAD];
    match o.worker_format {
        Format::Auto => v.push(UNKNOWN_FORMAT),
        Format::AvroRegistry | Format::AvroSingleObject if f.is_avro() => v.push(WRONG_MAGIC),
        _ => {}
    }
    if o.max_record_bytes <= TOO_LARGE_MAX_LIMIT {
        v.push(TOO_LARGE);
    }
    match f {
        WireFormat::Json => v.extend([
            TRUNCATED_JSON,
            INVALID_JSON,
            INVALID_UTF8,
            NESTING_TOO_DEEP,
            SCHEMA_MISMATCH,
        ]),
        WireFormat::AvroSingleObject => {
            v.extend([
                INVALID_AVRO,
                UNKNOWN_FINGERPRINT,
                TRUNCATED_HEADER,
                TRAILING_BYTES,
            ]);
        }
        WireFormat::AvroRegistry => {
            v.extend([
                INVALID_AVRO,
                UNKNOWN_SCHEMA_ID,
                TRUNCATED_HEADER,
                TRAILING_BYTES,
            ]);
        }
    }
    v
}

fn defect_applies(d: &Defect, f: WireFormat, env: &Env) -> bool {
    let on = match d.on {
        On::Both => true,
        On::Json => !f.is_avro(),
        On::Avro => f.is_avro(),
    };
    let possible = match d.kind {
        Kind::Future(_) => env.future_micros.is_some(),
        Kind::Old(_) => env.old_micros.is_some(),
        Kind::StaleDay(_) => env.stale_day_micros.is_some(),
        _ => true,
    };
    on && possible
}

fn reasons_for(defects: &[Defect], f: WireFormat, o: &GenOptions, env: &Env) -> Vec<&'static str> {
    let mut v = decode_reasons(f, o);
    for d in defects {
        if defect_applies(d, f, env) && !v.contains(&d.reason) {
            v.push(d.reason);
        }
    }
    v
}

/// Every reason the generator can give records of `family` in encoding `format` under `opts`: over
/// enough invalid records, each of them occurs.
///
/// # Errors
/// `family` has no simulator.
pub fn applicable_reasons(
    family: &'static FamilySpec,
    format: WireFormat,
    opts: &GenOptions,
) -> anyhow::Result<Vec<&'static str>> {
    let b = families::builder(family.name, &Env::new(opts))
        .with_context(|| format!("no simulator for the family {}", family.name))?;
    Ok(reasons_for(b.defects(), format, opts, &Env::new(opts)))
}

/// The encodings `opts.format` rotates through for a family.
pub fn rotation(family: &str, opts: &GenOptions) -> Vec<WireFormat> {
    match opts.format {
        SimFormat::Json => vec![WireFormat::Json],
        SimFormat::AvroSingleObject => vec![WireFormat::AvroSingleObject],
        SimFormat::AvroRegistry => vec![WireFormat::AvroRegistry],
        SimFormat::Mixed => {
            let mut v = vec![WireFormat::Json, WireFormat::AvroSingleObject];
            if opts.registry_ids.contains_key(family) {
                v.push(WireFormat::AvroRegistry);
            }
            v
        }
    }
}

/// The reason cycle of one encoding: a shuffled pass over every applicable reason, then another.
struct Lane {
    format: WireFormat,
    reasons: Vec<&'static str>,
    order: Vec<&'static str>,
    pos: usize,
    round: u64,
}

impl Lane {
    fn next(&mut self, rng: &mut ChaCha8Rng) -> &'static str {
        if self.pos >= self.order.len() {
            let with_large = self.round % TOO_LARGE_EVERY == 0;
            self.order.clear();
            self.order.extend(
                self.reasons
                    .iter()
                    .copied()
                    .filter(|r| with_large || *r != TOO_LARGE),
            );
            self.order.shuffle(rng);
            self.pos = 0;
            self.round += 1;
        }
        self.pos += 1;
        self.order[self.pos - 1]
    }
}

/// Generates the records of one family; see [`generate`].
pub struct Generator {
    spec: &'static FamilySpec,
    builder: Box<dyn Builder>,
    env: Env,
    n: u64,
    next: u64,
    key: [u8; 32],
    invalid: Vec<bool>,
    rotation: Vec<WireFormat>,
    lanes: Vec<Lane>,
    defect_rng: ChaCha8Rng,
    schema: Schema,
    fingerprint: [u8; 8],
    registry_id: u32,
    max_record_bytes: usize,
    /// Per position: whether it carries a realism record.
    realism: Vec<bool>,
    spiders: Spiders,
    spider_lane: SpiderLane,
    /// Base time in epoch milliseconds: record i's Kafka timestamp is `base_ms + i`.
    base_ms: i64,
}

/// The realism kinds of a family in shuffled rounds, so that every kind occurs in exact numbers.
struct SpiderLane {
    kinds: &'static [Spider],
    order: Vec<Spider>,
    pos: usize,
    rng: ChaCha8Rng,
}

impl SpiderLane {
    fn next(&mut self) -> Spider {
        if self.pos >= self.order.len() {
            self.order.clear();
            self.order.extend_from_slice(self.kinds);
            self.order.shuffle(&mut self.rng);
            self.pos = 0;
        }
        self.pos += 1;
        self.order[self.pos - 1]
    }
}

/// The records of `family`: `n` of them, `round(n * invalid_ratio)` invalid.
///
/// # Errors
/// The family has no simulator, the ratio is outside 0..=1, or the registry format is asked for
/// without a schema id for the family.
pub fn generate(
    family: &'static FamilySpec,
    n: usize,
    opts: &GenOptions,
) -> anyhow::Result<Generator> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&opts.invalid_ratio),
        "the invalid ratio must be within 0..=1, got {}",
        opts.invalid_ratio
    );
    let env = Env::new(opts);
    let builder = families::builder(family.name, &env)
        .with_context(|| format!("no simulator for the family {}", family.name))?;
    let rotation = rotation(family.name, opts);
    let registry_id = match opts.registry_ids.get(family.name) {
        Some(id) => *id,
        None if rotation.contains(&WireFormat::AvroRegistry) => {
            anyhow::bail!("no schema registry id for {}", family.name)
        }
        None => 0,
    };
    let schema = Schema::parse_str(family.avro_schema)
        .with_context(|| format!("the embedded Avro schema of {} does not parse", family.name))?;
    let key = key_for(opts.seed, family.name);
    let mut defect_rng = ChaCha8Rng::from_seed(key);
    defect_rng.set_stream(u64::MAX);
    let k = ((n as f64) * opts.invalid_ratio).round() as usize;
    let mut invalid = vec![false; n];
    for i in rand::seq::index::sample(&mut defect_rng, n, k.min(n)) {
        invalid[i] = true;
    }
    anyhow::ensure!(
        (0.0..=1.0).contains(&opts.realism),
        "the realism ratio must be within 0..=1, got {}",
        opts.realism
    );
    // Realism positions come from their own stream, among the valid positions after the first
    // (a realism record needs an earlier valid record to come back to).
    let mut spider_rng = ChaCha8Rng::from_seed(key);
    spider_rng.set_stream(u64::MAX - 1);
    let valid_at: Vec<usize> = (0..n).filter(|i| !invalid[*i]).skip(1).collect();
    let r = (((n - k.min(n)) as f64) * opts.realism).round() as usize;
    let mut realism = vec![false; n];
    for x in rand::seq::index::sample(&mut spider_rng, valid_at.len(), r.min(valid_at.len())) {
        realism[valid_at[x]] = true;
    }
    let spider_lane = SpiderLane {
        kinds: spider::kinds(family.name),
        order: Vec::new(),
        pos: 0,
        rng: spider_rng,
    };
    let spiders = Spiders::new(family.name, family.tables.iter().map(|t| t.name).collect());
    let lanes = rotation
        .iter()
        .map(|f| Lane {
            format: *f,
            reasons: reasons_for(builder.defects(), *f, opts, &env),
            order: Vec::new(),
            pos: 0,
            round: 0,
        })
        .collect();
    Ok(Generator {
        spec: family,
        fingerprint: crate::decode::fingerprint(&schema),
        schema,
        builder,
        env,
        n: n as u64,
        next: 0,
        key,
        invalid,
        rotation,
        lanes,
        defect_rng,
        registry_id,
        max_record_bytes: opts.max_record_bytes,
        realism,
        spiders,
        spider_lane,
        base_ms: opts.base_time.timestamp_millis(),
    })
}

impl Generator {
    pub fn family(&self) -> &'static FamilySpec {
        self.spec
    }

    /// Every reason this generator can give, per encoding it rotates through.
    pub fn applicable(&self) -> Vec<(WireFormat, Vec<&'static str>)> {
        self.lanes
            .iter()
            .map(|l| (l.format, l.reasons.clone()))
            .collect()
    }

    fn datum(&self, rec: &Rec) -> Vec<u8> {
        match apache_avro::to_avro_datum(&self.schema, rec.to_avro()) {
            Ok(b) => b,
            // A bug in the family builder (the unit tests encode every family and defect).
            Err(e) => panic!(
                "simulator bug: a {} record does not match its Avro schema: {e}: {rec:?}",
                self.spec.name
            ),
        }
    }

    fn avro_frame(&self, f: WireFormat, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(body.len() + 10);
        if f == WireFormat::AvroRegistry {
            out.push(0);
            out.extend_from_slice(&self.registry_id.to_be_bytes());
        } else {
            out.extend_from_slice(&[0xC3, 0x01]);
            out.extend_from_slice(&self.fingerprint);
        }
        out.extend_from_slice(body);
        out
    }

    fn encode(&self, rec: &Rec, f: WireFormat) -> Vec<u8> {
        match f {
            WireFormat::Json => serde_json::to_vec(rec).unwrap_or_default(),
            _ => self.avro_frame(f, &self.datum(rec)),
        }
    }

    /// Builds the payload for a decode-level reason.
    fn decode_defect(
        &self,
        reason: &'static str,
        mut rec: Rec,
        f: WireFormat,
        rng: &mut ChaCha8Rng,
    ) -> Option<Vec<u8>> {
        Some(match reason {
            // A null value on a topic with deletes is a tombstone (a delete, docs/RECORDS.md):
            // those families get a zero-length value, which is empty_payload everywhere.
            EMPTY_PAYLOAD if self.spec.delete_key.is_some() => Vec::new(),
            EMPTY_PAYLOAD => return None,
            UNKNOWN_FORMAT => {
                // Something that is neither JSON nor Avro: a stray binary frame, gzip, MessagePack.
                let mut b: Vec<u8> = match rng.gen_range(0..3) {
                    0 => b"\x7fELF\x02\x01\x01".to_vec(),
                    1 => vec![0x1f, 0x8b, 0x08, 0x00],
                    _ => vec![0x88, 0xa6],
                };
                b.extend_from_slice(&js(&rec)[..16.min(js(&rec).len())]);
                b
            }
            // JSON text on a topic the worker reads as Avro only.
            WRONG_MAGIC => js(&rec),
            TOO_LARGE => {
                let filler_unit = "<div class=\"ad-slot\"><!-- tracking pixel --></div>\n";
                let need = self.max_record_bytes + 1 + rng.gen_range(0..4096);
                if f == WireFormat::Json {
                    // A spider that shipped the whole page along with the record.
                    let have = js(&rec).len();
                    let filler =
                        filler_unit.repeat((need.saturating_sub(have)) / filler_unit.len() + 1);
                    rec.put("raw_html", V::Str(filler));
                    js(&rec)
                } else {
                    let have = self.encode(&rec, f).len();
                    let filler =
                        filler_unit.repeat((need.saturating_sub(have)) / filler_unit.len() + 1);
                    // Pad the first string field (every schema starts with one).
                    if let Some((_, V::Str(s))) =
                        rec.0.iter_mut().find(|(_, v)| matches!(v, V::Str(_)))
                    {
                        s.push_str(&filler);
                    }
                    self.encode(&rec, f)
                }
            }
            TRUNCATED_JSON => {
                let b = js(&rec);
                let s = String::from_utf8(b).unwrap_or_default();
                let mut cut = rng.gen_range(s.len() / 4..s.len() * 3 / 4).max(1);
                while !s.is_char_boundary(cut) {
                    cut -= 1;
                }
                s.as_bytes()[..cut].to_vec()
            }
            INVALID_JSON => {
                let b = js(&rec);
                match rng.gen_range(0..4) {
                    // Python's json.dumps(float('nan')).
                    0 => {
                        let mut out = b"{\"value\": NaN, ".to_vec();
                        out.extend_from_slice(&b[1..]);
                        out
                    }
                    // A Python dict printed with repr().
                    1 => String::from_utf8_lossy(&b).replace('"', "'").into_bytes(),
                    // Two records concatenated.
                    2 => {
                        let mut out = b.clone();
                        out.extend_from_slice(&b);
                        out
                    }
                    // A JavaScript object literal with an unquoted key.
                    _ => {
                        let mut out = b"{source_page: 1, ".to_vec();
                        out.extend_from_slice(&b[1..]);
                        out
                    }
                }
            }
            INVALID_UTF8 => {
                // Latin-1 "é" (0xE9) inside the first string value.
                let mut b = js(&rec);
                let at = b.windows(2).position(|w| w == b":\"").map_or(1, |p| p + 2);
                b.splice(
                    at..at,
                    [b'M', b'o', b'n', b't', b'r', 0xE9, b'a', b'l', b' '],
                );
                b
            }
            NESTING_TOO_DEEP => {
                let depth = rng.gen_range(150..400);
                let b = js(&rec);
                let mut out = Vec::with_capacity(b.len() + 2 * depth + 16);
                out.extend_from_slice(b"{\"debug\":");
                out.extend(std::iter::repeat_n(b'[', depth));
                out.extend(std::iter::repeat_n(b']', depth));
                out.push(b',');
                out.extend_from_slice(&b[1..]);
                out
            }
            SCHEMA_MISMATCH => {
                // A field of the wrong JSON type: an object where a scalar (or list) belongs.
                let candidates: Vec<&'static str> = rec
                    .0
                    .iter()
                    .map(|(k, _)| *k)
                    .filter(|k| *k != "parameters")
                    .collect();
                let field = candidates.choose(rng).copied().unwrap_or("symbol");
                let wrong = match rng.gen_range(0..3) {
                    0 => serde_json::json!({"$numberDouble": "1.5"}),
                    1 => serde_json::json!({"$date": {"$numberLong": "1700000000000"}}),
                    _ => serde_json::json!({"value": null, "error": "parse failed"}),
                };
                rec.replace(field, V::Json(wrong));
                js(&rec)
            }
            INVALID_AVRO => {
                // A body cut short. Not every cut fails: apache-avro reads end-of-input where a
                // union's index belongs as null, so a cut right before trailing optional fields
                // decodes. Cut further until the worker's decoder (decode, then validate against
                // the schema) rejects it.
                let body = self.datum(&rec);
                let mut cut = rng.gen_range(0..body.len().max(1));
                while cut > 0 && !avro_rejects(&self.schema, &body[..cut]) {
                    cut -= 1;
                }
                self.avro_frame(f, &body[..cut])
            }
            UNKNOWN_FINGERPRINT => {
                // Written with another (e.g. an older) version of the schema.
                let mut b = self.encode(&rec, f);
                for x in &mut b[2..10] {
                    *x ^= 0x5A;
                }
                b
            }
            UNKNOWN_SCHEMA_ID => {
                let mut b = self.encode(&rec, f);
                let id = if self.registry_id == BOGUS_SCHEMA_ID {
                    BOGUS_SCHEMA_ID - 1
                } else {
                    BOGUS_SCHEMA_ID
                };
                b[1..5].copy_from_slice(&id.to_be_bytes());
                b
            }
            TRUNCATED_HEADER => {
                let b = self.encode(&rec, f);
                let keep = if f == WireFormat::AvroRegistry {
                    rng.gen_range(1..5)
                } else {
                    rng.gen_range(2..10)
                };
                b[..keep].to_vec()
            }
            TRAILING_BYTES => {
                let mut b = self.encode(&rec, f);
                b.extend_from_slice(&[0u8; 3][..rng.gen_range(1..4)]);
                b
            }
            _ => return Some(self.encode(&rec, f)),
        })
    }
}

impl Iterator for Generator {
    type Item = SimRecord;

    fn next(&mut self) -> Option<SimRecord> {
        if self.next >= self.n {
            return None;
        }
        let i = self.next;
        self.next += 1;
        let f = self.rotation[(i % self.rotation.len() as u64) as usize];
        let mut rng = ChaCha8Rng::from_seed(self.key);
        rng.set_stream(i);
        let slot_ms = self.base_ms + i as i64;
        if self.realism[i as usize] {
            let kind = self.spider_lane.next();
            if let Some(p) = self.spiders.plan(kind, i, slot_ms, &mut rng, &self.env) {
                let payload = self.encode(&p.rec, f);
                if payload.len() <= self.max_record_bytes {
                    self.spiders.commit(&p);
                    let rows = self.spec.tables.iter().map(|t| t.name).collect::<Vec<_>>();
                    let n_ents = match p.rec.get("entities") {
                        Some(V::Arr(v)) => v.len(),
                        _ => 0,
                    };
                    // What the validator stages: the parent row and its entities.
                    let rows = rows
                        .iter()
                        .enumerate()
                        .map(|(k, t)| (*t, if k == 0 { 1 } else { n_ents }))
                        .collect();
                    return Some(SimRecord {
                        index: i,
                        format: f,
                        key: Some(p.key),
                        payload: Some(payload),
                        timestamp: p.kafka_ts,
                        expect: Expect::Valid { rows },
                        spider: Some(p.kind),
                        outcome: p.outcome,
                        effect: p.effect,
                    });
                }
                return Some(SimRecord {
                    index: i,
                    format: f,
                    key: Some(p.key),
                    payload: Some(payload),
                    timestamp: p.kafka_ts,
                    expect: Expect::Invalid { reason: TOO_LARGE },
                    spider: Some(p.kind),
                    outcome: Outcome::Rejected,
                    effect: Effect::default(),
                });
            }
        }
        let base = self.builder.build(i, &mut rng, &self.env);
        if !self.invalid[i as usize] {
            let payload = self.encode(&base.rec, f);
            let (expect, outcome, effect) = if payload.len() > self.max_record_bytes {
                (
                    Expect::Invalid { reason: TOO_LARGE },
                    Outcome::Rejected,
                    Effect::default(),
                )
            } else {
                self.spiders.remember(&base.rec, &base.key, slot_ms);
                let effect = Spiders::inserted(&base.rows);
                (Expect::Valid { rows: base.rows }, Outcome::Inserted, effect)
            };
            return Some(SimRecord {
                index: i,
                format: f,
                key: Some(base.key),
                payload: Some(payload),
                timestamp: slot_ms,
                expect,
                spider: None,
                outcome,
                effect,
            });
        }
        let key = Some(base.key);
        let lane = self
            .lanes
            .iter_mut()
            .find(|l| l.format == f)
            .expect("a lane per rotated format");
        let reason = lane.next(&mut self.defect_rng);
        let variants: Vec<&Defect> = self
            .builder
            .defects()
            .iter()
            .filter(|d| d.reason == reason && defect_applies(d, f, &self.env))
            .collect();
        let payload = if let Some(d) = variants.choose(&mut rng) {
            let mut rec = base.rec;
            apply(d, &mut rec, &mut rng, &self.env);
            Some(self.encode(&rec, f))
        } else {
            self.decode_defect(reason, base.rec, f, &mut rng)
        };
        let reason = match &payload {
            Some(p) if p.len() > self.max_record_bytes => TOO_LARGE,
            _ => reason,
        };
        Some(SimRecord {
            index: i,
            format: f,
            key,
            payload,
            timestamp: slot_ms,
            expect: Expect::Invalid { reason },
            spider: None,
            outcome: Outcome::Rejected,
            effect: Effect::default(),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.n - self.next) as usize;
        (left, Some(left))
    }
}

/// Whether the worker's decoder reports `invalid_avro` for this body (decoding fails, or the value
/// does not validate against the schema).
///
/// A body cut short decodes either to an error or to a value with a null where the schema has no
/// null (apache-avro reads a string cut by the end of input as null, and a missing union index as
/// the union's first branch, null): that null is what validation rejects. Checked here without
/// `Value::validate`, which logs every failure at ERROR level.
fn avro_rejects(schema: &Schema, body: &[u8]) -> bool {
    fn bare_null(v: &apache_avro::types::Value) -> bool {
        use apache_avro::types::Value as A;
        match v {
            A::Null => true,
            // Every union of our schemas is ["null", T]: null is only valid as branch 0.
            A::Union(i, inner) => match **inner {
                A::Null => *i != 0,
                ref other => bare_null(other),
            },
            A::Record(fields) => fields.iter().any(|(_, f)| bare_null(f)),
            A::Array(items) => items.iter().any(bare_null),
            _ => false,
        }
    }
    let mut rest = body;
    match apache_avro::from_avro_datum(schema, &mut rest, None) {
        Err(_) => true,
        Ok(v) => rest.is_empty() && bare_null(&v),
    }
}

fn js(rec: &Rec) -> Vec<u8> {
    serde_json::to_vec(rec).unwrap_or_default()
}

/// A text longer than `max` characters (some of them multi-byte, so that bytes != characters).
fn too_long(max: usize, rng: &mut ChaCha8Rng) -> String {
    let unit = "Überraschend starke Quartalszahlen – ";
    let want = max + rng.gen_range(1..40);
    let mut s: String = unit.chars().cycle().take(want).collect();
    // The validator trims required texts: the text must stay too long after trimming.
    s.truncate(s.trim_end().len());
    s.push_str("…!");
    s
}

fn with_nul(s: &str) -> String {
    let mut mid = s.len() / 2;
    while !s.is_char_boundary(mid) {
        mid -= 1;
    }
    format!("{}\u{0}{}", &s[..mid], &s[mid..])
}

/// Applies one validation-level defect to a valid record.
fn apply(d: &Defect, rec: &mut Rec, rng: &mut ChaCha8Rng, env: &Env) {
    let style = |rec: &Rec, f: &str| match rec.get(f) {
        Some(V::Ts(_, s)) => *s,
        _ => TsStyle::Utc,
    };
    match &d.kind {
        Kind::Remove(fields) => {
            if let Some(f) = fields.choose(rng) {
                rec.remove(f);
            }
        }
        Kind::Blank(fields) => {
            if let Some(f) = fields.choose(rng) {
                rec.set(f, V::s(if rng.gen_bool(0.5) { "" } else { "   " }));
            }
        }
        Kind::Nul(fields) => {
            if let Some(f) = fields.choose(rng) {
                let s = rec
                    .get(f)
                    .and_then(V::as_str)
                    .map_or_else(|| "Jane\u{0}Doe".to_owned(), with_nul);
                rec.set(f, V::Str(s));
            }
        }
        Kind::TooLong(fields) => {
            if let Some((f, max)) = fields.choose(rng) {
                rec.set(f, V::Str(too_long(*max, rng)));
            }
        }
        Kind::Strs(f, values) => {
            if let Some(v) = values.choose(rng) {
                rec.set(f, V::s(*v));
            }
        }
        Kind::F64s(f, values) => {
            if let Some(v) = values.choose(rng) {
                rec.set(f, V::F64(*v));
            }
        }
        Kind::Ints(f, values) => {
            if let Some(v) = values.choose(rng) {
                rec.set(f, V::Int(*v));
            }
        }
        Kind::Longs(f, values) => {
            if let Some(v) = values.choose(rng) {
                rec.set(f, V::Long(*v));
            }
        }
        Kind::NonFinite(fields) => {
            if let Some(f) = fields.choose(rng) {
                let x = *[f64::NAN, f64::INFINITY, f64::NEG_INFINITY]
                    .choose(rng)
                    .unwrap_or(&f64::NAN);
                rec.set(f, V::F64(x));
            }
        }
        Kind::BadTs(f) => {
            let t = *[
                "2024-13-45T25:61:00Z",
                "yesterday, 4:05 PM",
                "05/06/2024 14:30",
                "2024-06-01 14:30:00 +0000 UTC",
            ]
            .choose(rng)
            .unwrap_or(&"yesterday");
            rec.set(f, V::BadTs(t));
        }
        Kind::Future(f) => {
            let t = env.future_micros.unwrap_or(i64::MAX / 2) + rng.gen_range(0..86_400_000_000);
            let s = style(rec, f);
            rec.set(f, V::Ts(t, s));
        }
        Kind::Old(f) => {
            let t = env.old_micros.unwrap_or(0) - rng.gen_range(0..86_400_000_000 * 365);
            let s = style(rec, f);
            rec.set(f, V::Ts(t, s));
        }
        Kind::StaleDay(f) => {
            let t = env.stale_day_micros.unwrap_or(0) - rng.gen_range(0..86_400_000_000 * 5);
            let s = style(rec, f);
            rec.set(f, V::Ts(t, s));
        }
        Kind::Custom(fun) => fun(rec, rng, env),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base36_digits() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(35), "Z");
        assert_eq!(base36(36), "10");
        assert_eq!(base36(u64::MAX).len(), 13);
    }

    #[test]
    fn default_base_time_is_yesterday_midnight() {
        let now = Utc.with_ymd_and_hms(2024, 3, 1, 13, 14, 15).unwrap();
        assert_eq!(
            default_base_time(now),
            Utc.with_ymd_and_hms(2024, 2, 29, 0, 0, 0).unwrap()
        );
    }
}
