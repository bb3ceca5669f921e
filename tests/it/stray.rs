//! Stray bytes and failing dependencies must not stop a topic: a registry-format record on a worker
//! without a registry is quarantined and its partition goes on; a registry outage holds back only
//! the partitions that need it, loses nothing and quarantines nothing, even across SIGTERM; a
//! registry that refuses our credentials stops the worker with a clear message; a partition writer
//! that dies stops the worker, and a restart writes everything exactly once.

use crate::helpers::{terminate, TestEnv};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(120);

/// A valid market tick as JSON.
fn tick(symbol: &str, i: usize) -> Vec<u8> {
    let ts = chrono::Utc::now() - chrono::Duration::seconds(120)
        + chrono::Duration::microseconds(i as i64);
    serde_json::to_vec(&json!({
        "symbol": symbol, "exchange": "XSTR", "ts": ts.to_rfc3339(), "price": 10.0 + i as f64,
        "volume": 1, "currency": "USD"
    }))
    .unwrap()
}

/// Registers the market_data schema with the test's registry stub; returns its id.
fn register(env: &TestEnv) -> u32 {
    let url = env.registry.as_ref().unwrap().url();
    let schema = esurio::records::family("market_data").unwrap().avro_schema;
    ureq::post(&format!(
        "{url}/subjects/{}-value/versions",
        env.topic("market_data")
    ))
    .send_json(json!({ "schema": schema }))
    .unwrap()
    .body_mut()
    .read_json::<Value>()
    .unwrap()["id"]
        .as_u64()
        .unwrap() as u32
}

/// A valid market tick in the schema-registry wire format (`00`, schema id, Avro body).
fn registry_tick(id: u32, symbol: &str, i: usize) -> Vec<u8> {
    use apache_avro::types::{Record, Value as Avro};
    let schema =
        apache_avro::Schema::parse_str(esurio::records::family("market_data").unwrap().avro_schema)
            .unwrap();
    let ts = chrono::Utc::now() - chrono::Duration::seconds(120)
        + chrono::Duration::microseconds(i as i64);
    let mut r = Record::new(&schema).unwrap();
    r.put("symbol", symbol);
    r.put("exchange", "XSTR");
    r.put("ts", Avro::TimestampMicros(ts.timestamp_micros()));
    r.put("price", 20.0 + i as f64);
    r.put("volume", 3.0f64);
    r.put("bid", Avro::Union(0, Box::new(Avro::Null)));
    r.put("ask", Avro::Union(0, Box::new(Avro::Null)));
    r.put("currency", "USD");
    let mut out = vec![0u8];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&apache_avro::to_avro_datum(&schema, r).unwrap());
    out
}

/// Creates a family's topic with `partitions` partitions and `records` valid JSON records in it.
fn create_topic(env: &TestEnv, family: &str, partitions: u32, records: u32, seed: u32) -> i64 {
    let summary = env.simulate(&[
        "--topics",
        family,
        "--records",
        &records.to_string(),
        "--invalid-ratio",
        "0",
        "--format",
        "json",
        "--partitions",
        &partitions.to_string(),
        "--seed",
        &seed.to_string(),
    ]);
    summary["topics"][family]["produced"].as_i64().unwrap()
}

/// A worker started by a test: killed if the test fails before stopping it.
struct Worker(Option<std::process::Child>, std::path::PathBuf);

impl Worker {
    fn start(env: &TestEnv, extra_env: &[(&str, &str)]) -> Self {
        let (child, log) = env.spawn_logged(&["run"], extra_env);
        Worker(Some(child), log)
    }

    /// SIGTERM; returns the exit status and the log.
    fn term(mut self) -> (std::process::ExitStatus, String) {
        let out = terminate(self.0.take().unwrap(), LIMIT);
        let log = std::fs::read_to_string(&self.1).unwrap_or_default();
        (out.status, log)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(&self.1);
    }
}

fn high_watermark(env: &TestEnv, family: &str, partition: i32) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &env.brokers)
        .create()
        .unwrap();
    c.fetch_watermarks(&env.topic(family), partition, Duration::from_secs(10))
        .unwrap()
        .1
}

async fn wait_until<F, Fut>(what: &str, limit: Duration, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The log without terminal colour codes (the text format colours its fields).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn rows(tables: &[(&str, i64)]) -> Value {
    Value::Object(
        tables
            .iter()
            .map(|(t, n)| (t.to_string(), json!(n)))
            .collect(),
    )
}

fn produced(families: &[(&str, i64)]) -> BTreeMap<String, i64> {
    families.iter().map(|(f, n)| (f.to_string(), *n)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_record_without_a_registry_is_quarantined_and_its_partition_goes_on() {
    let env = TestEnv::new("noreg", false).await;
    let sim = create_topic(&env, "market_data", 1, 20, 1);
    let mut payloads = vec![b"\x00\x00\x00\x00\x07\x02ab".to_vec()];
    payloads.extend((0..30).map(|i| tick("AFTER", i)));
    env.produce("market_data", 0, &payloads);

    let (status, log) = env.run_logged(
        &["run", "--exit-when-idle", "3s"],
        &[("ESURIO__KAFKA__TOPICS", "market_data")],
        LIMIT,
    );
    assert!(status.success(), "{status}: {log}");
    let q = env
        .db()
        .await
        .query(
            "SELECT source_partition, source_offset, stage, reason FROM quarantine",
            &[],
        )
        .await
        .unwrap();
    let q: Vec<(i32, i64, String, String)> = q
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        q,
        vec![(0, sim, "decode".into(), "no_registry_configured".into())]
    );
    assert_eq!(
        env.count("SELECT count(*) FROM market_data WHERE symbol = 'AFTER'")
            .await,
        30,
        "the records after the stray one are written"
    );
    env.assert_exact(
        &rows(&[("market_data", sim + 30)]),
        1,
        &produced(&[("market_data", sim + 31)]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_outage_holds_back_only_what_needs_it_and_loses_nothing() {
    let env = TestEnv::new("outage", true).await;
    let sim_market = create_topic(&env, "market_data", 2, 40, 2);
    let sim_crypto = create_topic(&env, "crypto_data", 2, 100, 3);
    let id = register(&env);
    let stub = env.registry.as_ref().unwrap();
    stub.fail_with(503, None);
    // Partition 0: JSON, then registry records (the worker has no schema cached), then JSON again.
    let p0_sim = high_watermark(&env, "market_data", 0);
    let mut p0: Vec<Vec<u8>> = (0..10).map(|i| tick("P0A", i)).collect();
    p0.extend((0..30).map(|i| registry_tick(id, "P0REG", i)));
    p0.extend((0..10).map(|i| tick("P0B", i)));
    env.produce("market_data", 0, &p0);

    let worker = Worker::start(
        &env,
        &[
            ("ESURIO__KAFKA__TOPICS", "market_data,crypto_data"),
            (
                "ESURIO__DECODE__SCHEMA_REGISTRY_RETRY_INITIAL_BACKOFF",
                "100ms",
            ),
            ("ESURIO__DECODE__SCHEMA_REGISTRY_RETRY_MAX_BACKOFF", "1s"),
        ],
    );
    // Meanwhile, the other partition and the other topic keep flowing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    env.produce(
        "market_data",
        1,
        &(0..50).map(|i| tick("P1", i)).collect::<Vec<_>>(),
    );
    let more_crypto = {
        let s = env.simulate(&[
            "--topics",
            "crypto_data",
            "--records",
            "100",
            "--invalid-ratio",
            "0",
            "--format",
            "json",
            "--seed",
            "4",
        ]);
        s["topics"]["crypto_data"]["produced"].as_i64().unwrap()
    };
    wait_until(
        "partition 1 and crypto_data are written during the outage",
        LIMIT,
        || async {
            env.count("SELECT count(*) FROM market_data WHERE symbol = 'P1'")
                .await
                == 50
                && env.count("SELECT count(*) FROM crypto_data").await == sim_crypto + more_crypto
        },
    )
    .await;
    // Partition 0 is written up to the first record that needs the registry, and held there.
    wait_until(
        "partition 0 is written up to the registry records",
        LIMIT,
        || async { env.stored_offset("market_data", 0).await == p0_sim + 10 },
    )
    .await;
    assert_eq!(
        env.count("SELECT count(*) FROM market_data WHERE symbol IN ('P0REG', 'P0B')")
            .await,
        0
    );
    assert_eq!(env.count("SELECT count(*) FROM quarantine").await, 0);
    let failed = stub.failed_requests();
    assert!(failed >= 2, "the registry was retried ({failed} requests)");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        stub.failed_requests() > failed,
        "retries go on while it is down"
    );

    stub.recover();
    wait_until(
        "partition 0 is written after the registry recovers",
        LIMIT,
        || async {
            env.count("SELECT count(*) FROM market_data WHERE symbol IN ('P0REG', 'P0B')")
                .await
                == 40
        },
    )
    .await;
    let (status, text) = worker.term();
    assert!(status.success(), "{status}: {text}");
    assert!(
        text.contains("schema registry is unavailable; pausing its partition"),
        "{text}"
    );
    assert!(!text.contains("panicked"), "{text}");
    // The seek before the pause made the resumed partition re-fetch the waiting record itself.
    assert!(!text.contains("skipped the record it waits for"), "{text}");
    let market = sim_market + p0.len() as i64 + 50;
    env.assert_exact(
        &rows(&[
            ("market_data", market),
            ("crypto_data", sim_crypto + more_crypto),
        ]),
        0,
        &produced(&[
            ("market_data", market),
            ("crypto_data", sim_crypto + more_crypto),
        ]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_a_registry_outage_quarantines_nothing_and_a_restart_writes_everything() {
    let env = TestEnv::new("outage_term", true).await;
    let sim = create_topic(&env, "market_data", 1, 20, 5);
    let id = register(&env);
    let stub = env.registry.as_ref().unwrap();
    stub.fail_with(503, None);
    let mut payloads: Vec<Vec<u8>> = (0..5).map(|i| tick("BEFORE", i)).collect();
    payloads.extend((0..20).map(|i| registry_tick(id, "REG", i)));
    payloads.extend((0..5).map(|i| tick("AFTER", i)));
    env.produce("market_data", 0, &payloads);
    let extra = [("ESURIO__KAFKA__TOPICS", "market_data")];

    let worker = Worker::start(&env, &extra);
    let first_registry_record = sim + 5;
    wait_until(
        "the records before the outage are written",
        LIMIT,
        || async { env.stored_offset("market_data", 0).await == first_registry_record },
    )
    .await;
    wait_until("the registry was retried", LIMIT, || async {
        stub.failed_requests() >= 3
    })
    .await;
    let (status, text) = worker.term();
    assert!(status.success(), "{status}: {text}");
    assert_eq!(
        env.count("SELECT count(*) FROM quarantine").await,
        0,
        "SIGTERM during an outage quarantines nothing"
    );
    assert_eq!(
        env.stored_offset("market_data", 0).await,
        first_registry_record,
        "the stored offset stays at the record that waits"
    );

    stub.recover();
    let (status, log) = env.run_logged(&["run", "--exit-when-idle", "3s"], &extra, LIMIT);
    assert!(status.success(), "{status}: {log}");
    let total = sim + payloads.len() as i64;
    env.assert_exact(
        &rows(&[("market_data", total)]),
        0,
        &produced(&[("market_data", total)]),
    )
    .await;
    assert_eq!(
        env.count("SELECT sum(records)::bigint FROM ingest_batches")
            .await,
        total,
        "every record was committed by exactly one batch"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_refusing_our_credentials_stops_the_worker_with_a_clear_message() {
    let env = TestEnv::new("reg401", true).await;
    let sim = create_topic(&env, "market_data", 1, 10, 6);
    let id = register(&env);
    let stub = env.registry.as_ref().unwrap();
    stub.fail_with(401, None);
    let payloads: Vec<Vec<u8>> = (0..10).map(|i| registry_tick(id, "REG", i)).collect();
    env.produce("market_data", 0, &payloads);
    let extra = [("ESURIO__KAFKA__TOPICS", "market_data")];

    let (status, log) = env.run_logged(&["run", "--exit-when-idle", "3s"], &extra, LIMIT);
    assert!(!status.success(), "the worker must fail: {log}");
    let want = format!(
        "the schema registry at {} refused our credentials (HTTP 401): check decode.schema_registry_url / its credentials",
        stub.url()
    );
    assert!(log.contains(&want), "{log}");
    assert_eq!(env.count("SELECT count(*) FROM quarantine").await, 0);
    assert!(env.stored_offset("market_data", 0).await <= sim);
    assert_eq!(
        env.count("SELECT count(*) FROM market_data WHERE symbol = 'REG'")
            .await,
        0
    );

    // Once the credentials are fixed, everything lands.
    stub.recover();
    let (status, log) = env.run_logged(&["run", "--exit-when-idle", "3s"], &extra, LIMIT);
    assert!(status.success(), "{status}: {log}");
    let total = sim + 10;
    env.assert_exact(
        &rows(&[("market_data", total)]),
        0,
        &produced(&[("market_data", total)]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dying_writer_stops_the_worker_and_a_restart_writes_everything_exactly_once() {
    let env = TestEnv::new("deadwriter", false).await;
    let summary = env.simulate(&[
        "--topics",
        "market_data",
        "--records",
        "3000",
        "--invalid-ratio",
        "0.1",
        "--format",
        "json",
        "--partitions",
        "2",
        "--seed",
        "8",
    ]);
    let invalid = summary["totals"]["invalid"].as_i64().unwrap();
    let total = summary["totals"]["produced"].as_i64().unwrap();
    let extra = [
        ("ESURIO__KAFKA__TOPICS", "market_data"),
        ("ESURIO__BATCH__MAX_RECORDS", "100"),
    ];
    let mut faulty = extra.to_vec();
    faulty.push(("ESURIO_TEST_FAULT", "writer_panic_after:3"));

    let (status, log) = env.run_logged(&["run", "--exit-when-idle", "3s"], &faulty, LIMIT);
    assert!(!status.success(), "a dead writer must fail the run: {log}");
    let log = strip_ansi(&log);
    let line = log
        .lines()
        .find(|l| l.contains("The writer of a partition died"))
        .unwrap_or_else(|| panic!("no log line says a writer died: {log}"));
    assert!(line.contains(&env.topic("market_data")), "{line}");
    assert!(line.contains("partition="), "{line}");
    assert!(line.contains("injected fault"), "{line}");
    let written = env
        .count("SELECT coalesce(sum(records), 0)::bigint FROM ingest_batches")
        .await;
    assert!(written < total, "the worker stopped before the end");

    let (status, log) = env.run_logged(&["run", "--exit-when-idle", "3s"], &extra, LIMIT);
    assert!(status.success(), "{status}: {log}");
    env.assert_exact(
        &summary["tables"],
        invalid,
        &crate::helpers::produced(&summary),
    )
    .await;
    assert_eq!(
        env.count("SELECT sum(records)::bigint FROM ingest_batches")
            .await,
        total,
        "every record was committed by exactly one batch"
    );
}
