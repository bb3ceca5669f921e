//! The scenarios. Each builds its own database, topics and group (see `helpers::TestEnv`).

use crate::helpers::{produced, TestEnv, TABLES};
use crate::{Profile, Row};
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

type Scenario = fn(Profile) -> Pin<Box<dyn Future<Output = Row>>>;

pub static ALL: &[(&str, Scenario)] = &[
    ("kill9", |p| Box::pin(kill9(p))),
    ("enrich_kill9", |p| Box::pin(enrich_kill9(p))),
    ("sigterm", |p| Box::pin(sigterm(p))),
    ("pg_restart", |p| Box::pin(pg_restart(p))),
    ("kafka_restart", |p| Box::pin(kafka_restart(p))),
    ("rebalance_storm", |p| Box::pin(rebalance_storm(p))),
    ("slow_database", |p| Box::pin(slow_database(p))),
    ("poison_flood", |p| Box::pin(poison_flood(p))),
    ("infra_errors", |p| Box::pin(infra_errors(p))),
    ("adversarial", |p| Box::pin(adversarial(p))),
];

/// The session timeout the tests give the worker (helpers::TestEnv::esurio).
const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

fn rss_bound_mib() -> u64 {
    std::env::var("ESURIO_FAULTS_RSS_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

fn stack(args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/stack");
    let out = std::process::Command::new(script)
        .args(args)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/stack {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A worker process with its log in a file.
struct Worker {
    child: Child,
    log: PathBuf,
    peak_rss_kib: u64,
}

impl Worker {
    fn start(env: &TestEnv, n: usize, extra: &[(&str, &str)]) -> Self {
        let log = std::env::temp_dir().join(format!("{}.w{n}.log", env.group));
        let mut cmd = env.esurio(&["run"]);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap();
        Self {
            child,
            log,
            peak_rss_kib: 0,
        }
    }

    /// Samples the peak resident set size (VmHWM only grows, so the last sample is the peak).
    fn sample_rss(&mut self) {
        let path = format!("/proc/{}/status", self.child.id());
        if let Ok(s) = std::fs::read_to_string(path) {
            if let Some(kib) = s
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
            {
                self.peak_rss_kib = self.peak_rss_kib.max(kib);
            }
        }
    }

    fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits; returns how long the drain took and whether it exited 0.
    fn term(mut self) -> (Duration, bool, String) {
        self.sample_rss();
        let start = Instant::now();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let limit = SESSION_TIMEOUT * 3;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return (start.elapsed(), st.success(), self.log_text());
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return (start.elapsed(), false, self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// `esurio simulate` in the background: the spiders producing while faults happen.
struct Spiders {
    child: Child,
    out: PathBuf,
}

impl Spiders {
    fn start(env: &TestEnv, args: &[&str]) -> Self {
        let out = std::env::temp_dir().join(format!("{}.sim.json", env.group));
        let mut all = vec!["simulate"];
        all.extend_from_slice(args);
        let child = env
            .esurio(&all)
            .stdout(Stdio::from(std::fs::File::create(&out).unwrap()))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self { child, out }
    }

    fn finish(mut self) -> Value {
        let st = self.child.wait().unwrap();
        assert!(st.success(), "simulate failed");
        serde_json::from_slice(&std::fs::read(&self.out).unwrap()).unwrap()
    }
}

/// Share of spider realism (replays, conflicting ticks, revisions, re-crawls, same-millisecond
/// trades) in every scenario's simulated records.
const REALISM: &str = "0.2";

/// Expected totals: rows per table and quarantined records, and records per family; with a
/// simulator summary, also the history tables and per-topic outcome counts.
struct Expected {
    tables: BTreeMap<String, i64>,
    quarantine: i64,
    produced: BTreeMap<String, i64>,
    summary: Option<Value>,
}

impl Expected {
    fn from_summary(s: &Value) -> Self {
        Self {
            summary: Some(s.clone()),
            tables: s["tables"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_i64().unwrap()))
                .collect(),
            quarantine: s["totals"]["invalid"].as_i64().unwrap(),
            produced: produced(s),
        }
    }
}

/// The exactness check, counting instead of asserting.
async fn check(env: &TestEnv, exp: &Expected, row: &mut Row) {
    let counts = env.table_counts().await;
    for (t, n) in &counts {
        let want = exp.tables.get(t).copied().unwrap_or(0);
        if *n < want {
            row.lost += want - n;
            row.failures.push(format!("{t}: {n} rows, expected {want}"));
        }
        if *n > want {
            row.doubled += n - want;
            row.failures.push(format!("{t}: {n} rows, expected {want}"));
        }
    }
    row.written = TABLES
        .iter()
        .filter(|t| !t.ends_with("_entity"))
        .map(|t| counts[*t])
        .sum();
    let q = env.count("SELECT count(*) FROM quarantine").await;
    row.quarantined = q;
    if q < exp.quarantine {
        row.lost += exp.quarantine - q;
    }
    if q > exp.quarantine {
        row.doubled += q - exp.quarantine;
    }
    if q != exp.quarantine {
        row.failures
            .push(format!("quarantine: {q}, expected {}", exp.quarantine));
    }
    for t in TABLES.iter().filter(|t| !t.ends_with("_entity")) {
        let d = env
            .count(&format!(
                "SELECT count(*) - count(DISTINCT (source_topic, source_partition, source_offset)) FROM {t}"
            ))
            .await;
        if d > 0 {
            row.doubled += d;
            row.failures
                .push(format!("{t}: {d} rows share a source offset"));
        }
    }
    // No two committed batches of a partition cover the same offset: no partition was written by
    // two workers, and nothing was committed twice.
    let overlap = env
        .count(
            "SELECT count(*) FROM ingest_batches a JOIN ingest_batches b
               ON a.topic = b.topic AND a.partition = b.partition AND a.id < b.id
              AND a.first_offset <= b.last_offset AND b.first_offset <= a.last_offset",
        )
        .await;
    if overlap > 0 {
        row.doubled += overlap;
        row.failures.push(format!("{overlap} overlapping batches"));
    }
    if let Some(summary) = &exp.summary {
        let outcomes: Vec<&str> = crate::helpers::OUTCOMES.iter().map(|(f, _)| *f).collect();
        let mismatches = env
            .history_and_outcome_mismatches(summary, 1, &outcomes)
            .await;
        if mismatches.is_empty() {
            // Say what was accounted for, so the table shows realism was there to account for.
            let history: i64 = env.history_counts().await.values().sum();
            let r = env.outcome_totals().await;
            row.notes.push(format!(
                "as the simulator predicted: {history} history rows; {} duplicates, {} revised, {} superseded, {} conflicting",
                r.0, r.1, r.2, r.3
            ));
        }
        row.failures.extend(mismatches);
    }
    row.produced = exp.produced.values().sum();
    let db = env.db().await;
    for (family, n) in &exp.produced {
        let topic = env.topic(family);
        let stored: i64 = db
            .query_one(
                "SELECT coalesce(sum(next_offset), 0)::bigint FROM consumed_offsets WHERE consumer_group = $1 AND topic = $2",
                &[&env.group, &topic],
            )
            .await
            .unwrap()
            .get(0);
        let end = env.topic_size(&topic);
        if stored != end || stored != *n {
            row.lost += (end - stored).max(0);
            row.failures.push(format!(
                "{topic}: stored offsets {stored}, end offsets {end}, produced {n}"
            ));
        }
    }
}

fn records(profile: Profile, short: usize, long: usize) -> String {
    match profile {
        Profile::Short => short,
        Profile::Long => long,
    }
    .to_string()
}

async fn kill9(profile: Profile) -> Row {
    let mut row = Row::default();
    let env = TestEnv::new("f_kill9", true).await;
    let n = records(profile, 8_000, 40_000);
    let spiders = Spiders::start(
        &env,
        &[
            "--records",
            &n,
            "--realism",
            REALISM,
            "--invalid-ratio",
            "0.1",
            "--format",
            "mixed",
            "--seed",
            "21",
        ],
    );
    let cycles = if profile == Profile::Long { 20 } else { 3 };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
    for i in 0..cycles {
        let w = Worker::start(&env, i, &[]);
        tokio::time::sleep(Duration::from_millis(rng.gen_range(1_000..4_000))).await;
        w.kill9();
    }
    row.notes
        .push(format!("{cycles} kill -9 cycles at random moments"));
    let exp = Expected::from_summary(&spiders.finish());
    env.run_until_idle();
    check(&env, &exp, &mut row).await;
    row
}

/// kill -9 at random moments with enrichment events on, and every other cycle a kill exactly
/// between the broker's acknowledgement of a pass's events and the move of its cursor (the fault
/// point `enrich_abort_after`). Beyond exactness of the rows: every committed row has exactly one
/// distinct event id on its enrichment topic, no event names a row that is not in the database
/// (or was not current once, for revised families), and repeats stay within the in-flight window.
async fn enrich_kill9(profile: Profile) -> Row {
    const FAMILIES: &str = "market_data,news_article,earnings_event";
    const PASS_BATCHES: usize = 4;
    const BATCH_RECORDS: usize = 200;
    let mut row = Row::default();
    let env = TestEnv::new("f_enrich_kill9", false).await;
    let n = records(profile, 6_000, 30_000);
    let spiders = Spiders::start(
        &env,
        &[
            "--topics",
            FAMILIES,
            "--records",
            &n,
            "--realism",
            REALISM,
            "--invalid-ratio",
            "0.1",
            "--seed",
            "23",
        ],
    );
    let pass = PASS_BATCHES.to_string();
    let batch = BATCH_RECORDS.to_string();
    let on = [
        ("ESURIO__KAFKA__TOPICS", FAMILIES),
        ("ESURIO__ENRICHMENT__FAMILIES", FAMILIES),
        ("ESURIO__ENRICHMENT__MAX_BATCHES_PER_PASS", pass.as_str()),
        ("ESURIO__BATCH__MAX_RECORDS", batch.as_str()),
    ];
    let cycles = if profile == Profile::Long { 20 } else { 4 };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(23);
    let mut aborted = 0;
    for i in 0..cycles {
        let mut extra = on.to_vec();
        let fault = format!("enrich_abort_after:{}", rng.gen_range(1..4));
        let with_fault = i % 2 == 1;
        if with_fault {
            extra.push(("ESURIO_TEST_FAULT", fault.as_str()));
        }
        let mut w = Worker::start(&env, i, &extra);
        // A cycle with the fault point gives the worker time to reach it (it aborts itself);
        // the others are killed at a random moment.
        let wait = if with_fault {
            Duration::from_secs(8)
        } else {
            Duration::from_millis(rng.gen_range(1_000..4_000))
        };
        let until = Instant::now() + wait;
        while Instant::now() < until {
            if w.child.try_wait().ok().flatten().is_some() {
                aborted += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        w.kill9();
    }
    row.notes.push(format!(
        "{cycles} kill -9 cycles with events on, {aborted} of them ended by the abort between acknowledgement and cursor"
    ));
    let exp = Expected::from_summary(&spiders.finish());
    env.run_until_idle_with(&on);
    check(&env, &exp, &mut row).await;

    // The events: one distinct id per committed row, none for anything else.
    let partitions = 4;
    let window = partitions * PASS_BATCHES * BATCH_RECORDS;
    let mut repeats_total = 0;
    for family in FAMILIES.split(',') {
        let events = env.read_topic(&format!("{}.enriched", env.topic(family)));
        let ids = crate::helpers::event_ids(&events);
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        for id in &ids {
            *count.entry(id).or_default() += 1;
        }
        let current = crate::helpers::expected_event_ids(&env, family).await;
        let once = crate::helpers::revised_event_ids(&env, family).await;
        let every: std::collections::BTreeSet<&str> = current
            .iter()
            .chain(once.iter())
            .map(String::as_str)
            .collect();
        let missing = every.iter().filter(|id| !count.contains_key(**id)).count();
        let stray = count.keys().filter(|id| !every.contains(**id)).count();
        let repeated: usize = count.values().map(|n| n - 1).sum();
        repeats_total += repeated;
        if missing > 0 {
            row.lost += missing as i64;
            row.failures.push(format!(
                "{family}: {missing} committed rows without an event"
            ));
        }
        if stray > 0 {
            row.failures.push(format!(
                "{family}: {stray} events of rows not in the database"
            ));
        }
        // Each kill repeats at most one pass per partition of each topic.
        if repeated > window * cycles {
            row.failures.push(format!(
                "{family}: {repeated} repeated events, beyond {cycles} in-flight windows of {window}"
            ));
        }
        row.notes.push(format!(
            "{family}: {} rows, {} events, {} distinct ids, {repeated} repeats",
            current.len(),
            ids.len(),
            count.len()
        ));
    }
    row.notes
        .push(format!("{repeats_total} repeated events in all (same ids)"));
    row
}

async fn sigterm(profile: Profile) -> Row {
    let mut row = Row::default();
    let env = TestEnv::new("f_sigterm", false).await;
    let n = records(profile, 8_000, 40_000);
    let spiders = Spiders::start(
        &env,
        &["--records", &n, "--realism", REALISM, "--seed", "22"],
    );
    let cycles = if profile == Profile::Long { 6 } else { 2 };
    let mut worst = Duration::ZERO;
    for i in 0..cycles {
        let w = Worker::start(&env, i, &[]);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (took, ok, log) = w.term();
        worst = worst.max(took);
        if !ok {
            row.failures
                .push(format!("SIGTERM #{i}: exit was not clean: {}", tail(&log)));
        }
        if took >= SESSION_TIMEOUT {
            row.failures.push(format!(
                "SIGTERM #{i}: drain took {took:?}, not under the session timeout {SESSION_TIMEOUT:?}"
            ));
        }
    }
    row.notes.push(format!(
        "slowest drain after SIGTERM: {:.2}s (session timeout {}s)",
        worst.as_secs_f64(),
        SESSION_TIMEOUT.as_secs()
    ));
    let exp = Expected::from_summary(&spiders.finish());
    env.run_until_idle();
    check(&env, &exp, &mut row).await;
    row
}

fn tail(s: &str) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(8)..].join("\n")
}

async fn wait_written(env: &TestEnv, at_least: i64, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        let n = env
            .count("SELECT coalesce(sum(records), 0)::bigint FROM ingest_batches")
            .await;
        if n >= at_least {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

async fn pg_restart(profile: Profile) -> Row {
    let mut row = Row::default();
    let env = TestEnv::new("f_pg", false).await;
    let n = records(profile, 10_000, 50_000);
    let spiders = Spiders::start(
        &env,
        &["--records", &n, "--realism", REALISM, "--seed", "23"],
    );
    let w = Worker::start(&env, 0, &[]);
    wait_written(&env, 5_000, Duration::from_secs(60)).await;
    stack(&["restart", "pg"]);
    row.notes.push("PostgreSQL restarted mid-stream".into());
    wait_written(&env, 20_000, Duration::from_secs(60)).await;
    // Terminate the worker's backends while they COPY.
    let mut terminated = 0i64;
    for _ in 0..20 {
        terminated += env
            .count(
                "SELECT count(pg_terminate_backend(pid))::bigint FROM pg_stat_activity
                  WHERE datname = current_database() AND application_name = 'esurio-ingest'
                    AND pid <> pg_backend_pid() AND state = 'active'",
            )
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    row.notes
        .push(format!("{terminated} active worker backends terminated"));
    let exp = Expected::from_summary(&spiders.finish());
    let (_, ok, log) = w.term();
    if !ok {
        row.failures
            .push(format!("worker did not stop cleanly: {}", tail(&log)));
    }
    if !log.contains("retrying") {
        row.failures.push("no retry was logged".into());
    }
    env.run_until_idle();
    check(&env, &exp, &mut row).await;
    row
}

async fn kafka_restart(profile: Profile) -> Row {
    let mut row = Row::default();
    let env = TestEnv::new("f_kafka", false).await;
    let n = records(profile, 10_000, 50_000);
    // The spiders finish first: this scenario is about the consumer side losing its broker.
    let exp = Expected::from_summary(&env.simulate(&[
        "--records",
        &n,
        "--realism",
        REALISM,
        "--seed",
        "24",
    ]));
    let w = Worker::start(&env, 0, &[]);
    wait_written(&env, 5_000, Duration::from_secs(60)).await;
    stack(&["restart", "kafka"]);
    row.notes.push("Kafka broker restarted mid-stream".into());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (_, ok, log) = w.term();
    if !ok {
        row.failures
            .push(format!("worker did not stop cleanly: {}", tail(&log)));
    }
    env.run_until_idle();
    check(&env, &exp, &mut row).await;
    row
}

async fn rebalance_storm(profile: Profile) -> Row {
    let mut row = Row::default();
    let env = TestEnv::new("f_rebalance", false).await;
    let n = records(profile, 10_000, 60_000);
    let spiders = Spiders::start(
        &env,
        &["--records", &n, "--realism", REALISM, "--seed", "25"],
    );
    let size = if profile == Profile::Long { 3 } else { 2 };
    let storm = Duration::from_secs(if profile == Profile::Long { 120 } else { 25 });
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(25);
    let mut workers: Vec<Worker> = (0..size).map(|i| Worker::start(&env, i, &[])).collect();
    let start = Instant::now();
    let mut changes = 0;
    let mut next = size;
    while start.elapsed() < storm {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(2_000..4_000))).await;
        let i = rng.gen_range(0..workers.len());
        let w = workers.swap_remove(i);
        if rng.gen_bool(0.5) {
            w.kill9();
        } else {
            let _ = w.term();
        }
        workers.push(Worker::start(&env, next, &[]));
        next += 1;
        changes += 1;
    }
    row.notes.push(format!(
        "{size} workers in one group, {changes} members left and joined in {}s",
        storm.as_secs()
    ));
    for w in workers {
        let _ = w.term();
    }
    let exp = Expected::from_summary(&spiders.finish());
    env.run_until_idle();
    check(&env, &exp, &mut row).await;
    row
}

async fn slow_database(profile: Profile) -> Row {
    let mut row = Row::default();
    let env = TestEnv::new("f_slow", false).await;
    let n = records(profile, 200_000, 5_000_000);
    // A backlog of market data, all of it waiting when the database stalls.
    let exp = Expected::from_summary(&env.simulate(&[
        "--records",
        &n,
        "--topics",
        "market_data",
        "--invalid-ratio",
        "0",
        "--realism",
        REALISM,
        "--seed",
        "26",
    ]));
    let mut w = Worker::start(&env, 0, &[("ESURIO__KAFKA__TOPICS", "market_data")]);
    wait_written(&env, 10_000, Duration::from_secs(120)).await;
    // Hold an exclusive lock on the target longer than the session timeout.
    let locker = env.db().await;
    locker
        .batch_execute("BEGIN; LOCK TABLE market_data IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let hold = SESSION_TIMEOUT * 2;
    let locked_at = Instant::now();
    while locked_at.elapsed() < hold {
        w.sample_rss();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let before = env
        .count("SELECT coalesce(sum(records), 0)::bigint FROM ingest_batches")
        .await;
    locker.batch_execute("COMMIT").await.unwrap();
    row.notes.push(format!(
        "market_data locked for {}s (session timeout {}s) with a backlog of {n}",
        hold.as_secs(),
        SESSION_TIMEOUT.as_secs()
    ));
    // Ingestion resumes by itself: the same worker, no restart.
    let total: i64 = exp.produced.values().sum();
    let resumed = Instant::now();
    let mut done = false;
    while resumed.elapsed() < Duration::from_secs(900) {
        w.sample_rss();
        let stored = env
            .count("SELECT coalesce(sum(next_offset), 0)::bigint FROM consumed_offsets")
            .await;
        if stored >= total {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    if !done {
        row.failures
            .push("ingestion did not resume by itself".into());
    }
    let peak = w.peak_rss_kib / 1024;
    let (_, ok, log) = w.term();
    if !ok {
        row.failures
            .push(format!("worker did not stop cleanly: {}", tail(&log)));
    }
    if log.contains("Revoked a partition")
        && log.find("Revoked a partition") < log.find("Shutting down")
    {
        row.failures
            .push("the worker lost its partitions while the database was slow".into());
    }
    row.notes.push(format!(
        "{before} records committed before the lock was released; peak RSS {peak} MiB (bound {} MiB)",
        rss_bound_mib()
    ));
    if peak > rss_bound_mib() {
        row.failures.push(format!(
            "peak RSS {peak} MiB over the bound {} MiB",
            rss_bound_mib()
        ));
    }
    env.run_until_idle();
    check(&env, &exp, &mut row).await;
    row
}

fn tick(symbol: &str, i: usize) -> Vec<u8> {
    let ts = chrono::Utc::now() - chrono::Duration::seconds(120)
        + chrono::Duration::microseconds(i as i64);
    serde_json::to_vec(&serde_json::json!({
        "symbol": symbol, "exchange": "XFLT", "ts": ts.to_rfc3339(), "price": 10.0 + i as f64,
        "volume": 1, "currency": "USD"
    }))
    .unwrap()
}

async fn poison_flood(profile: Profile) -> Row {
    let mut row = Row::default();
    let env = TestEnv::new("f_poison", true).await;
    env.db()
        .await
        .batch_execute(
            "ALTER TABLE market_data ADD CONSTRAINT it_no_badsym CHECK (symbol <> 'BADSYM')",
        )
        .await
        .unwrap();
    let n = records(profile, 5_000, 30_000);
    let summary = env.simulate(&[
        "--records",
        &n,
        "--realism",
        REALISM,
        "--invalid-ratio",
        "0.3",
        "--format",
        "mixed",
        "--seed",
        "27",
    ]);
    let mut exp = Expected::from_summary(&summary);
    // Rows only the database rejects, spread through batches of good rows.
    let hand: Vec<Vec<u8>> = (0..2_000)
        .map(|i| tick(if i % 97 == 13 { "BADSYM" } else { "FLOOD" }, i))
        .collect();
    let bad = (0..2_000).filter(|i| i % 97 == 13).count() as i64;
    env.produce("market_data", 1, &hand);
    *exp.tables.get_mut("market_data").unwrap() += 2_000 - bad;
    exp.quarantine += bad;
    *exp.produced.get_mut("market_data").unwrap() += 2_000;
    env.run_until_idle();
    let db_rejected = env
        .count("SELECT count(*) FROM quarantine WHERE stage = 'database'")
        .await;
    // The database also quarantines the simulator's conflicting ticks.
    let conflicting = summary["totals"]["conflicting"].as_i64().unwrap();
    if db_rejected != bad + conflicting {
        row.failures.push(format!(
            "{db_rejected} records quarantined by the database, expected exactly the {bad} bad ones and {conflicting} conflicting ticks"
        ));
    }
    row.notes.push(format!(
        "30% invalid records, plus {bad} rows a constraint rejects among 2000"
    ));
    check(&env, &exp, &mut row).await;
    row
}

async fn infra_errors(profile: Profile) -> Row {
    let mut row = Row::default();
    let env = TestEnv::new("f_infra", true).await;
    let n = records(profile, 5_000, 30_000);
    let exp = Expected::from_summary(&env.simulate(&[
        "--records",
        &n,
        "--realism",
        REALISM,
        "--invalid-ratio",
        "0.1",
        "--format",
        "mixed",
        "--seed",
        "28",
    ]));
    // A statement-level trigger that sleeps past the worker's statement timeout while a flag is set.
    env.db()
        .await
        .batch_execute(
            "CREATE TABLE it_flags (slow boolean NOT NULL);
             INSERT INTO it_flags VALUES (true);
             CREATE FUNCTION it_slow() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN IF (SELECT slow FROM it_flags) THEN PERFORM pg_sleep(3); END IF; RETURN NULL; END $$;
             CREATE TRIGGER it_slow AFTER INSERT ON crypto_data FOR EACH STATEMENT EXECUTE FUNCTION it_slow();",
        )
        .await
        .unwrap();
    // 1. The registry is down when the worker starts (so it cannot have the schemas cached), and
    //    every crypto_data write sleeps past the worker's 1 s statement timeout.
    env.registry.as_ref().unwrap().set_down(true);
    let w = Worker::start(&env, 0, &[("ESURIO__DATABASE__STATEMENT_TIMEOUT", "1s")]);
    tokio::time::sleep(Duration::from_secs(6)).await;
    env.registry.as_ref().unwrap().set_down(false);
    tokio::time::sleep(Duration::from_secs(8)).await;
    env.db()
        .await
        .batch_execute("UPDATE it_flags SET slow = false")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // 2. Connection refused: the database is down for a few seconds.
    stack(&["down", "pg"]);
    tokio::time::sleep(Duration::from_secs(4)).await;
    stack(&["up", "pg"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, ok, log) = w.term();
    if !ok {
        row.failures
            .push(format!("worker did not stop cleanly: {}", tail(&log)));
    }
    for (what, needle) in [
        ("statement timeout", "statement timeout"),
        ("schema registry unreachable", "registry is unreachable"),
        ("connection refused", "Connection refused"),
    ] {
        if log.contains(needle) {
            row.notes
                .push(format!("{what}: retried, and the log says so"));
        } else {
            let warnings: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                .collect();
            row.failures.push(format!(
                "{what}: no log line mentions {needle:?}; its last warnings: {}",
                warnings[warnings.len().saturating_sub(6)..].join("\n")
            ));
        }
    }
    env.run_until_idle();
    check(&env, &exp, &mut row).await;
    row
}

async fn adversarial(_profile: Profile) -> Row {
    let mut row = Row::default();
    let env = TestEnv::new("f_adversarial", false).await;
    let mut payloads = Vec::new();
    let mut want: BTreeMap<&str, i64> = BTreeMap::new();
    for i in 0..500 {
        payloads.push(tick("GOOD", i));
    }
    payloads.push(vec![b'{'; 3 * 1024 * 1024]);
    *want.entry("too_large").or_default() += 1;
    let deep = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    payloads.push(deep.into_bytes());
    *want.entry("nesting_too_deep").or_default() += 1;
    let schema =
        apache_avro::Schema::parse_str(esurio::records::family("market_data").unwrap().avro_schema)
            .unwrap();
    let mut huge = vec![0xC3, 0x01];
    huge.extend_from_slice(&esurio::decode::fingerprint(&schema));
    huge.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0x3f]);
    payloads.push(huge);
    *want.entry("invalid_avro").or_default() += 1;
    let mut long_title = tick("GOOD", 9_999);
    long_title.truncate(long_title.len() - 1);
    long_title.extend_from_slice(format!(",\"x\":\"{}\"}}", "y".repeat(900_000)).as_bytes());
    payloads.push(long_title); // an unknown huge field is ignored, the record is valid
    payloads.push(b"\xff\xfe{".to_vec());
    *want.entry("unknown_format").or_default() += 1;
    env.produce("market_data", 0, &payloads);
    let mut w = Worker::start(&env, 0, &[("ESURIO__KAFKA__TOPICS", "market_data")]);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        w.sample_rss();
        let stored = env
            .count("SELECT coalesce(sum(next_offset), 0)::bigint FROM consumed_offsets")
            .await;
        if stored >= payloads.len() as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let peak = w.peak_rss_kib / 1024;
    let _ = w.term();
    row.notes.push(format!(
        "3 MiB record, 100k-deep JSON, Avro declaring a 1 TiB string, a 900 kB field; peak RSS {peak} MiB"
    ));
    if peak > rss_bound_mib() {
        row.failures
            .push(format!("peak RSS {peak} MiB over the bound"));
    }
    let db = env.db().await;
    for (reason, n) in &want {
        let got: i64 = db
            .query_one(
                "SELECT count(*) FROM quarantine WHERE reason = $1",
                &[reason],
            )
            .await
            .unwrap()
            .get(0);
        if got != *n {
            row.failures
                .push(format!("{reason}: {got} quarantined, expected {n}"));
        }
    }
    let exp = Expected {
        summary: None,
        tables: [("market_data".to_string(), 501)].into_iter().collect(),
        quarantine: want.values().sum(),
        produced: [("market_data".to_string(), payloads.len() as i64)]
            .into_iter()
            .collect(),
    };
    check(&env, &exp, &mut row).await;
    row
}
