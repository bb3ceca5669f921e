//! Shared harness for esurio's fuzz targets (see `docs/FUZZING.md`).
//!
//! Every target funnels into [`run`], which decodes one payload for one record family, processes it
//! into staged COPY rows, and asserts the properties that must hold for *any* input:
//!
//! - nothing panics (the fuzzer catches that by itself);
//! - the Rust heap grows by at most [`MEM_BUDGET`] bytes while one record is decoded and processed
//!   (measured by the counting allocator below; libFuzzer's `-malloc_limit_mb`/`-rss_limit_mb`
//!   catch what escapes it);
//! - every error carries a non-empty ASCII snake_case reason code, a non-empty message, and a
//!   validation error names a field and a reason listed in `Reason::ALL`;
//! - a record that processes Ok staged exactly one row in table 0 (and noted its day when that table
//!   is day-partitioned); a record that fails staged nothing.
//!
//! Validation runs against a fixed clock ([`NOW_MS`]) so that every finding reproduces.

use apache_avro::types::Value as Avro;
use apache_avro::Schema;
use esurio::decode::{self, DecodeError, Decoder, Format, Payload};
use esurio::records::{Ctx, FamilySpec, Reason, RecordError, FAMILIES};
use esurio::sink::copy::{Lineage, StagedRows};
use serde_json::{json, Value as Json};
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

/// The record size limit the decoders are built with (the worker's default).
pub const MAX_BYTES: usize = 64 * 1024;
/// Most heap bytes one record may add while it is decoded and processed: 256 x the record limit.
/// What a valid record legitimately costs is far below this (see docs/FUZZING.md).
pub const MEM_BUDGET: usize = 256 * MAX_BYTES;
/// The fixed "now" validation runs at: 2026-01-01T00:00:00Z, in epoch milliseconds.
pub const NOW_MS: i64 = 1_767_225_600_000;
/// An hour before [`NOW_MS`]: the timestamp of every template record.
pub const TS_MS: i64 = NOW_MS - 3_600_000;

// ---------------------------------------------------------------------------------------------
// A counting allocator: live and peak heap bytes of the Rust side.

pub mod mem {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    static LIVE: AtomicUsize = AtomicUsize::new(0);
    static PEAK: AtomicUsize = AtomicUsize::new(0);

    pub struct Counting;

    fn grow(n: usize) {
        let now = LIVE.fetch_add(n, Relaxed) + n;
        PEAK.fetch_max(now, Relaxed);
    }

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            let p = System.alloc(l);
            if !p.is_null() {
                grow(l.size());
            }
            p
        }
        unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
            let p = System.alloc_zeroed(l);
            if !p.is_null() {
                grow(l.size());
            }
            p
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            System.dealloc(p, l);
            LIVE.fetch_sub(l.size(), Relaxed);
        }
        unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
            let q = System.realloc(p, l, new);
            if !q.is_null() {
                if new >= l.size() {
                    grow(new - l.size());
                } else {
                    LIVE.fetch_sub(l.size() - new, Relaxed);
                }
            }
            q
        }
    }

    pub fn live() -> usize {
        LIVE.load(Relaxed)
    }

    /// Starts a new measurement; returns the baseline to pass to [`grown_since`].
    pub fn start() -> usize {
        let now = live();
        PEAK.store(now, Relaxed);
        now
    }

    /// The most the heap grew above `base` since [`start`].
    pub fn grown_since(base: usize) -> usize {
        PEAK.load(Relaxed).saturating_sub(base)
    }
}

#[global_allocator]
static ALLOC: mem::Counting = mem::Counting;

// ---------------------------------------------------------------------------------------------
// Decoders and context.

/// The validation context, at the fixed clock, with the worker's default window (5 min ahead, 20
/// years back).
pub fn ctx() -> Ctx {
    let mut c = Ctx::new(
        Duration::from_secs(300),
        Duration::from_secs(86400 * 365 * 20),
    );
    c.now = chrono::DateTime::from_timestamp_millis(NOW_MS).unwrap();
    c
}

fn build(format: Format) -> Vec<Decoder> {
    decode::limit_avro_allocations(MAX_BYTES);
    FAMILIES
        .iter()
        .map(|f| {
            Decoder::new(f.avro_schema, format, MAX_BYTES, None)
                .unwrap_or_else(|e| panic!("{}: schema does not parse: {e}", f.name))
        })
        .collect()
}

/// One decoder per family (index as in `FAMILIES`), detecting the format from the first bytes.
pub fn auto_decoders() -> &'static [Decoder] {
    static D: OnceLock<Vec<Decoder>> = OnceLock::new();
    maybe_write_seeds();
    D.get_or_init(|| build(Format::Auto))
}

/// One decoder per family that treats every payload as JSON.
pub fn json_decoders() -> &'static [Decoder] {
    static D: OnceLock<Vec<Decoder>> = OnceLock::new();
    D.get_or_init(|| build(Format::Json))
}

/// The family a fuzz input's first byte selects.
pub fn family_index(b: u8) -> usize {
    usize::from(b) % FAMILIES.len()
}

/// `C3 01`, the family schema's fingerprint, then `body`.
pub fn single_object(family: usize, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(10 + body.len());
    static FP: OnceLock<Vec<[u8; 8]>> = OnceLock::new();
    let fp = FP.get_or_init(|| {
        auto_decoders()
            .iter()
            .map(|d| decode::fingerprint(d.schema()))
            .collect()
    });
    v.extend_from_slice(&[0xC3, 0x01]);
    v.extend_from_slice(&fp[family]);
    v.extend_from_slice(body);
    v
}

// ---------------------------------------------------------------------------------------------
// The properties.

/// What decoding and processing one payload came to.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// The decoder refused the bytes.
    Decode(&'static str),
    /// Deserializing or validating refused the payload: the reason, and the field for validation.
    Record {
        reason: &'static str,
        field: Option<&'static str>,
    },
    /// Rows were staged; with `keep_rows`, each table's finished COPY stream and row count.
    Rows(Vec<(Vec<u8>, usize)>),
    /// A panic listed in `ESURIO_FUZZ_IGNORE_PANICS` (a known, reported bug) was swallowed.
    IgnoredPanic,
}

impl Outcome {
    pub fn reason(&self) -> &'static str {
        match self {
            Outcome::Decode(r) | Outcome::Record { reason: r, .. } => r,
            Outcome::Rows(_) => "ok",
            Outcome::IgnoredPanic => "ignored_known_panic",
        }
    }
}

/// A quarantine reason must be a non-empty ASCII snake_case word.
pub fn assert_snake_case(r: &str) {
    let ok = !r.is_empty()
        && r.as_bytes()[0].is_ascii_lowercase()
        && !r.ends_with('_')
        && !r.contains("__")
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    assert!(ok, "reason code {r:?} is not non-empty ASCII snake_case");
}

fn check_decode_error(e: &DecodeError) -> &'static str {
    let r = e.reason();
    assert_snake_case(r);
    assert!(!e.to_string().is_empty(), "{r}: empty message");
    let _ = e.is_retriable();
    r
}

fn check_record_error(e: &RecordError) -> (&'static str, Option<&'static str>) {
    let r = e.reason();
    assert_snake_case(r);
    assert!(!e.to_string().is_empty(), "{r}: empty message");
    assert!(!e.is_retriable(), "{r}: a record error is never retriable");
    let stage = e.stage();
    assert!(
        matches!(stage, "decode" | "validate"),
        "{r}: unknown stage {stage:?}"
    );
    match e {
        RecordError::Json { .. } => {
            assert_eq!(stage, "decode", "{r}: broken JSON is a decode failure");
            assert!(matches!(r, "truncated_json" | "invalid_json"), "{r}");
            (r, None)
        }
        RecordError::Shape { family, .. } => {
            assert!(!family.is_empty());
            assert_eq!(r, "schema_mismatch");
            (r, None)
        }
        RecordError::Invalid(v) => {
            assert!(
                Reason::ALL.contains(&v.reason),
                "{:?} is missing from Reason::ALL",
                v.reason
            );
            assert!(
                !v.field.is_empty(),
                "{r}: a validation error names no field"
            );
            assert!(!v.message.is_empty(), "{r}: empty message");
            assert!(!v.is_retriable());
            (r, Some(v.field))
        }
    }
}

/// Decodes `bytes` with `decoder` for family `f`, processes the payload, and asserts the properties
/// in the module docs. `inspect` sees every payload that decoded.
pub fn run_with(
    f: usize,
    decoder: &Decoder,
    bytes: &[u8],
    keep_rows: bool,
    inspect: impl FnOnce(&Payload<'_>),
) -> Outcome {
    let spec: &FamilySpec = &FAMILIES[f];
    if trace() {
        eprintln!(
            "esurio-fuzz: {} <- {}",
            spec.name,
            String::from_utf8_lossy(bytes).escape_debug()
        );
    }
    if ignoring_known_panics() {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            checked(spec, f, decoder, bytes, keep_rows, inspect)
        }));
        return r.unwrap_or(Outcome::IgnoredPanic);
    }
    checked(spec, f, decoder, bytes, keep_rows, inspect)
}

fn checked(
    spec: &'static FamilySpec,
    _f: usize,
    decoder: &Decoder,
    bytes: &[u8],
    keep_rows: bool,
    inspect: impl FnOnce(&Payload<'_>),
) -> Outcome {
    let base = mem::start();
    let outcome = 'run: {
        let payload = match decoder.decode(bytes) {
            Ok(p) => p,
            Err(e) => break 'run Outcome::Decode(check_decode_error(&e)),
        };
        inspect(&payload);
        let json_text = match &payload {
            Payload::Json(b) => Some(*b),
            Payload::Avro(_) => None,
        };
        let ctx = ctx();
        let lineage = Lineage {
            topic: "esurio.fuzz",
            partition: 3,
            offset: 1_000_000_007,
        };
        let mut staged = StagedRows::new(spec.tables.len());
        let empty = staged.bytes();
        match (spec.process)(payload, &ctx, &lineage, &mut staged) {
            Ok(()) => {
                let rows = staged.buffers[0].rows();
                assert_eq!(
                    rows, 1,
                    "{}: a record that processed Ok staged {rows} rows in table 0",
                    spec.name
                );
                if spec.tables[0].partitioned {
                    assert_eq!(
                        staged.days.len(),
                        1,
                        "{}: a row for a day-partitioned table must note its day",
                        spec.name
                    );
                }
                if let Some(text) = json_text {
                    let first = text.iter().find(|b| !b.is_ascii_whitespace());
                    if first != Some(&b'{') {
                        fail(format!(
                            "{}: a JSON record that is not an object was accepted: {}",
                            spec.name,
                            String::from_utf8_lossy(text)
                        ));
                    }
                }
                if keep_rows {
                    staged.seal();
                    Outcome::Rows(staged.sealed().map(|(b, n)| (b.to_vec(), n)).collect())
                } else {
                    Outcome::Rows(Vec::new())
                }
            }
            Err(e) => {
                let (reason, field) = check_record_error(&e);
                for (i, b) in staged.buffers.iter().enumerate() {
                    assert_eq!(
                        b.rows(),
                        0,
                        "{}: the rejected record ({reason}) left rows in table {i}",
                        spec.name
                    );
                }
                assert_eq!(
                    staged.bytes(),
                    empty,
                    "{}: the rejected record ({reason}) left bytes behind",
                    spec.name
                );
                assert!(staged.days.is_empty());
                if let (Some(text), "invalid_text", Some("parameters")) = (json_text, reason, field)
                {
                    check_parameters_nul(spec.name, text);
                }
                Outcome::Record { reason, field }
            }
        }
    };
    let grown = mem::grown_since(base);
    assert!(
        grown <= MEM_BUDGET,
        "{}: one record of {} bytes ({}) grew the heap by {grown} bytes (budget {MEM_BUDGET})",
        spec.name,
        bytes.len(),
        outcome.reason()
    );
    report_peak(spec.name, bytes.len(), grown, &outcome);
    if trace() {
        eprintln!(
            "esurio-fuzz: {} -> {} {:?}",
            spec.name,
            outcome.reason(),
            outcome_field(&outcome)
        );
    }
    outcome
}

/// `ESURIO_FUZZ_TRACE=1` prints every outcome (family, reason, field): for reading what a corpus or
/// a crash input does.
fn trace() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("ESURIO_FUZZ_TRACE").is_some())
}

fn outcome_field(o: &Outcome) -> Option<&'static str> {
    match o {
        Outcome::Record { field, .. } => *field,
        _ => None,
    }
}

/// A strategy rejected for U+0000 in its parameters must have one (in a string or a key).
fn check_parameters_nul(family: &str, text: &[u8]) {
    fn has_nul(v: &Json) -> bool {
        match v {
            Json::String(s) => s.contains('\0'),
            Json::Array(a) => a.iter().any(has_nul),
            Json::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }
    let Ok(Json::Object(rec)) = serde_json::from_slice::<Json>(text) else {
        return;
    };
    let params = match rec.get("parameters") {
        Some(Json::String(s)) => match serde_json::from_str::<Json>(s) {
            Ok(v) => v,
            Err(_) => return,
        },
        Some(v) => v.clone(),
        None => return,
    };
    if !has_nul(&params) {
        fail(format!(
            "{family}: parameters rejected for U+0000 but contain none (jsonb can store them): {params}"
        ));
    }
}

/// With `ESURIO_FUZZ_MEM_REPORT` set, prints every new record for heap growth per input.
fn report_peak(family: &str, len: usize, grown: usize, outcome: &Outcome) {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    static ON: OnceLock<bool> = OnceLock::new();
    static MAX: AtomicUsize = AtomicUsize::new(0);
    if *ON.get_or_init(|| std::env::var_os("ESURIO_FUZZ_MEM_REPORT").is_some())
        && grown > MAX.fetch_max(grown, Relaxed)
    {
        eprintln!(
            "esurio-fuzz: new peak heap growth {grown} bytes: {family}, {len}-byte input, {}",
            outcome.reason()
        );
    }
}

/// `ESURIO_FUZZ_IGNORE_PANICS="msg1;msg2"`: failures whose message contains one of these are known
/// (already reported) bugs: [`run_with`] swallows such panics and returns [`Outcome::IgnoredPanic`],
/// and [`fail`] returns instead of panicking, so that a long run can look for other bugs. Any other
/// panic still aborts as usual.
fn known_failures() -> &'static [String] {
    static KNOWN: OnceLock<Vec<String>> = OnceLock::new();
    KNOWN.get_or_init(|| {
        std::env::var("ESURIO_FUZZ_IGNORE_PANICS")
            .unwrap_or_default()
            .split(';')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

fn is_known(msg: &str) -> bool {
    known_failures().iter().any(|k| msg.contains(k.as_str()))
}

/// Panics with `msg` unless it is a known failure (see [`known_failures`]).
pub fn fail(msg: String) {
    if !is_known(&msg) {
        panic!("{msg}");
    }
}

fn ignoring_known_panics() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        if known_failures().is_empty() {
            return false;
        }
        // libfuzzer-sys's hook aborts on any panic; keep it for every panic but the known ones.
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            if !is_known(&msg) {
                previous(info);
            }
        }));
        true
    })
}

/// [`run_with`] without an inspector.
pub fn run(f: usize, decoder: &Decoder, bytes: &[u8], keep_rows: bool) -> Outcome {
    run_with(f, decoder, bytes, keep_rows, |_| {})
}

// ---------------------------------------------------------------------------------------------
// Valid records, and JSON -> Avro.

/// A valid record of family `name`, as a JSON object whose timestamps are epoch milliseconds (so
/// that it converts to Avro exactly: see [`json_to_avro`]).
pub fn template(name: &str) -> Json {
    let ts = TS_MS;
    match name {
        "market_data" => json!({"symbol": "AAPL", "exchange": "XNAS", "ts": ts, "price": 189.5,
            "volume": 100.0, "bid": 189.4, "ask": 189.6, "currency": "USD"}),
        "crypto_data" => json!({"symbol": "BTC", "exchange": "BINANCE", "ts": ts,
            "price": 42000.5, "volume": 1.5, "market_cap": 8.2e11, "quote_currency": "USDT"}),
        "order_book" => json!({"symbol": "AAPL", "exchange": "XNAS", "ts": ts,
            "bids": [{"price": 10.0, "size": 1.0}, {"price": 9.5, "size": 2.0}],
            "asks": [{"price": 11.0, "size": 3.0}, {"price": 10.5, "size": 1.0}]}),
        "news_article" => json!({"url": "https://News.example.com/a/b?c=1#frag",
            "title": " Apple beats ", "body": "Body text.\nSecond line.", "source": "Example News",
            "author": "A. Writer", "published_at": ts, "language": "EN",
            "entities": [{"name": "Apple", "entity_type": "Organization", "symbol": "aapl",
                          "salience": 0.9, "sentiment": 0.25},
                         {"name": "Tim Cook", "entity_type": "person"}]}),
        "social_post" => json!({"platform": "Twitter", "post_id": "1234567890",
            "author": "@someone", "text": "$AAPL to the moon", "url": "https://x.com/s/1",
            "posted_at": ts, "likes": 3, "shares": 0, "language": "en",
            "entities": [{"name": "AAPL", "entity_type": "ticker", "symbol": "AAPL"}]}),
        "economic_indicator" => json!({"indicator": "CPI_YOY", "country": "us",
            "frequency": "Monthly", "period_start": 20393, "value": 2.7, "unit": "percent",
            "released_at": ts, "source": "BLS"}),
        "supply_chain_metric" => json!({"metric": "freight_rate", "location": "Shanghai",
            "observed_at": ts, "value": 1234.5, "unit": "USD/FEU", "source": "Drewry"}),
        "earnings_event" => json!({"symbol": "AAPL", "fiscal_year": 2025, "fiscal_quarter": 4,
            "reported_at": ts, "eps_estimate": 2.1, "eps_actual": 2.2,
            "revenue_estimate": 1.2e11, "revenue_actual": 1.25e11, "currency": "usd"}),
        "sec_filing" => json!({"accession_number": "0000320193-25-000079", "cik": "320193",
            "company_name": "Apple Inc.", "form_type": "10-k", "filed_at": ts,
            "url": "https://www.sec.gov/Archives/edgar/data/320193/x.htm", "symbol": "AAPL"}),
        "feature" => json!({"entity": "AAPL", "name": "Momentum_20d", "ts": ts, "value": -0.42,
            "model_version": "v1.2.3"}),
        "insight" => json!({"insight_id": "ins-1", "symbol": "AAPL", "kind": "Anomaly",
            "title": "Volume spike", "body": "Three sigma.", "confidence": 0.8,
            "generated_at": ts, "model": "m1"}),
        "strategy" => json!({"strategy_id": "s-1", "version": 1, "name": "Mean reversion",
            "description": "Buys dips.", "parameters": "{\"lookback\": 20, \"z\": [1.5, 2]}",
            "created_at": ts}),
        "signal" => json!({"strategy_id": "s-1", "strategy_version": 1, "symbol": "AAPL",
            "ts": ts, "direction": "LONG", "strength": 0.7, "confidence": 0.6,
            "horizon_seconds": 3600}),
        other => panic!("no template for family {other}"),
    }
}

/// Named types of a schema (`Level`, `NewsEntity`, ...), for resolving references.
fn names(s: &Schema, out: &mut HashMap<String, Schema>) {
    match s {
        Schema::Record(r) => {
            out.insert(r.name.name.clone(), s.clone());
            for f in &r.fields {
                names(&f.schema, out);
            }
        }
        Schema::Array(a) => names(&a.items, out),
        Schema::Union(u) => u.variants().iter().for_each(|v| names(v, out)),
        _ => {}
    }
}

/// The Avro value an Avro producer would send for the JSON record `j` (timestamps in JSON are
/// epoch milliseconds, Avro's are microseconds), or `None` when `j` has no exact Avro equivalent
/// under `schema` (a string timestamp, a null required field, an integer that does not fit, ...).
pub fn json_to_avro(j: &Json, schema: &Schema) -> Option<Avro> {
    let mut n = HashMap::new();
    names(schema, &mut n);
    conv(j, schema, &n)
}

fn conv(j: &Json, s: &Schema, n: &HashMap<String, Schema>) -> Option<Avro> {
    Some(match s {
        Schema::Null => j.is_null().then_some(Avro::Null)?,
        Schema::Boolean => Avro::Boolean(j.as_bool()?),
        Schema::String => Avro::String(j.as_str()?.to_owned()),
        Schema::Int => Avro::Int(i32::try_from(j.as_i64()?).ok()?),
        Schema::Long => Avro::Long(j.as_i64()?),
        Schema::Double => Avro::Double(j.as_f64()?),
        Schema::Date => Avro::Date(i32::try_from(j.as_i64()?).ok()?),
        Schema::TimestampMicros => Avro::TimestampMicros(j.as_i64()?.checked_mul(1000)?),
        Schema::Union(u) => u
            .variants()
            .iter()
            .enumerate()
            .find_map(|(i, v)| Some(Avro::Union(i as u32, Box::new(conv(j, v, n)?))))?,
        Schema::Array(a) => Avro::Array(
            j.as_array()?
                .iter()
                .map(|x| conv(x, &a.items, n))
                .collect::<Option<_>>()?,
        ),
        Schema::Record(r) => {
            let obj = j.as_object()?;
            let mut fields = Vec::with_capacity(r.fields.len());
            for f in &r.fields {
                let v = match obj.get(&f.name) {
                    Some(v) => conv(v, &f.schema, n)?,
                    None => conv(f.default.as_ref()?, &f.schema, n)?,
                };
                fields.push((f.name.clone(), v));
            }
            Avro::Record(fields)
        }
        Schema::Ref { name } => conv(j, n.get(&name.name)?, n)?,
        _ => return None,
    })
}

/// The Avro body (no header) of the JSON record `j` for family `f`, if it has one.
pub fn avro_body(f: usize, j: &Json) -> Option<Vec<u8>> {
    let schema = auto_decoders()[f].schema();
    let v = json_to_avro(j, schema)?;
    apache_avro::to_avro_datum(schema, v).ok()
}

// ---------------------------------------------------------------------------------------------
// Seeds.

/// With `ESURIO_FUZZ_SEEDS_OUT=<dir>`, writes the seed corpus of every target under `<dir>/<target>/`
/// (once per process). See docs/FUZZING.md.
fn maybe_write_seeds() {
    static ONCE: OnceLock<()> = OnceLock::new();
    let Some(dir) = std::env::var_os("ESURIO_FUZZ_SEEDS_OUT") else {
        return;
    };
    ONCE.get_or_init(|| {
        let dir = std::path::PathBuf::from(dir);
        let put = |target: &str, name: &str, bytes: &[u8]| {
            let d = dir.join(target);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(name), bytes).unwrap();
        };
        // Decoders are built lazily; build a local set so this works from any target.
        let decs = build(Format::Auto);
        for (i, spec) in FAMILIES.iter().enumerate() {
            let t = template(spec.name);
            let text = serde_json::to_vec(&t).unwrap();
            let body = {
                let schema = decs[i].schema();
                apache_avro::to_avro_datum(schema, json_to_avro(&t, schema).unwrap()).unwrap()
            };
            let mut so = vec![0xC3, 0x01];
            so.extend_from_slice(&decode::fingerprint(decs[i].schema()));
            so.extend_from_slice(&body);
            let tag = [i as u8];
            put(
                "decode_any",
                &format!("{}.json", spec.name),
                &[&tag[..], &text].concat(),
            );
            put(
                "decode_any",
                &format!("{}.avro", spec.name),
                &[&tag[..], &so].concat(),
            );
            put("avro_single_object", spec.name, &[&tag[..], &body].concat());
            put("json_record", spec.name, &[&tag[..], &text].concat());
            // validators: the family byte, then "one edit": a field index and a value choice.
            put("validators", spec.name, &[i as u8, 0, 0, 0, 0]);
        }
        put(
            "decode_any",
            "registry_frame",
            b"\x00\x00\x00\x00\x00\x01\x02",
        );
        put("decode_any", "ws_json", b"\x00 \n{\"symbol\": \" aapl \"}");
        put(
            "json_record",
            "nested",
            b"\x03{\"entities\":[[[[{}]]]],\"body\":\"\\u0000\"}",
        );
    });
}
