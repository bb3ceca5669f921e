//! The simulator's records run through the worker's real decoder and validator: every valid record
//! stages exactly the rows it promises, every invalid record fails with exactly its reason, and every
//! reason the simulator claims for a family and format occurs.

use super::*;
use crate::decode::{Decoder, Format, Registry};
use crate::records::{
    CryptoData, EarningsEvent, EconomicIndicator, Family, Feature, Insight, MarketData,
    NewsArticle, OrderBook, SecFiling, Signal, SocialPost, Strategy, SupplyChainMetric, TimeUnit,
    FAMILIES,
};
use crate::records::{Ctx, Reason};
use crate::sink::copy::{Lineage, StagedRows};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;

fn opts(seed: u64, format: SimFormat, ratio: f64) -> GenOptions {
    let mut o = GenOptions::new(seed, default_base_time(Utc::now()));
    o.format = format;
    o.invalid_ratio = ratio;
    o
}

/// A minimal Confluent-compatible registry: `POST /subjects/{subject}/versions` registers (the same
/// schema text gets the same id), `GET /schemas/ids/{id}` answers it or 404.
fn fake_registry() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut schemas: Vec<String> = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut length = 0usize;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0u8; length];
            if std::io::Read::read_exact(&mut reader, &mut body).is_err() {
                continue;
            }
            let mut parts = request_line.split_whitespace();
            let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let (status, answer) = if method == "POST" && path.starts_with("/subjects/") {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let schema = v["schema"].as_str().unwrap_or_default().to_owned();
                let id = match schemas.iter().position(|s| *s == schema) {
                    Some(k) => k + 1,
                    None => {
                        schemas.push(schema);
                        schemas.len()
                    }
                };
                ("200 OK", serde_json::json!({ "id": id }).to_string())
            } else {
                let id: Option<usize> = path
                    .strip_prefix("/schemas/ids/")
                    .and_then(|s| s.parse().ok());
                match id.and_then(|id| schemas.get(id.wrapping_sub(1))) {
                    Some(s) => ("200 OK", serde_json::json!({ "schema": s }).to_string()),
                    None => (
                        "404 Not Found",
                        r#"{"error_code":40403,"message":"Schema not found"}"#.to_owned(),
                    ),
                }
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    url
}

/// What the worker makes of one record: the rows per table, or the reason code.
fn worker_outcome(
    decoder: &Decoder,
    spec: &'static crate::records::FamilySpec,
    ctx: &Ctx,
    offset: i64,
    payload: Option<&[u8]>,
) -> Result<Vec<usize>, String> {
    let bytes = payload.unwrap_or(&[]);
    let payload = decoder.decode(bytes).map_err(|e| e.reason().to_owned())?;
    let lineage = Lineage {
        topic: "sim",
        partition: 0,
        offset,
        timestamp: None,
    };
    let mut out = StagedRows::new(spec.tables.len());
    (spec.process)(payload, ctx, &lineage, &mut out).map_err(|e| e.reason().to_owned())?;
    Ok(out.buffers.iter().map(|b| b.rows()).collect())
}

/// Runs `n` records of every family in `format` through the worker; returns the reasons seen.
fn check_format(format: SimFormat, n: usize) {
    check_format_seed(format, n, 42);
}

fn check_format_seed(format: SimFormat, n: usize, seed: u64) {
    let url = fake_registry();
    let settings = Settings::default();
    // Registration as `run` does it; registering the same schema again keeps its id.
    let all: Vec<&'static crate::records::FamilySpec> = FAMILIES.iter().collect();
    let ids = register_schemas(&settings, &url, &all).unwrap();
    assert_eq!(ids.len(), FAMILIES.len());
    let again = register_schemas(&settings, &url, &all[3..4]).unwrap();
    assert_eq!(again[all[3].name], ids[all[3].name]);
    for spec in FAMILIES {
        let mut o = opts(seed, format, 0.5);
        // Realism records must decode and validate like any other valid record.
        o.realism = 0.3;
        let registry = if matches!(format, SimFormat::AvroRegistry | SimFormat::Mixed) {
            o.registry_ids.clone_from(&ids);
            Some(Arc::new(Registry::new(&url, Duration::from_secs(5))))
        } else {
            None
        };
        let decoder =
            Decoder::new(spec.avro_schema, Format::Auto, o.max_record_bytes, registry).unwrap();
        let ctx = Ctx::new(o.max_future, o.max_past).with_partition_max_past(o.partition_max_past);
        let gen = generate(spec, n, &o).unwrap();
        let applicable = gen.applicable();
        let mut seen: HashMap<WireFormat, BTreeSet<&'static str>> = HashMap::new();
        let (mut valid, mut invalid) = (0, 0);
        for r in gen {
            let got = worker_outcome(&decoder, spec, &ctx, r.index as i64, r.payload.as_deref());
            match &r.expect {
                Expect::Valid { rows } => {
                    valid += 1;
                    let want: Vec<usize> = spec
                        .tables
                        .iter()
                        .map(|t| {
                            rows.iter()
                                .find(|(name, _)| *name == t.name)
                                .map_or(0, |(_, n)| *n)
                        })
                        .collect();
                    assert_eq!(
                        got,
                        Ok(want),
                        "{} #{} ({:?}) should be valid: {}",
                        spec.name,
                        r.index,
                        r.format,
                        String::from_utf8_lossy(r.payload.as_deref().unwrap_or(&[]))
                    );
                    assert_eq!(rows.len(), spec.tables.len());
                }
                Expect::Invalid { reason } => {
                    invalid += 1;
                    assert_eq!(
                        got.as_ref().map_err(String::as_str),
                        Err(*reason),
                        "{} #{} ({:?}) should fail with {reason}: {}",
                        spec.name,
                        r.index,
                        r.format,
                        String::from_utf8_lossy(
                            &r.payload.as_deref().unwrap_or(&[])
                                [..r.payload.as_ref().map_or(0, |p| p.len().min(600))]
                        )
                    );
                    seen.entry(r.format).or_default().insert(reason);
                }
            }
        }
        assert_eq!(invalid, (n as f64 * 0.5).round() as usize, "{}", spec.name);
        assert_eq!(valid + invalid, n);
        for (f, reasons) in applicable {
            let got = seen.remove(&f).unwrap_or_default();
            let missing: Vec<_> = reasons.iter().filter(|r| !got.contains(*r)).collect();
            assert!(
                missing.is_empty(),
                "{} {f:?}: reasons never produced: {missing:?}",
                spec.name
            );
        }
    }
}

#[test]
fn json_records_agree_with_the_worker() {
    check_format(SimFormat::Json, 400);
}

#[test]
fn avro_single_object_records_agree_with_the_worker() {
    check_format(SimFormat::AvroSingleObject, 400);
}

#[test]
fn avro_registry_records_agree_with_the_worker() {
    check_format(SimFormat::AvroRegistry, 400);
}

#[test]
fn mixed_records_agree_with_the_worker() {
    check_format(SimFormat::Mixed, 900);
}

#[test]
fn registry_framing() {
    let spec = crate::records::family("market_data").unwrap();
    let mut o = opts(1, SimFormat::AvroRegistry, 0.0);
    o.registry_ids.insert(spec.name.into(), 0x0102_0304);
    for r in generate(spec, 50, &o).unwrap() {
        let p = r.payload.unwrap();
        assert_eq!(&p[..5], &[0, 1, 2, 3, 4]);
        let schema = apache_avro::Schema::parse_str(spec.avro_schema).unwrap();
        let mut body = &p[5..];
        apache_avro::from_avro_datum(&schema, &mut body, None).unwrap();
        assert!(body.is_empty());
    }
    // Without an id for the family the registry format is refused.
    assert!(generate(spec, 1, &opts(1, SimFormat::AvroRegistry, 0.0)).is_err());
}

#[test]
fn every_validation_reason_is_simulated_somewhere() {
    let mut all: HashSet<&str> = HashSet::new();
    for spec in FAMILIES {
        for f in [WireFormat::Json, WireFormat::AvroSingleObject] {
            all.extend(applicable_reasons(spec, f, &opts(42, SimFormat::Json, 0.1)).unwrap());
        }
    }
    for r in Reason::ALL {
        assert!(
            all.contains(r.as_str()),
            "no family simulates {}",
            r.as_str()
        );
    }
}

fn records(spec: &'static crate::records::FamilySpec, n: usize, o: &GenOptions) -> Vec<SimRecord> {
    generate(spec, n, o).unwrap().collect()
}

#[test]
fn same_seed_same_bytes() {
    let base = default_base_time(Utc::now());
    for format in [SimFormat::Json, SimFormat::AvroSingleObject] {
        for spec in FAMILIES {
            let mut o = opts(42, format, 0.3);
            o.base_time = base;
            o.realism = 0.4;
            let a = records(spec, 300, &o);
            let b = records(spec, 300, &o);
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(&b) {
                assert_eq!(x.payload, y.payload, "{} #{}", spec.name, x.index);
                assert_eq!(x.key, y.key);
                assert_eq!(x.timestamp, y.timestamp);
                assert_eq!(x.expect, y.expect);
                assert_eq!(x.spider, y.spider);
                assert_eq!(x.outcome, y.outcome);
                assert_eq!(x.effect, y.effect);
            }
            assert!(a.iter().any(|r| r.spider.is_some()), "{}", spec.name);
        }
    }
}

#[test]
fn valid_records_do_not_depend_on_the_invalid_ratio() {
    for spec in FAMILIES {
        let a = records(spec, 200, &opts(9, SimFormat::Json, 0.1));
        let b = records(spec, 200, &opts(9, SimFormat::Json, 0.6));
        let mut compared = 0;
        for (x, y) in a.iter().zip(&b) {
            if x.expect.is_valid() && y.expect.is_valid() {
                assert_eq!(x.payload, y.payload, "{} #{}", spec.name, x.index);
                compared += 1;
            }
        }
        assert!(compared > 50);
    }
}

#[test]
fn invalid_share_is_exact() {
    let spec = crate::records::family("signal").unwrap();
    for (n, ratio) in [
        (0, 0.5),
        (1, 0.4),
        (1, 0.6),
        (7, 0.1),
        (1000, 0.1),
        (999, 0.333),
        (50, 1.0),
        (50, 0.0),
    ] {
        let invalid = records(spec, n, &opts(3, SimFormat::Json, ratio))
            .iter()
            .filter(|r| !r.expect.is_valid())
            .count();
        assert_eq!(
            invalid,
            (n as f64 * ratio).round() as usize,
            "n={n} ratio={ratio}"
        );
    }
}

/// Natural keys of the valid records (JSON), via the families' own parse.
fn natural_keys(spec: &'static crate::records::FamilySpec, recs: &[SimRecord]) -> Vec<String> {
    fn keys<F: Family>(recs: &[SimRecord], key: impl Fn(&F) -> String) -> Vec<String> {
        let ctx = Ctx::new(
            Duration::from_secs(300),
            Duration::from_secs(20 * 365 * 86_400),
        )
        .with_int_time(TimeUnit::Millis);
        recs.iter()
            .filter(|r| r.expect.is_valid())
            .map(|r| {
                let w: F::Wire = serde_json::from_slice(r.payload.as_deref().unwrap()).unwrap();
                key(&F::parse(w, &ctx).unwrap())
            })
            .collect()
    }
    match spec.name {
        "market_data" => {
            keys::<MarketData>(recs, |x| format!("{:?}", (&x.exchange, &x.symbol, x.ts)))
        }
        "crypto_data" => {
            keys::<CryptoData>(recs, |x| format!("{:?}", (&x.exchange, &x.symbol, x.ts)))
        }
        "order_book" => {
            keys::<OrderBook>(recs, |x| format!("{:?}", (&x.exchange, &x.symbol, x.ts)))
        }
        "news_article" => keys::<NewsArticle>(recs, |x| x.article_id.to_string()),
        "social_post" => keys::<SocialPost>(recs, |x| {
            format!("{:?}", (x.post_uid, x.platform, &x.post_id))
        }),
        "economic_indicator" => keys::<EconomicIndicator>(recs, |x| {
            format!(
                "{:?}",
                (
                    &x.source,
                    &x.indicator,
                    &x.country,
                    x.frequency,
                    x.period_start
                )
            )
        }),
        "supply_chain_metric" => keys::<SupplyChainMetric>(recs, |x| {
            format!("{:?}", (&x.source, x.metric, &x.location, x.observed_at))
        }),
        "earnings_event" => keys::<EarningsEvent>(recs, |x| {
            format!("{:?}", (&x.symbol, x.fiscal_year, x.fiscal_quarter))
        }),
        "sec_filing" => keys::<SecFiling>(recs, |x| x.accession_number.clone()),
        "feature" => keys::<Feature>(recs, |x| {
            format!("{:?}", (&x.entity, &x.name, x.ts, &x.model_version))
        }),
        "insight" => keys::<Insight>(recs, |x| x.insight_id.clone()),
        "strategy" => keys::<Strategy>(recs, |x| format!("{:?}", (&x.strategy_id, x.version))),
        "signal" => keys::<Signal>(recs, |x| {
            format!(
                "{:?}",
                (&x.strategy_id, x.strategy_version, &x.symbol, x.ts)
            )
        }),
        other => panic!("no key for {other}"),
    }
}

#[test]
fn natural_keys_are_unique_and_disjoint_across_seeds() {
    let base = default_base_time(Utc::now());
    for spec in FAMILIES {
        let mut per_seed: Vec<HashSet<String>> = Vec::new();
        for seed in [42, 43, 1042 + 7, u64::MAX] {
            let mut o = opts(seed, SimFormat::Json, 0.1);
            o.base_time = base;
            let keys = natural_keys(spec, &records(spec, 3000, &o));
            let set: HashSet<String> = keys.iter().cloned().collect();
            assert_eq!(
                set.len(),
                keys.len(),
                "{} seed {seed}: duplicate natural keys",
                spec.name
            );
            for (k, other) in per_seed.iter().enumerate() {
                assert!(
                    set.is_disjoint(other),
                    "{}: seed {seed} collides with run {k}",
                    spec.name
                );
            }
            per_seed.push(set);
        }
        // Same seed and base time: the same keys.
        let mut o = opts(42, SimFormat::Json, 0.1);
        o.base_time = base;
        let again: HashSet<String> = natural_keys(spec, &records(spec, 3000, &o))
            .into_iter()
            .collect();
        assert_eq!(again, per_seed[0], "{}", spec.name);
    }
}

#[test]
fn news_entities_are_distinct_and_counted() {
    let spec = crate::records::family("news_article").unwrap();
    let mut sizes = HashSet::new();
    for r in records(spec, 500, &opts(5, SimFormat::Json, 0.0)) {
        let Expect::Valid { rows } = &r.expect else {
            unreachable!()
        };
        let v: serde_json::Value = serde_json::from_slice(r.payload.as_deref().unwrap()).unwrap();
        let ents = v["entities"].as_array().unwrap();
        assert_eq!(rows[1], ("news_entity", ents.len()));
        assert!(ents.len() <= 6);
        sizes.insert(ents.len());
    }
    assert_eq!(sizes.len(), 7, "0..=6 entities per article: {sizes:?}");
}

#[test]
fn market_ticks_are_sane() {
    let spec = crate::records::family("market_data").unwrap();
    for r in records(spec, 2000, &opts(11, SimFormat::Json, 0.0)) {
        let v: serde_json::Value = serde_json::from_slice(r.payload.as_deref().unwrap()).unwrap();
        let p = v["price"].as_f64().unwrap();
        if let Some(b) = v["bid"].as_f64() {
            assert!(b <= p && b > 0.0, "{v}");
        }
        if let Some(a) = v["ask"].as_f64() {
            assert!(a >= p, "{v}");
        }
    }
}

#[test]
fn too_large_records_stay_rare() {
    let spec = crate::records::family("insight").unwrap();
    let n = 20_000;
    let recs = records(spec, n, &opts(8, SimFormat::Json, 0.5));
    let large = recs
        .iter()
        .filter(|r| {
            r.expect
                == Expect::Invalid {
                    reason: "too_large",
                }
        })
        .count();
    let per_round = applicable_reasons(spec, WireFormat::Json, &opts(8, SimFormat::Json, 0.5))
        .unwrap()
        .len();
    let rounds = n / 2 / per_round;
    assert!(
        large >= 1 && large <= rounds / TOO_LARGE_EVERY as usize + 1,
        "{large}"
    );
}

#[derive(clap::Parser)]
struct Cli {
    #[command(flatten)]
    args: SimulateArgs,
}

#[test]
fn cli_defaults_and_dry_run_summary() {
    use clap::{CommandFactory, Parser};
    Cli::command().debug_assert();
    let cli = Cli::try_parse_from([
        "simulate",
        "--dry-run",
        "--records",
        "101",
        "--topics",
        "news_article,market_data",
    ])
    .unwrap();
    assert_eq!(cli.args.seed, 42);
    assert_eq!(cli.args.format, SimFormat::Json);
    assert!((cli.args.invalid_ratio - 0.1).abs() < 1e-12);
    assert!(Cli::try_parse_from(["simulate", "--invalid-ratio", "1.5"]).is_err());
    let settings = Settings::default();
    let s = dry_run(&settings, &cli.args).unwrap();
    let text = serde_json::to_string(&s).unwrap();
    let back: Summary = serde_json::from_str(&text).unwrap();
    assert_eq!(back, s);
    assert_eq!(s.topics.len(), 2);
    let news = &s.topics["news_article"];
    assert_eq!(news.produced, 101);
    assert_eq!(news.invalid, 10);
    assert_eq!(news.invalid_by_reason.values().sum::<u64>(), 10);
    assert_eq!(s.tables["news_article"], 91);
    assert_eq!(s.tables["market_data"], 91);
    assert!(s.tables.contains_key("news_entity"));
    assert_eq!(s.totals.produced, 202);
    // The entity rows are those of the valid articles.
    let spec = crate::records::family("news_article").unwrap();
    let mut o = opts(42, SimFormat::Json, 0.1);
    o.base_time = s.base_time;
    let entities: usize = records(spec, 101, &o)
        .iter()
        .filter_map(|r| match &r.expect {
            Expect::Valid { rows } => Some(rows[1].1),
            Expect::Invalid { .. } => None,
        })
        .sum();
    assert_eq!(s.tables["news_entity"], entities as u64);
}

#[test]
fn plan_refuses_what_the_worker_cannot_read() {
    let settings = Settings::default();
    let base = |extra: &[&str]| {
        use clap::Parser;
        let mut v = vec!["simulate", "--dry-run"];
        v.extend_from_slice(extra);
        Cli::try_parse_from(v).unwrap().args
    };
    assert!(dry_run(&settings, &base(&["--topics", "nope"])).is_err());
    assert!(dry_run(&settings, &base(&["--format", "avro-registry"])).is_err());
    assert!(dry_run(&settings, &base(&["--base-time", "1990-01-01T00:00:00Z"])).is_err());
    assert!(dry_run(&settings, &base(&["--base-time", "2999-01-01T00:00:00Z"])).is_err());
    let mut json_only = Settings::default();
    json_only.decode.format = Format::Json;
    assert!(dry_run(
        &json_only,
        &base(&["--format", "avro-single-object", "--records", "5"])
    )
    .is_err());
    assert!(dry_run(&json_only, &base(&["--records", "5"])).is_ok());
}

#[test]
fn fixed_worker_formats_change_the_first_byte_reason() {
    // A topic the worker reads as single-object only reports JSON text as a wrong magic byte.
    let spec = crate::records::family("feature").unwrap();
    let mut o = opts(4, SimFormat::AvroSingleObject, 0.5);
    o.worker_format = Format::AvroSingleObject;
    let decoder = Decoder::new(
        spec.avro_schema,
        Format::AvroSingleObject,
        o.max_record_bytes,
        None,
    )
    .unwrap();
    let ctx = Ctx::new(o.max_future, o.max_past).with_partition_max_past(o.partition_max_past);
    let mut seen = HashSet::new();
    for r in generate(spec, 400, &o).unwrap() {
        let got = worker_outcome(&decoder, spec, &ctx, 0, r.payload.as_deref());
        match r.expect {
            Expect::Valid { .. } => assert!(got.is_ok()),
            Expect::Invalid { reason } => {
                assert_eq!(got, Err(reason.to_owned()));
                seen.insert(reason);
            }
        }
    }
    assert!(seen.contains("wrong_magic_byte"));
    assert!(!seen.contains("unknown_format"));
}

/// Many seeds, more records: `cargo test --lib simulate -- --ignored`.
#[test]
#[ignore]
fn stress_many_seeds() {
    for seed in 0..12 {
        for format in [
            SimFormat::Json,
            SimFormat::AvroSingleObject,
            SimFormat::Mixed,
        ] {
            check_format_seed(format, 3000, seed * 7919 + 1);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Spider realism against a reference model of the database's semantics.

/// What the validator makes of a valid record: its natural key, its identity (every column as
/// normalized, entities as a set), the version time a record field carries, and its entities.
struct Typed {
    key: String,
    identity: String,
    field_vt: Option<i64>,
    entities: usize,
}

fn typed(decoder: &Decoder, spec: &'static crate::records::FamilySpec, r: &SimRecord) -> Typed {
    use crate::decode::Payload;
    fn parse<F: Family>(p: Payload<'_>) -> F {
        let ctx = Ctx::new(
            Duration::from_secs(300),
            Duration::from_secs(20 * 365 * 86_400),
        );
        match p {
            Payload::Json(b) => F::parse(
                serde_json::from_slice(b).unwrap(),
                &ctx.with_int_time(TimeUnit::Millis),
            )
            .unwrap(),
            Payload::Avro(v) => F::parse(
                crate::decode::avro_de::from_value(&v).unwrap(),
                &ctx.with_int_time(TimeUnit::Micros),
            )
            .unwrap(),
        }
    }
    fn plain<T: std::fmt::Debug>(key: String, x: &T, field_vt: Option<i64>) -> Typed {
        Typed {
            key,
            identity: format!("{x:?}"),
            field_vt,
            entities: 0,
        }
    }
    fn sorted<E: std::fmt::Debug>(e: &mut [E]) {
        e.sort_by_key(|x| format!("{x:?}"));
    }
    let p = decoder.decode(r.payload.as_deref().unwrap()).unwrap();
    match spec.name {
        "market_data" => {
            let x: MarketData = parse(p);
            plain(format!("{:?}", (&x.exchange, &x.symbol, x.ts)), &x, None)
        }
        "crypto_data" => {
            let x: CryptoData = parse(p);
            plain(format!("{:?}", (&x.exchange, &x.symbol, x.ts)), &x, None)
        }
        "order_book" => {
            let x: OrderBook = parse(p);
            plain(format!("{:?}", (&x.exchange, &x.symbol, x.ts)), &x, None)
        }
        "news_article" => {
            let mut x: NewsArticle = parse(p);
            sorted(&mut x.entities);
            Typed {
                entities: x.entities.len(),
                ..plain(x.article_id.to_string(), &x, None)
            }
        }
        "social_post" => {
            let mut x: SocialPost = parse(p);
            sorted(&mut x.entities);
            Typed {
                entities: x.entities.len(),
                ..plain(x.post_uid.to_string(), &x, None)
            }
        }
        "economic_indicator" => {
            let x: EconomicIndicator = parse(p);
            let key = format!(
                "{:?}",
                (
                    &x.source,
                    &x.indicator,
                    &x.country,
                    x.frequency,
                    x.period_start
                )
            );
            plain(key, &x, Some(x.released_at.timestamp_micros()))
        }
        "supply_chain_metric" => {
            let x: SupplyChainMetric = parse(p);
            let key = format!("{:?}", (&x.source, x.metric, &x.location, x.observed_at));
            plain(key, &x, None)
        }
        "earnings_event" => {
            let x: EarningsEvent = parse(p);
            let key = format!("{:?}", (&x.symbol, x.fiscal_year, x.fiscal_quarter));
            plain(key, &x, Some(x.reported_at.timestamp_micros()))
        }
        "sec_filing" => {
            let x: SecFiling = parse(p);
            plain(x.accession_number.clone(), &x, None)
        }
        "feature" => {
            let x: Feature = parse(p);
            let key = format!("{:?}", (&x.entity, &x.name, x.ts, &x.model_version));
            plain(key, &x, None)
        }
        "insight" => {
            let x: Insight = parse(p);
            plain(
                x.insight_id.clone(),
                &x,
                Some(x.generated_at.timestamp_micros()),
            )
        }
        "strategy" => {
            let x: Strategy = parse(p);
            let key = format!("{:?}", (&x.strategy_id, x.version));
            plain(key, &x, Some(x.created_at.timestamp_micros()))
        }
        "signal" => {
            let x: Signal = parse(p);
            let key = format!(
                "{:?}",
                (&x.strategy_id, x.strategy_version, &x.symbol, x.ts)
            );
            plain(key, &x, None)
        }
        other => panic!("no model for {other}"),
    }
}

/// The database's semantics applied to a topic's records in Kafka order, written from the policy
/// text and independent of the generator's bookkeeping.
#[derive(Debug, Default, PartialEq)]
struct Model {
    rows: BTreeMap<&'static str, i64>,
    history: BTreeMap<&'static str, u64>,
    duplicates: u64,
    revised: u64,
    superseded: u64,
    conflicting: u64,
    quarantined: u64,
}

struct KeyState {
    kafka_key: Option<Vec<u8>>,
    current: String,
    vt: i64,
    entities: usize,
    /// Every record of the key so far (rows, history and earlier records).
    seen: HashSet<String>,
}

fn model(
    decoder: &Decoder,
    spec: &'static crate::records::FamilySpec,
    recs: &[SimRecord],
) -> Model {
    let reject = matches!(spec.name, "market_data" | "crypto_data" | "order_book");
    let parent = spec.tables[0].name;
    let child = spec.tables.get(1).map(|t| t.name);
    let mut m = Model::default();
    for t in spec.tables {
        m.rows.insert(t.name, 0);
        if !reject {
            m.history.insert(t.name, 0);
        }
    }
    let mut keys: HashMap<String, KeyState> = HashMap::new();
    for r in recs {
        if !r.expect.is_valid() {
            m.quarantined += 1;
            continue;
        }
        let t = typed(decoder, spec, r);
        // Kafka timestamps are milliseconds.
        let vt = t.field_vt.unwrap_or(r.timestamp * 1000);
        let Some(k) = keys.get_mut(&t.key) else {
            *m.rows.get_mut(parent).unwrap() += 1;
            if let Some(c) = child {
                *m.rows.get_mut(c).unwrap() += t.entities as i64;
            }
            keys.insert(
                t.key,
                KeyState {
                    kafka_key: r.key.clone(),
                    current: t.identity.clone(),
                    vt,
                    entities: t.entities,
                    seen: [t.identity].into_iter().collect(),
                },
            );
            continue;
        };
        assert_eq!(
            k.kafka_key, r.key,
            "{} #{}: a key's records must share a partition",
            spec.name, r.index
        );
        if k.seen.contains(&t.identity) {
            m.duplicates += 1;
        } else if reject {
            m.conflicting += 1;
            m.quarantined += 1;
        } else if vt >= k.vt {
            // Newer (a tie goes to the later record of the partition).
            m.revised += 1;
            *m.history.get_mut(parent).unwrap() += 1;
            if let Some(c) = child {
                *m.history.get_mut(c).unwrap() += k.entities as u64;
                *m.rows.get_mut(c).unwrap() += t.entities as i64 - k.entities as i64;
            }
            k.current.clone_from(&t.identity);
            k.vt = vt;
            k.entities = t.entities;
        } else {
            m.superseded += 1;
            *m.history.get_mut(parent).unwrap() += 1;
            if let Some(c) = child {
                *m.history.get_mut(c).unwrap() += t.entities as u64;
            }
        }
        k.seen.insert(t.identity);
    }
    m
}

fn tally(spec: &'static crate::records::FamilySpec, recs: &[SimRecord]) -> (Model, Tally) {
    let mut t = Tally::default();
    for r in recs {
        t.add(r);
    }
    let reject = policy(spec.name) == Policy::Reject;
    let mut m = Model {
        duplicates: t.t.duplicates,
        revised: t.t.revised,
        superseded: t.t.superseded,
        conflicting: t.t.conflicting,
        quarantined: t.t.invalid,
        ..Model::default()
    };
    for table in spec.tables {
        m.rows
            .insert(table.name, t.rows.get(table.name).copied().unwrap_or(0));
        if !reject {
            m.history
                .insert(table.name, t.history.get(table.name).copied().unwrap_or(0));
        }
    }
    (m, t)
}

#[test]
fn realism_outcomes_follow_the_reference_model() {
    let base = default_base_time(Utc::now());
    for format in [SimFormat::Json, SimFormat::Mixed] {
        for spec in FAMILIES {
            let mut o = opts(17, format, 0.1);
            o.base_time = base;
            o.realism = 0.45;
            let n = 700;
            let recs = records(spec, n, &o);
            let decoder =
                Decoder::new(spec.avro_schema, Format::Auto, o.max_record_bytes, None).unwrap();
            let want = model(&decoder, spec, &recs);
            let (got, t) = tally(spec, &recs);
            assert_eq!(got, want, "{} {format:?}", spec.name);
            // Exact numbers: round(V * R) realism records, every kind of the family.
            let valid_slots = n - (n as f64 * 0.1).round() as usize;
            let realism = recs.iter().filter(|r| r.spider.is_some()).count();
            assert_eq!(
                realism,
                (valid_slots as f64 * 0.45).round() as usize,
                "{}",
                spec.name
            );
            for k in kinds(spec.name) {
                assert!(
                    t.t.spider.get(k.as_str()).copied().unwrap_or(0) >= 20,
                    "{} {format:?}: too few {}: {:?}",
                    spec.name,
                    k.as_str(),
                    t.t.spider
                );
            }
            // Each outcome the family can have occurs.
            assert!(want.duplicates > 0, "{}", spec.name);
            if policy(spec.name) == Policy::Reject {
                assert!(want.conflicting > 0 && want.revised + want.superseded == 0);
                assert_eq!(
                    t.t.invalid_by_reason.get(CONFLICTING_DUPLICATE).copied(),
                    Some(want.conflicting)
                );
            } else {
                assert!(want.revised > 0 && want.superseded > 0 && want.conflicting == 0);
            }
            // Re-crawls with the same entities in another order did reorder some.
            if matches!(spec.name, "news_article" | "social_post") {
                let reordered = recs
                    .iter()
                    .filter(|r| r.spider == Some(Spider::Reordered))
                    .filter(|r| {
                        recs.iter().any(|x| {
                            x.index < r.index
                                && x.expect.is_valid()
                                && x.format == r.format
                                && x.payload != r.payload
                                && typed(&decoder, spec, x).identity
                                    == typed(&decoder, spec, r).identity
                        })
                    })
                    .count();
                assert!(reordered > 0, "{}: no entity order changed", spec.name);
            }
            // Same-millisecond trades: distinct keys in one millisecond.
            if matches!(spec.name, "market_data" | "crypto_data") {
                let trades = t.t.spider["same_millisecond_trade"];
                assert_eq!(
                    want.rows[spec.name] as u64,
                    recs.iter()
                        .filter(|r| r.outcome == Outcome::Inserted)
                        .count() as u64
                );
                assert!(trades > 0);
            }
        }
    }
}

#[test]
fn realism_summary_states_history_and_final_rows() {
    use clap::Parser;
    let cli = Cli::try_parse_from([
        "simulate",
        "--dry-run",
        "--records",
        "400",
        "--realism",
        "0.3",
        "--topics",
        "news_article,market_data,economic_indicator",
    ])
    .unwrap();
    let s = dry_run(&Settings::default(), &cli.args).unwrap();
    assert!((s.realism - 0.3).abs() < 1e-12);
    let keys: Vec<&str> = s.history.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "economic_indicator_history",
            "news_article_history",
            "news_entity_history"
        ]
    );
    let news = &s.topics["news_article"];
    assert!(news.duplicates > 0 && news.revised > 0 && news.superseded > 0);
    // Revisions replace rows: fewer rows than valid records.
    assert_eq!(
        s.tables["news_article"] + news.duplicates + news.revised + news.superseded,
        news.valid
    );
    assert_eq!(
        s.history["news_article_history"],
        news.revised + news.superseded
    );
    let market = &s.topics["market_data"];
    assert_eq!(
        market.invalid_by_reason[CONFLICTING_DUPLICATE],
        market.conflicting
    );
    assert_eq!(
        s.tables["market_data"] + market.duplicates,
        market.valid,
        "valid = inserted + duplicates (conflicts are invalid)"
    );
    assert_eq!(
        s.totals.duplicates,
        s.topics.values().map(|t| t.duplicates).sum::<u64>()
    );
    // Without --realism nothing comes back: every valid record is a row.
    let plain = Cli::try_parse_from(["simulate", "--dry-run", "--records", "400"]).unwrap();
    let p = dry_run(&Settings::default(), &plain.args).unwrap();
    for t in p.topics.values() {
        assert_eq!(t.duplicates + t.revised + t.superseded + t.conflicting, 0);
    }
    assert!(p.history.values().all(|n| *n == 0));
    assert_eq!(p.history.len(), 12);
}

#[test]
fn results_name_only_the_symbols_and_strategies_the_run_stores() {
    let fam = |n: &str| crate::records::family(n).unwrap();
    let mut o = opts(5, SimFormat::Json, 0.2);
    o.realism = 0.3;
    let sources = [fam("market_data"), fam("crypto_data"), fam("strategy")];
    let refs = References::of_run(&sources, 200, &o).unwrap();
    assert!(!refs.symbols.is_empty() && !refs.strategies.is_empty());
    // Every strategy version it lists is a valid strategy record of the run.
    let stored: BTreeSet<(String, i32)> = records(fam("strategy"), 200, &o)
        .into_iter()
        .filter(|r| r.expect.is_valid())
        .map(|r| {
            let v: serde_json::Value =
                serde_json::from_slice(r.payload.as_deref().unwrap()).unwrap();
            (
                v["strategy_id"].as_str().unwrap().to_owned(),
                v["version"].as_i64().unwrap() as i32,
            )
        })
        .collect();
    assert_eq!(
        refs.strategies
            .iter()
            .map(|(id, v, _)| (id.clone(), *v))
            .collect::<BTreeSet<_>>(),
        stored
    );
    o.references = Some(Arc::new(refs.clone()));
    let symbols: BTreeSet<&str> = refs.symbols.iter().map(|s| s.0.as_str()).collect();
    for r in records(fam("signal"), 200, &o) {
        if !r.expect.is_valid() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_slice(r.payload.as_deref().unwrap()).unwrap();
        let key = (
            v["strategy_id"].as_str().unwrap().to_owned(),
            v["strategy_version"].as_i64().unwrap() as i32,
        );
        assert!(stored.contains(&key), "signal #{} names {key:?}", r.index);
        // ... one stored at an index up to its own (the topics are consumed side by side).
        let at = refs
            .strategies
            .iter()
            .find(|(id, v, _)| (id, *v) == (&key.0, key.1))
            .map(|s| s.2)
            .unwrap();
        assert!(
            at <= r.index.max(refs.strategies[0].2),
            "signal #{} names #{at}",
            r.index
        );
        let symbol = v["symbol"].as_str().unwrap().trim().to_ascii_uppercase();
        assert!(
            symbols.contains(symbol.as_str()),
            "signal #{} names {symbol}",
            r.index
        );
    }
    for r in records(fam("feature"), 200, &o) {
        if r.expect.is_valid() {
            let v: serde_json::Value =
                serde_json::from_slice(r.payload.as_deref().unwrap()).unwrap();
            let entity = v["entity"].as_str().unwrap().trim().to_ascii_uppercase();
            assert!(
                symbols.contains(entity.as_str()),
                "feature #{} names {entity}",
                r.index
            );
        }
    }
}
