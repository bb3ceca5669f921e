//! The dead-letter relay against the real broker: records too large for their dead-letter topic
//! are published cut, with headers that say so; every quarantined record is published exactly
//! once; a record that can never be published holds up nothing; the dead-letter topics are
//! created by `esurio run`, as brokers do not auto-create topics.

use crate::helpers::{create_topic, produced, TestEnv};
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A dead-letter message as read back.
type Dead = crate::helpers::Message;

fn read_all(env: &TestEnv, topic: &str) -> Vec<Dead> {
    env.read_topic(topic)
}

fn partitions_of(env: &TestEnv, topic: &str) -> usize {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &env.brokers)
        .create()
        .unwrap();
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    md.topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| t.partitions().len())
        .sum()
}

fn tick(i: usize) -> Vec<u8> {
    let ts = chrono::Utc::now() - chrono::Duration::seconds(60)
        + chrono::Duration::milliseconds(i as i64);
    serde_json::to_vec(&serde_json::json!({
        "symbol": "DLQ", "exchange": "XNYS", "ts": ts.to_rfc3339(), "price": 10.0 + i as f64,
        "volume": 5, "currency": "USD"
    }))
    .unwrap()
}

/// A market tick without a price: quarantined by validation, `size` bytes long.
fn priceless(i: usize, size: usize) -> Vec<u8> {
    let mut v = serde_json::to_vec(&serde_json::json!({
        "symbol": "DLQ", "exchange": "XNYS", "ts": chrono::Utc::now().to_rfc3339(),
        "volume": i, "currency": "USD", "pad": ""
    }))
    .unwrap();
    if size > v.len() {
        let pad = size - v.len();
        let at = v.len() - 2; // inside the "pad" string
        v.splice(at..at, std::iter::repeat_n(b'p', pad));
    }
    v
}

/// Per quarantine row of `topic`: (id, payload).
async fn quarantine_of(env: &TestEnv, topic: &str) -> BTreeMap<i64, Vec<u8>> {
    env.db()
        .await
        .query(
            "SELECT id, coalesce(payload, '') FROM quarantine WHERE source_topic = $1",
            &[&topic],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Every quarantine row of `family` is in its dead-letter topic exactly once; returns the
/// messages by quarantine id.
async fn assert_published_once(env: &TestEnv, family: &str) -> BTreeMap<i64, Dead> {
    let topic = env.topic(family);
    let rows = quarantine_of(env, &topic).await;
    let dead = read_all(env, &format!("{topic}.dlq"));
    assert_eq!(
        dead.len(),
        rows.len(),
        "messages in {topic}.dlq vs quarantine rows"
    );
    let mut by_id = BTreeMap::new();
    for d in dead {
        let id: i64 = d.header("esurio.quarantine.id").unwrap().parse().unwrap();
        assert!(by_id.insert(id, d).is_none(), "quarantine row {id} twice");
    }
    assert_eq!(
        by_id.keys().collect::<BTreeSet<_>>(),
        rows.keys().collect::<BTreeSet<_>>()
    );
    let unpublished = env
        .count(&format!(
            "SELECT count(*) FROM quarantine WHERE source_topic = '{topic}' AND dlq_published_at IS NULL"
        ))
        .await;
    assert_eq!(unpublished, 0, "unpublished rows of {topic}");
    by_id
}

#[tokio::test(flavor = "multi_thread")]
async fn records_too_large_for_the_dead_letter_topic_are_published_cut_and_the_rest_exactly_once() {
    let env = TestEnv::new("dlq_cut", false).await;
    // market_data: its dead-letter topic is created by the worker with the broker's defaults
    // (1 MiB); the relay cuts to kafka.dlq_max_message_bytes (1,000,000) before sending.
    let mut market = Vec::new();
    for i in 0..300 {
        market.push(match i {
            3 => vec![b'{'; 3 * 1024 * 1024], // too_large: over decode.max_record_bytes
            7 => priceless(i, 1_040_000),     // under it, but not with the headers
            i if i % 10 == 5 => priceless(i, 200),
            i => tick(i),
        });
    }
    env.produce("market_data", 0, &market);
    // news_article: its dead-letter topic exists already with a 64 KiB limit, which the relay
    // learns from the broker's refusal.
    create_topic(
        &env.brokers,
        &format!("{}.dlq", env.topic("news_article")),
        1,
        &[("max.message.bytes", "65536")],
    );
    let now = chrono::Utc::now().to_rfc3339();
    let articles: Vec<Vec<u8>> = (0..40)
        .map(|i| {
            // No title: quarantined. Every fourth is 200 kB.
            let body = if i % 4 == 0 {
                "b".repeat(200_000)
            } else {
                "b".into()
            };
            serde_json::to_vec(&serde_json::json!({
                "url": format!("https://example.com/{}/{i}", env.prefix), "source": "S",
                "published_at": now, "body": body
            }))
            .unwrap()
        })
        .collect();
    env.produce("news_article", 0, &articles);

    let out = env.run_until_idle_with(&[("ESURIO__KAFKA__TOPICS", "market_data,news_article")]);
    let log = String::from_utf8_lossy(&out.stderr);

    assert_eq!(
        env.count("SELECT count(*) FROM market_data").await,
        300 - 32
    );
    let market_dead = assert_published_once(&env, "market_data").await;
    assert_eq!(market_dead.len(), 32);
    let rows = quarantine_of(&env, &env.topic("market_data")).await;
    let mut cut = 0;
    for (id, d) in &market_dead {
        let original = &rows[id];
        assert!(d.header("esurio.message").unwrap().len() <= 1024);
        assert_eq!(
            d.header("esurio.source.topic"),
            Some(&*env.topic("market_data"))
        );
        if original.len() > 900_000 {
            cut += 1;
            assert_eq!(d.header("esurio.truncated"), Some("true"), "row {id}");
            assert_eq!(
                d.header("esurio.original.size"),
                Some(&*original.len().to_string())
            );
            assert!(d.payload.len() < 1_000_000 && d.payload.len() > 990_000);
            assert_eq!(&original[..d.payload.len()], &d.payload[..], "a prefix");
        } else {
            assert_eq!(d.header("esurio.truncated"), None);
            assert_eq!(&d.payload, original);
        }
    }
    assert_eq!(cut, 2, "the 3 MiB record and the 1,040,000-byte one");
    let too_large = market_dead
        .values()
        .filter(|d| d.header("esurio.reason") == Some("too_large"))
        .count();
    assert_eq!(too_large, 1);

    let news_dead = assert_published_once(&env, "news_article").await;
    assert_eq!(news_dead.len(), 40);
    let news_cut: Vec<&Dead> = news_dead
        .values()
        .filter(|d| d.header("esurio.truncated").is_some())
        .collect();
    assert_eq!(news_cut.len(), 10, "the 200 kB articles");
    for d in news_cut {
        assert!(d.payload.len() < 65_536 && d.payload.len() > 60_000);
        assert!(
            d.header("esurio.original.size")
                .unwrap()
                .parse::<usize>()
                .unwrap()
                > 200_000
        );
        assert!(d.key.is_none());
    }
    assert!(
        log.contains("rejected a record as too large"),
        "the relay says it learned the topic's limit"
    );
}

/// A worker that does not outlive a failed test.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_that_can_never_be_published_holds_up_nothing() {
    let env = TestEnv::new("dlq_stuck", false).await;
    // A compacted dead-letter topic refuses records without a key (INVALID_RECORD): a refusal
    // no retry fixes. Those come first; keyed ones follow in the same batches.
    create_topic(
        &env.brokers,
        &format!("{}.dlq", env.topic("market_data")),
        1,
        &[("cleanup.policy", "compact")],
    );
    let mut records: Vec<crate::helpers::Keyed<'_>> = Vec::new();
    for i in 0..3 {
        records.push((None, Some(priceless(i, 100))));
    }
    for i in 3..203 {
        let p = if i % 4 == 0 {
            priceless(i, 100)
        } else {
            tick(i)
        };
        records.push((Some(b"k".as_slice()), Some(p)));
    }
    env.produce_keyed("market_data", 1, &records);
    // The relay keeps trying the keyless rows while the worker runs: let it run a while.
    let log_path = std::env::temp_dir().join(format!("{}.log", env.group));
    let mut worker = KillOnDrop(Some(
        env.esurio(&["run"])
            .env("ESURIO__KAFKA__TOPICS", "market_data")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap(),
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let published = env
            .count("SELECT count(*) FROM quarantine WHERE dlq_published_at IS NOT NULL")
            .await;
        if published == 50 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{published} of 50 keyed quarantined records published"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    let worker = worker.0.take().unwrap();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let out = crate::helpers::wait_with_timeout(worker, Duration::from_secs(60));
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(out.status.success(), "worker exit {}: {log}", out.status);
    let _ = std::fs::remove_file(&log_path);

    assert_eq!(env.count("SELECT count(*) FROM market_data").await, 150);
    assert_eq!(env.count("SELECT count(*) FROM quarantine").await, 53);
    let stuck: Vec<i64> = env
        .db()
        .await
        .query(
            "SELECT source_offset FROM quarantine WHERE dlq_published_at IS NULL ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        stuck,
        vec![0, 1, 2],
        "only the keyless records stay unpublished"
    );
    let dead = read_all(&env, &format!("{}.dlq", env.topic("market_data")));
    assert_eq!(dead.len(), 50, "every keyed record once, nothing repeated");
    let ids: BTreeSet<&str> = dead
        .iter()
        .map(|d| d.header("esurio.quarantine.id").unwrap())
        .collect();
    assert_eq!(ids.len(), 50);
    // Logged clearly, and not retried in a loop: one error line for the three, in ~6+ seconds.
    let lines = log
        .lines()
        .filter(|l| l.contains("cannot be published to their dead-letter topic"))
        .count();
    assert!(lines >= 1, "the refusal is logged: {log}");
    assert!(
        log.contains("InvalidRecord"),
        "the broker's reason is logged: {log}"
    );
    assert!(lines <= 2, "retried in a loop: {lines} error lines");
    // The keyed records, refused at first with their keyless batch neighbours, were sent again
    // alone at once rather than after a backoff.
    assert!(
        !log.contains("they will be retried"),
        "innocent neighbours waited for a retry: {log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letter_topics_are_created_at_start_with_the_configured_partitions() {
    let env = TestEnv::new("dlq_create", false).await;
    // One exists already (with 1 partition): left as it is, and no error.
    let existing = format!("{}.dlq", env.topic("news_article"));
    create_topic(&env.brokers, &existing, 1, &[]);
    let topics = [
        ("ESURIO__KAFKA__TOPICS", "market_data,news_article,signal"),
        ("ESURIO__KAFKA__DLQ_PARTITIONS", "3"),
    ];
    env.run_until_idle_with(&topics);
    assert_eq!(
        partitions_of(&env, &format!("{}.dlq", env.topic("market_data"))),
        3
    );
    assert_eq!(
        partitions_of(&env, &format!("{}.dlq", env.topic("signal"))),
        3
    );
    assert_eq!(partitions_of(&env, &existing), 1);

    // A replication factor the cluster cannot give: a clear start-up error, before consuming.
    let out = env
        .esurio(&["run", "--exit-when-idle", "1s"])
        .env("ESURIO__KAFKA__TOPICS", "crypto_data")
        .env("ESURIO__KAFKA__DLQ_REPLICATION_FACTOR", "2")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot create the dead-letter topics")
            && err.contains(&format!("{}.dlq", env.topic("crypto_data")))
            && err.contains("kafka.dlq_replication_factor = 2"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn simulate_and_run_work_on_a_broker_that_creates_no_topics() {
    let env = TestEnv::new("dlq_noauto", true).await;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &env.brokers)
        .create()
        .unwrap();
    let broker = admin
        .describe_configs([&ResourceSpecifier::Broker(1)], &AdminOptions::new())
        .await
        .unwrap();
    let auto = broker[0]
        .as_ref()
        .unwrap()
        .get("auto.create.topics.enable")
        .and_then(|e| e.value.clone());
    assert_eq!(
        auto.as_deref(),
        Some("false"),
        "the test broker must run as production does (scripts/stack restart kafka)"
    );
    let summary = env.simulate(&[
        "--records",
        "150",
        "--invalid-ratio",
        "0.2",
        "--format",
        "mixed",
        "--seed",
        "5",
    ]);
    let invalid = summary["totals"]["invalid"].as_i64().unwrap();
    env.run_until_idle_with(&[("ESURIO__KAFKA__DLQ_PARTITIONS", "2")]);
    env.assert_exact(&summary["tables"], invalid, &produced(&summary))
        .await;
    for family in summary["topics"].as_object().unwrap().keys() {
        let dlq = format!("{}.dlq", env.topic(family));
        assert_eq!(
            partitions_of(&env, &dlq),
            2,
            "{dlq} was created by the worker"
        );
        let rows = env
            .count(&format!(
                "SELECT count(*) FROM quarantine WHERE source_topic = '{}'",
                env.topic(family)
            ))
            .await;
        assert_eq!(
            env.topic_size(&dlq),
            rows,
            "{dlq}: one message per quarantined record"
        );
    }
    assert_eq!(
        env.count("SELECT count(*) FROM quarantine WHERE dlq_published_at IS NULL")
            .await,
        0
    );
}
