//! Offsets never jump silently: a topic deleted and recreated, records removed by retention before
//! they were written, and operator resets (`esurio offsets list | reset`), against the real broker
//! and database.

use crate::helpers::{wait_with_timeout, TestEnv};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientConfig;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

/// Two topics: the one whose offsets get into trouble, and one that must go on regardless.
const TOPICS: &str = "market_data,news_article";

fn admin(env: &TestEnv) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", &env.brokers)
        .create()
        .unwrap()
}

async fn create_topic(env: &TestEnv, family: &str) {
    let topic = env.topic(family);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = admin(env)
            .create_topics(
                &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await
            .unwrap();
        match &r[0] {
            Ok(_) => return,
            // A deleted topic lingers for a moment in KRaft.
            Err(e) if Instant::now() < deadline => {
                eprintln!("create {topic}: {e:?}; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("cannot create {topic}: {e:?}"),
        }
    }
}

/// Deletes a family's topic and creates it again, empty.
async fn recreate_topic(env: &TestEnv, family: &str) {
    let topic = env.topic(family);
    let r = admin(env)
        .delete_topics(
            &[&topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap();
    assert!(r[0].is_ok(), "delete {topic}: {:?}", r[0]);
    create_topic(env, family).await;
    // The new topic's metadata must have reached the broker we ask, or the size reads the old one.
    let deadline = Instant::now() + Duration::from_secs(30);
    while env.topic_size(&topic) != 0 {
        assert!(Instant::now() < deadline, "{topic} was not recreated empty");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Removes partition 0's records below `before` (what retention does to old segments).
async fn delete_records(env: &TestEnv, family: &str, before: i64) {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&env.topic(family), 0, Offset::Offset(before))
        .unwrap();
    let r = admin(env)
        .delete_records(
            &tpl,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap();
    let e = r.elements();
    assert_eq!(
        e[0].offset(),
        Offset::Offset(before),
        "low offset after DeleteRecords"
    );
}

/// Market ticks whose natural keys say which generation they belong to (`symbol`), each with an
/// explicit record timestamp (ms since the epoch) when given.
fn produce_ticks(env: &TestEnv, symbol: &str, n: usize, record_ts_ms: Option<i64>) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &env.brokers)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let topic = env.topic("market_data");
    let base = chrono::Utc::now() - chrono::Duration::seconds(120);
    for i in 0..n {
        let ts = base + chrono::Duration::milliseconds(i as i64);
        let v = serde_json::to_vec(&serde_json::json!({
            "symbol": symbol, "exchange": "XNYS", "ts": ts.to_rfc3339(), "price": 10.0 + i as f64,
            "volume": 5, "currency": "USD"
        }))
        .unwrap();
        let mut r = BaseRecord::<(), [u8]>::to(&topic).payload(&v).partition(0);
        if let Some(t) = record_ts_ms {
            r = r.timestamp(t);
        }
        p.send(r).unwrap();
    }
    p.flush(Duration::from_secs(30)).unwrap();
}

fn produce_articles(env: &TestEnv, tag: &str, n: usize) {
    let now = chrono::Utc::now().to_rfc3339();
    let articles: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            serde_json::to_vec(&serde_json::json!({
                "url": format!("https://example.com/{}/{tag}/{i}", env.prefix), "title": "T",
                "source": "S", "published_at": now, "entities": []
            }))
            .unwrap()
        })
        .collect();
    env.produce("news_article", 0, &articles);
}

/// `esurio run --exit-when-idle 3s` on the two topics, whatever its exit status; (output, log).
fn run_idle(env: &TestEnv, extra_env: &[(&str, &str)]) -> (Output, String) {
    let mut cmd = env.esurio(&["run", "--exit-when-idle", "3s"]);
    // Plain text: the assertions read log fields.
    cmd.env("ESURIO__KAFKA__TOPICS", TOPICS)
        .env("NO_COLOR", "1");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_with_timeout(child, Duration::from_secs(180));
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, log)
}

fn run_idle_ok(env: &TestEnv, extra_env: &[(&str, &str)]) -> String {
    let (out, log) = run_idle(env, extra_env);
    assert!(out.status.success(), "run failed ({}): {log}", out.status);
    log
}

/// `esurio offsets ...`; asserts success, returns stdout.
fn offsets(env: &TestEnv, args: &[&str]) -> String {
    let mut all = vec!["offsets"];
    all.extend_from_slice(args);
    let out = env.esurio(&all).output().unwrap();
    assert!(
        out.status.success(),
        "esurio {all:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn stored(env: &TestEnv, family: &str) -> Option<i64> {
    env.db()
        .await
        .query_opt(
            "SELECT next_offset FROM consumed_offsets WHERE consumer_group = $1 AND topic = $2 AND partition = 0",
            &[&env.group, &env.topic(family)],
        )
        .await
        .unwrap()
        .map(|r| r.get(0))
}

async fn ticks(env: &TestEnv, symbol: &str) -> i64 {
    env.db()
        .await
        .query_one(
            "SELECT count(*) FROM market_data WHERE symbol = $1",
            &[&symbol],
        )
        .await
        .unwrap()
        .get(0)
}

/// The audit rows of market_data[0]: (old, new, low, high, how, reason).
async fn audit(env: &TestEnv) -> Vec<(Option<i64>, i64, i64, i64, String, Option<String>)> {
    env.db()
        .await
        .query(
            "SELECT old_offset, new_offset, broker_low, broker_high, how, reason FROM offset_resets
              WHERE consumer_group = $1 AND topic = $2 AND partition = 0 ORDER BY id",
            &[&env.group, &env.topic("market_data")],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect()
}

/// Ingests `n` OLD ticks and 2 articles, then deletes and recreates market_data with `m` NEW
/// ticks, and adds 3 articles.
async fn ingest_then_recreate(env: &TestEnv, n: usize, m: usize) {
    create_topic(env, "market_data").await;
    create_topic(env, "news_article").await;
    produce_ticks(env, "OLD", n, None);
    produce_articles(env, "a", 2);
    run_idle_ok(env, &[]);
    assert_eq!(ticks(env, "OLD").await, n as i64);
    assert_eq!(stored(env, "market_data").await, Some(n as i64));
    recreate_topic(env, "market_data").await;
    produce_ticks(env, "NEW", m, None);
    produce_articles(env, "b", 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recreated_topic_stops_its_partition_until_an_operator_resets_it() {
    let env = TestEnv::new("gap_recreated", false).await;
    ingest_then_recreate(&env, 30, 12).await;

    // The partition stops: nothing written, nothing skipped, one clear error; the other topic goes
    // on; the idle exit does not claim to be caught up, it fails naming the partition.
    let (out, log) = run_idle(&env, &[]);
    assert!(
        !out.status.success(),
        "a stopped partition is not caught up: {log}"
    );
    let topic = env.topic("market_data");
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Stopped a partition"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {log}");
    for want in [
        topic.as_str(),
        "partition=0",
        "stored=30",
        "broker_low=0",
        "broker_high=12",
        "recreated",
        "esurio offsets reset",
    ] {
        assert!(errors[0].contains(want), "{want:?} in {}", errors[0]);
    }
    assert!(
        log.contains(&format!("{topic}[0]: stored 30, broker 0..12 (recreated)")),
        "the exit names the stopped partition: {log}"
    );
    assert_eq!(ticks(&env, "NEW").await, 0, "nothing written");
    assert_eq!(
        stored(&env, "market_data").await,
        Some(30),
        "nothing skipped"
    );
    assert_eq!(env.count("SELECT count(*) FROM news_article").await, 5);
    assert_eq!(stored(&env, "news_article").await, Some(5));

    let listed = offsets(&env, &["list", "--topic", "market_data"]);
    assert!(
        listed.lines().any(|l| l.contains(&topic)
            && l.split_whitespace().collect::<Vec<_>>()[2..8]
                == ["0", "30", "0", "12", "-", "recreated"]),
        "{listed}"
    );

    let done = offsets(
        &env,
        &[
            "reset",
            "--topic",
            "market_data",
            "--to-earliest",
            "--reason",
            "recreated in a test",
        ],
    );
    assert!(done.contains("reset"), "{done}");
    assert_eq!(stored(&env, "market_data").await, Some(0));
    let a = audit(&env).await;
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(
        a[0],
        (
            Some(30),
            0,
            0,
            12,
            "manual:earliest".into(),
            Some("recreated in a test".into())
        )
    );

    run_idle_ok(&env, &[]);
    assert_eq!(ticks(&env, "NEW").await, 12, "the new records are written");
    assert_eq!(ticks(&env, "OLD").await, 30);
    assert_eq!(stored(&env, "market_data").await, Some(12));
    // Exactly once: one batch audit row covers each new offset.
    let written: i64 = env
        .db()
        .await
        .query_one(
            "SELECT coalesce(sum(records), 0)::bigint FROM ingest_batches WHERE topic = $1 AND first_offset < 12 AND committed_at > (SELECT max(reset_at) FROM offset_resets)",
            &[&topic],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(written, 12);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_reset_to_earliest_a_recreated_topic_is_resumed_and_the_gap_recorded() {
    let env = TestEnv::new("gap_auto", false).await;
    ingest_then_recreate(&env, 30, 12).await;

    let log = run_idle_ok(
        &env,
        &[("ESURIO__KAFKA__ON_OFFSET_GAP", "reset_to_earliest")],
    );
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("Reset a partition's stored offset")
            && l.contains("stored=30")),
        "{log}"
    );
    assert_eq!(ticks(&env, "NEW").await, 12);
    assert_eq!(ticks(&env, "OLD").await, 30);
    assert_eq!(stored(&env, "market_data").await, Some(12));
    assert_eq!(env.count("SELECT count(*) FROM news_article").await, 5);
    let a = audit(&env).await;
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!((a[0].0, a[0].1, a[0].2, a[0].3), (Some(30), 0, 0, 12));
    assert_eq!(a[0].4, "auto:earliest");
    assert!(a[0].5.as_deref().unwrap().contains("recreated"), "{a:?}");
}

/// A worker that runs until SIGTERM, logging to a file (a pipe nobody reads would block it).
struct Worker {
    child: Child,
    log: std::path::PathBuf,
}

impl Worker {
    fn spawn(env: &TestEnv, name: &str) -> Self {
        Self::spawn_with(env, name, &[])
    }

    fn spawn_with(env: &TestEnv, name: &str, extra_env: &[(&str, &str)]) -> Self {
        let log = std::env::temp_dir().join(format!("{}.{name}.log", env.group));
        let mut cmd = env.esurio(&["run"]);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let child = cmd
            .env("ESURIO__KAFKA__TOPICS", TOPICS)
            .env("ESURIO__KAFKA__OFFSET_CHECK_INTERVAL", "1s")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Worker { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stop(mut self) -> String {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = self.log();
        let _ = std::fs::remove_file(&self.log);
        log
    }
}

/// Polls `check` every 200 ms for up to 60 s.
async fn eventually<F, Fut>(what: &str, worker: &Worker, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {}",
            worker.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn records_lost_to_retention_stop_the_partition_and_a_reset_resumes_it_without_restart() {
    let env = TestEnv::new("gap_retention", false).await;
    create_topic(&env, "market_data").await;
    create_topic(&env, "news_article").await;
    produce_ticks(&env, "FIRST", 10, None);
    run_idle_ok(&env, &[]);
    assert_eq!(stored(&env, "market_data").await, Some(10));
    // 20 more, of which retention removes 15 before the worker sees them: 10..24 are lost.
    produce_ticks(&env, "LATER", 20, None);
    delete_records(&env, "market_data", 25).await;

    let worker = Worker::spawn(&env, "retention");
    eventually("the gap error", &worker, || async {
        worker.log().contains("Stopped a partition")
    })
    .await;
    let log = worker.log();
    let line = log
        .lines()
        .find(|l| l.contains("Stopped a partition"))
        .unwrap();
    for want in ["stored=10", "broker_low=25", "broker_high=30", "status=gap"] {
        assert!(line.contains(want), "{want:?} in {line}");
    }
    // The other topic is consumed meanwhile; this one is not.
    produce_articles(&env, "r", 4);
    eventually("the other topic", &worker, || async {
        env.count("SELECT count(*) FROM news_article").await == 4
    })
    .await;
    assert_eq!(ticks(&env, "LATER").await, 0);
    assert_eq!(stored(&env, "market_data").await, Some(10));
    let listed = offsets(&env, &["list", "--topic", "market_data"]);
    assert!(
        listed
            .lines()
            .any(|l| l.contains(&env.topic("market_data")) && l.contains(" gap ")),
        "{listed}"
    );

    // The operator accepts the loss; the running worker resumes by itself.
    offsets(&env, &["reset", "--topic", "market_data", "--to-earliest"]);
    eventually("the resumed partition", &worker, || async {
        ticks(&env, "LATER").await == 5 && stored(&env, "market_data").await == Some(30)
    })
    .await;
    let log = worker.stop();
    assert!(log.contains("Resumed a partition"), "{log}");
    assert_eq!(ticks(&env, "FIRST").await, 10);
    let a = audit(&env).await;
    assert_eq!((a[0].0, a[0].1, a[0].2, a[0].3), (Some(10), 25, 25, 30));
}

#[tokio::test(flavor = "multi_thread")]
async fn offsets_list_and_reset_to_offset_time_and_dry_run() {
    let env = TestEnv::new("offsets_cmd", false).await;
    create_topic(&env, "market_data").await;
    create_topic(&env, "news_article").await;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let hour_ago = now_ms - 3_600_000;
    let ten_min_ago = now_ms - 600_000;
    produce_ticks(&env, "EARLY", 10, Some(hour_ago));
    produce_ticks(&env, "LATE", 10, Some(ten_min_ago));
    let out = env
        .esurio(&["run", "--exit-when-idle", "3s"])
        .env("ESURIO__KAFKA__TOPICS", "market_data")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A partition the broker has and the database does not.
    produce_articles(&env, "l", 1);

    let listed = offsets(&env, &["list"]);
    let row = |topic: &str| -> Vec<String> {
        listed
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(topic))
            .unwrap_or_else(|| panic!("no line for {topic}: {listed}"))
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    assert!(listed.starts_with("GROUP"), "{listed}");
    assert_eq!(
        row(&env.topic("market_data"))[..8],
        [
            env.group.as_str(),
            &env.topic("market_data"),
            "0",
            "20",
            "0",
            "20",
            "0",
            "ok"
        ]
    );
    assert_eq!(
        row(&env.topic("news_article"))[2..8],
        ["0", "-", "0", "1", "1", "new"]
    );

    let dry = offsets(
        &env,
        &[
            "reset",
            "--topic",
            "market_data",
            "--to-offset",
            "5",
            "--dry-run",
        ],
    );
    assert!(dry.contains("dry run"), "{dry}");
    assert_eq!(stored(&env, "market_data").await, Some(20));
    assert!(audit(&env).await.is_empty());

    let done = offsets(
        &env,
        &[
            "reset",
            "--topic",
            "market_data",
            "--partition",
            "0",
            "--to-offset",
            "5",
        ],
    );
    assert!(done.contains("re-read 15"), "{done}");
    assert_eq!(stored(&env, "market_data").await, Some(5));
    let listed = offsets(&env, &["list", "--topic", "market_data"]);
    assert!(
        listed
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()[3..8]
                == ["5", "0", "20", "15", "behind"]),
        "{listed}"
    );

    // Outside the broker's range: refused, nothing changed.
    let out = env
        .esurio(&[
            "offsets",
            "reset",
            "--topic",
            "market_data",
            "--to-offset",
            "21",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("outside"),
        "{out:?}"
    );
    assert_eq!(stored(&env, "market_data").await, Some(5));

    // By time: the first record at or after it; past the last record, the end.
    offsets(
        &env,
        &["reset", "--topic", "market_data", "--to-time", "30m"],
    );
    assert_eq!(stored(&env, "market_data").await, Some(10));
    let two_hours_ago = (chrono::Utc::now() - chrono::Duration::hours(2)).to_rfc3339();
    offsets(
        &env,
        &[
            "reset",
            "--topic",
            "market_data",
            "--to-time",
            &two_hours_ago,
        ],
    );
    assert_eq!(stored(&env, "market_data").await, Some(0));
    offsets(
        &env,
        &["reset", "--topic", "market_data", "--to-time", "1m"],
    );
    assert_eq!(stored(&env, "market_data").await, Some(20));
    // The same again changes nothing and records nothing.
    let same = offsets(&env, &["reset", "--topic", "market_data", "--to-latest"]);
    assert!(same.contains("unchanged"), "{same}");

    let hows: Vec<(Option<i64>, i64, String)> = audit(&env)
        .await
        .into_iter()
        .map(|a| (a.0, a.1, a.4))
        .collect();
    assert_eq!(
        hows,
        [
            (Some(20), 5, "manual:offset".to_owned()),
            (Some(5), 10, "manual:time".to_owned()),
            (Some(10), 0, "manual:time".to_owned()),
            (Some(0), 20, "manual:time".to_owned()),
        ]
    );
    // A partition without a stored offset gets a row.
    offsets(&env, &["reset", "--topic", "news_article", "--to-latest"]);
    assert_eq!(stored(&env, "news_article").await, Some(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_while_the_worker_runs_is_picked_up() {
    let env = TestEnv::new("offsets_live", false).await;
    create_topic(&env, "market_data").await;
    create_topic(&env, "news_article").await;
    produce_ticks(&env, "LIVE", 20, None);
    let worker = Worker::spawn(&env, "live");
    eventually("the first ingest", &worker, || async {
        stored(&env, "market_data").await == Some(20)
    })
    .await;

    // An idle partition: no new record will fail a compare-and-set, the periodic check must see it.
    offsets(
        &env,
        &["reset", "--topic", "market_data", "--to-offset", "5"],
    );
    let reread = || async {
        env.db()
            .await
            .query_one(
                "SELECT count(*) FROM ingest_batches WHERE topic = $1 AND first_offset = 5",
                &[&env.topic("market_data")],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
            > 0
    };
    eventually("the re-read from offset 5", &worker, || async {
        reread().await && stored(&env, "market_data").await == Some(20)
    })
    .await;
    assert_eq!(ticks(&env, "LIVE").await, 20, "re-read rows are duplicates");

    // With new records arriving: whichever comes first, the next batch's failed compare-and-set or
    // the periodic check, the worker seeks to 10 and nothing is lost or doubled.
    offsets(
        &env,
        &["reset", "--topic", "market_data", "--to-offset", "10"],
    );
    produce_ticks(&env, "MORE", 5, None);
    eventually("the new records", &worker, || async {
        ticks(&env, "MORE").await == 5 && stored(&env, "market_data").await == Some(25)
    })
    .await;
    let log = worker.stop();
    assert_eq!(ticks(&env, "LIVE").await, 20);
    assert!(!log.contains("Stopped a partition"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_topic_recreated_under_a_running_worker_stops_its_partition() {
    let env = TestEnv::new("gap_live", false).await;
    create_topic(&env, "market_data").await;
    create_topic(&env, "news_article").await;
    produce_ticks(&env, "OLD", 30, None);
    let worker = Worker::spawn(&env, "gap_live");
    eventually("the first ingest", &worker, || async {
        stored(&env, "market_data").await == Some(30)
    })
    .await;
    recreate_topic(&env, "market_data").await;
    produce_ticks(&env, "NEW", 12, None);
    eventually("the gap error", &worker, || async {
        worker.log().contains("Stopped a partition")
    })
    .await;
    assert_eq!(ticks(&env, "NEW").await, 0);
    assert_eq!(stored(&env, "market_data").await, Some(30));
    offsets(&env, &["reset", "--topic", "market_data", "--to-earliest"]);
    eventually("the new records", &worker, || async {
        ticks(&env, "NEW").await == 12 && stored(&env, "market_data").await == Some(12)
    })
    .await;
    let log = worker.stop();
    let line = log
        .lines()
        .find(|l| l.contains("Stopped a partition"))
        .unwrap();
    assert!(
        line.contains("status=recreated") && line.contains("stored=30"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recreated_topic_quarantines_its_own_bad_records_at_reused_offsets() {
    let env = TestEnv::new("offsets_quarantine", false).await;
    create_topic(&env, "market_data").await;
    env.produce(
        "market_data",
        0,
        &[b"{not json".to_vec(), b"{x".to_vec(), b"{y".to_vec()],
    );
    run_idle_ok(&env, &[]);
    // Fewer records than before, so the stored offset (3) is above the new end: detectable.
    recreate_topic(&env, "market_data").await;
    // Offset 0 again, another bad record: it must get its own quarantine row.
    env.produce("market_data", 0, &[b"{also not json".to_vec()]);
    run_idle_ok(
        &env,
        &[("ESURIO__KAFKA__ON_OFFSET_GAP", "reset_to_earliest")],
    );
    let db = env.db().await;
    let rows: Vec<(i64, Vec<u8>)> = db
        .query(
            "SELECT source_offset, payload FROM quarantine WHERE source_offset = 0 ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        rows,
        vec![(0, b"{not json".to_vec()), (0, b"{also not json".to_vec())]
    );
    // The same record read again (a reset to earliest) is still quarantined once.
    offsets(
        &env,
        &[
            "reset",
            "--topic",
            "market_data",
            "--to-earliest",
            "--reason",
            "replay",
        ],
    );
    run_idle_ok(&env, &[]);
    assert_eq!(env.count("SELECT count(*) FROM quarantine").await, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn records_lost_to_retention_while_the_worker_lags_stop_the_partition() {
    let env = TestEnv::new("gap_lagging", false).await;
    create_topic(&env, "market_data").await;
    create_topic(&env, "news_article").await;
    produce_ticks(&env, "LAG", 300, None);
    // The database is slower than Kafka: market_data is locked, so the first batches wait and the
    // partition is paused (librdkafka drops what it prefetched) with its position far below 300.
    let locker = env.db().await;
    locker
        .batch_execute("BEGIN; LOCK TABLE market_data IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let worker = Worker::spawn_with(
        &env,
        "lagging",
        &[
            ("ESURIO__BATCH__MAX_RECORDS", "10"),
            ("ESURIO__BATCH__QUEUE_DEPTH", "1"),
        ],
    );
    eventually("the worker to fall behind", &worker, || async {
        worker
            .log()
            .lines()
            .any(|l| l.contains("Assigned a partition") && l.contains("market_data"))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Retention removes records the worker has not read yet; then the database catches up.
    delete_records(&env, "market_data", 250).await;
    locker.batch_execute("COMMIT").await.unwrap();
    eventually("the gap error", &worker, || async {
        worker.log().contains("status=gap")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // What was read before the gap is written; nothing after it, so the gap is not skipped.
    assert_eq!(
        env.count("SELECT count(*) FROM market_data WHERE source_offset >= 250")
            .await,
        0,
        "{}",
        worker.log()
    );
    let written = env.count("SELECT count(*) FROM market_data").await;
    assert!(written > 0 && written < 250, "{written}");
    assert_eq!(stored(&env, "market_data").await, Some(written));
    worker.stop();
}
