//! The ML write-back loop (docs/RECORDS.md): results with their producer and inputs, their
//! references checked against the database, sentiment updates with their history, and tombstones
//! that delete results into history. Every outcome is counted exactly: rows, history rows,
//! quarantine rows by reason and stage, and the outcome columns of `ingest_batches`.

use crate::helpers::{terminate, TestEnv};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// Short: these tests produce the referenced rows first, so only the unknown ones wait.
const WAIT: (&str, &str) = ("ESURIO__DATABASE__REFERENCE_WAIT", "1s");

/// A Kafka record: its key and its value (`None`: a tombstone).
type Record<'a> = crate::helpers::Keyed<'a>;

/// Produces records in order to partition 0 of a family's topic.
fn produce(env: &TestEnv, family: &str, records: &[Record<'_>]) {
    env.produce_keyed(family, 4, records);
}

fn value(v: Value) -> Option<Vec<u8>> {
    Some(serde_json::to_vec(&v).unwrap())
}

fn ago(secs: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::seconds(secs)).to_rfc3339()
}

/// Runs the worker on `topics` until idle.
fn run(env: &TestEnv, topics: &str) {
    env.run_until_idle_with(&[("ESURIO__KAFKA__TOPICS", topics), WAIT]);
}

async fn quarantine(env: &TestEnv, family: &str) -> BTreeMap<String, i64> {
    env.db()
        .await
        .query(
            "SELECT stage || ':' || reason, count(*) FROM quarantine WHERE source_topic = $1 GROUP BY 1",
            &[&env.topic(family)],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// `ingest_batches` totals of a topic: (records, duplicates, quarantined, updated, deleted, revised).
async fn outcomes(env: &TestEnv, family: &str) -> (i64, i64, i64, i64, i64, i64) {
    let r = env
        .db()
        .await
        .query_one(
            "SELECT coalesce(sum(records), 0)::bigint, coalesce(sum(duplicates), 0)::bigint,
                    coalesce(sum(quarantined), 0)::bigint, coalesce(sum(updated), 0)::bigint,
                    coalesce(sum(deleted), 0)::bigint, coalesce(sum(revised), 0)::bigint
               FROM ingest_batches WHERE topic = $1",
            &[&env.topic(family)],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5))
}

fn tick(symbol: &str, i: i64) -> Option<Vec<u8>> {
    value(
        json!({"symbol": symbol, "exchange": "XNYS", "ts": ago(600 - i), "price": 10.0 + i as f64,
                 "volume": 5, "currency": "USD"}),
    )
}

fn strategy(id: &str, version: i64) -> Option<Vec<u8>> {
    value(
        json!({"strategy_id": id, "version": version, "name": "Mean reversion",
                 "parameters": {"lookback": 20}, "created_at": ago(500),
                 "model": "optimizer", "model_version": "3", "inputs": ["batch:1"]}),
    )
}

/// The time of every test signal: an hour ago, whole seconds.
fn signal_ts() -> chrono::DateTime<chrono::Utc> {
    let t = chrono::Utc::now() - chrono::Duration::hours(1);
    chrono::DateTime::from_timestamp(t.timestamp(), 0).unwrap()
}

fn signal(id: &str, version: i64, symbol: &str) -> Option<Vec<u8>> {
    signal_at(id, version, symbol, signal_ts())
}

fn signal_at(
    id: &str,
    version: i64,
    symbol: &str,
    ts: chrono::DateTime<chrono::Utc>,
) -> Option<Vec<u8>> {
    value(
        json!({"strategy_id": id, "strategy_version": version, "symbol": symbol,
                 "ts": ts.to_rfc3339(), "direction": "long", "strength": 0.5,
                 "model": "signals", "model_version": "1", "inputs": ["market_data:0:1:1"]}),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn results_record_their_producer_and_unknown_references_are_quarantined_alone() {
    let env = TestEnv::new("wb_results", false).await;
    produce(
        &env,
        "market_data",
        &[(None, tick("AAPL", 0)), (None, tick("AAPL", 1))],
    );
    produce(&env, "strategy", &[(None, strategy("mr", 1))]);
    run(&env, "market_data,strategy");

    let feature = |entity: &str, inputs: Value| {
        value(
            json!({"entity": entity, "name": "sma_20", "ts": ago(100), "value": 10.5,
                     "model_version": "1", "model": "ref-regime", "inputs": inputs}),
        )
    };
    produce(
        &env,
        "feature",
        &[
            (
                None,
                feature(
                    "aapl",
                    json!([
                        "market_data:0:1:1",
                        "market_data:0:0:1",
                        "market_data:0:1:1"
                    ]),
                ),
            ),
            (None, feature("ZZZZ", json!([]))),
            (None, feature("AAPL", json!(["market_data:0"]))),
        ],
    );
    let insight = |id: &str, symbol: Option<&str>, version: &str, at: i64| {
        value(
            json!({"insight_id": id, "symbol": symbol, "kind": "trend", "title": "AAPL uptrend",
                     "confidence": 0.7, "generated_at": ago(at), "model": "ref-regime",
                     "model_version": version, "inputs": ["market_data:0:1:1"]}),
        )
    };
    produce(
        &env,
        "insight",
        &[
            (None, insight("i-1", Some("AAPL"), "1", 300)),
            (None, insight("i-2", Some("NOPE"), "1", 300)),
            (None, insight("i-3", None, "1", 300)),
            // A revision of i-1: the first version goes to history with its producer.
            (None, insight("i-1", Some("AAPL"), "2", 200)),
        ],
    );
    produce(
        &env,
        "signal",
        &[
            (None, signal("mr", 1, "AAPL")),
            (None, signal("mr", 9, "AAPL")),
            (None, signal("mr", 1, "QQQQ")),
            (None, signal("nope", 1, "QQQQ")),
        ],
    );
    run(&env, "feature,insight,signal");

    let counts = env.table_counts().await;
    assert_eq!(counts["feature"], 1);
    assert_eq!(counts["insight"], 2);
    assert_eq!(counts["signal"], 1);
    let db = env.db().await;
    let r = db
        .query_one(
            "SELECT entity, model, model_version, inputs FROM feature",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "AAPL");
    assert_eq!(r.get::<_, Option<String>>(1).as_deref(), Some("ref-regime"));
    assert_eq!(
        r.get::<_, Vec<String>>(3),
        ["market_data:0:0:1", "market_data:0:1:1"],
        "inputs are a sorted set"
    );
    let r = db
        .query_one(
            "SELECT model_version, inputs FROM insight_history WHERE insight_id = 'i-1' AND history_reason = 'revised'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, Option<String>>(0).as_deref(), Some("1"));
    assert_eq!(r.get::<_, Vec<String>>(1), ["market_data:0:1:1"]);
    assert_eq!(
        env.count("SELECT count(*) FROM insight WHERE insight_id = 'i-1' AND model_version = '2'")
            .await,
        1
    );
    let r = db
        .query_one("SELECT model, model_version, inputs FROM strategy", &[])
        .await
        .unwrap();
    assert_eq!(r.get::<_, Option<String>>(0).as_deref(), Some("optimizer"));
    assert_eq!(r.get::<_, Vec<String>>(2), ["batch:1"]);

    assert_eq!(
        quarantine(&env, "feature").await,
        BTreeMap::from([
            ("database:unknown_entity".into(), 1),
            ("validate:invalid_input_ref".into(), 1)
        ])
    );
    assert_eq!(
        quarantine(&env, "insight").await,
        BTreeMap::from([("database:unknown_entity".into(), 1)])
    );
    assert_eq!(
        quarantine(&env, "signal").await,
        BTreeMap::from([
            ("database:unknown_entity".into(), 1),
            ("database:unknown_strategy".into(), 2)
        ])
    );
    // Exactly once: every record is accounted for, and the offsets passed them all.
    assert_eq!(outcomes(&env, "feature").await, (3, 0, 2, 0, 0, 0));
    assert_eq!(outcomes(&env, "insight").await, (4, 0, 1, 0, 0, 1));
    assert_eq!(outcomes(&env, "signal").await, (4, 0, 3, 0, 0, 0));
    for (f, n) in [("feature", 3), ("insight", 4), ("signal", 4)] {
        assert_eq!(env.stored_offset(f, 0).await, n, "{f}");
    }
    // The quarantined records keep their bytes (for the dead-letter topic and replays).
    assert_eq!(
        env.count("SELECT count(*) FROM quarantine WHERE payload IS NULL")
            .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signal_read_before_its_strategy_is_committed_waits_for_it() {
    let env = TestEnv::new("wb_wait", false).await;
    produce(&env, "market_data", &[(None, tick("AAPL", 0))]);
    run(&env, "market_data");
    produce(&env, "signal", &[(None, signal("late", 1, "AAPL"))]);
    env.create_topic("strategy", 4);
    let (child, log) = env.spawn_logged(
        &["run"],
        &[
            ("ESURIO__KAFKA__TOPICS", "strategy,signal"),
            ("ESURIO__DATABASE__REFERENCE_WAIT", "60s"),
        ],
    );
    // The signal's batch waits; the strategy arrives on its own topic meanwhile.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(env.count("SELECT count(*) FROM signal").await, 0);
    produce(&env, "strategy", &[(None, strategy("late", 1))]);
    let mut stored = 0;
    for _ in 0..60 {
        stored = env.count("SELECT count(*) FROM signal").await;
        if stored == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    terminate(child, Duration::from_secs(30));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    assert_eq!(
        stored, 1,
        "the signal was stored once its strategy was: {text}"
    );
    assert_eq!(env.count("SELECT count(*) FROM quarantine").await, 0);
}

fn article(env: &TestEnv, n: usize) -> Option<Vec<u8>> {
    value(
        json!({"url": format!("https://example.com/{}/{n}", env.prefix), "title": format!("T{n}"),
                 "source": "S", "published_at": ago(900)}),
    )
}

fn update(target: &str, key: &str, score: f64, at: &str, inputs: Value) -> Option<Vec<u8>> {
    value(
        json!({"target": target, "key": key, "sentiment_score": score, "model": "kw-sentiment",
                 "model_version": "1", "inputs": inputs, "computed_at": at}),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn sentiment_updates_apply_in_kafka_order_and_keep_what_they_replace() {
    let env = TestEnv::new("wb_updates", false).await;
    produce(
        &env,
        "news_article",
        &[(None, article(&env, 1)), (None, article(&env, 2))],
    );
    produce(
        &env,
        "social_post",
        &[(
            None,
            value(
                json!({"platform": "reddit", "post_id": "p1", "author": "a", "text": "b",
                         "posted_at": ago(900)}),
            ),
        )],
    );
    run(&env, "news_article,social_post");
    let db = env.db().await;
    let ingested = "SELECT string_agg(source_offset || '@' || ingested_at, ',' ORDER BY article_id) FROM news_article";
    let before: String = db.query_one(ingested, &[]).await.unwrap().get(0);
    let ids: Vec<String> = db
        .query(
            "SELECT article_id::text FROM news_article ORDER BY title",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let (a, b) = (ids[0].as_str(), ids[1].as_str());
    let p: String = db
        .query_one("SELECT post_uid::text FROM social_post", &[])
        .await
        .unwrap()
        .get(0);
    let (t1, t2, t3) = (ago(60), ago(50), ago(40));
    let ev = |o: i64| json!([format!("news_article:0:{o}:1")]);
    produce(
        &env,
        "sentiment_update",
        &[
            (None, update("news_article", a, 0.5, &t1, ev(0))), // 0 applied
            (None, update("news_article", a, 0.5, &t1, ev(0))), // 1 identical to the current: duplicate
            (None, update("news_article", a, -0.2, &t2, ev(0))), // 2 applied, 0 -> history
            (None, update("news_article", b, 0.1, &t1, ev(1))), // 3 applied (nothing to keep)
            (None, update("social_post", &p, 0.9, &t1, json!([]))), // 4 applied
            (
                None,
                update(
                    "news_article",
                    "6f1c7a52-1111-5222-8333-444455556666",
                    0.3,
                    &t1,
                    json!([]),
                ),
            ), // 5 unknown_target
            (None, update("social_post", a, 0.3, &t1, json!([]))), // 6 an article's key is no post: unknown_target
            (
                None,
                update("news_article", "not-a-uuid", 0.3, &t1, json!([])),
            ), // 7 invalid_format
            (
                None,
                update("news_article", a, 0.3, &t1, json!(["article 7"])),
            ), // 8 invalid_input_ref
            (None, update("news_article", a, 1.5, &t1, json!([]))), // 9 out_of_range
        ],
    );
    run(&env, "sentiment_update");
    let topic = env.topic("sentiment_update");
    let sentiment = |key: &str| {
        let db = &db;
        let key = key.to_owned();
        async move {
            let r = db
                .query_one(
                    "SELECT sentiment_score, sentiment_source, sentiment_inputs FROM news_article WHERE article_id = $1::text::uuid
                     UNION ALL SELECT sentiment_score, sentiment_source, sentiment_inputs FROM social_post WHERE post_uid = $1::text::uuid",
                    &[&key],
                )
                .await
                .unwrap();
            (
                r.get::<_, Option<f64>>(0),
                r.get::<_, Option<String>>(1),
                r.get::<_, Option<Vec<String>>>(2),
            )
        }
    };
    let (score, source, inputs) = sentiment(a).await;
    assert_eq!(score, Some(-0.2));
    assert_eq!(source, Some(format!("{topic}:0:2")));
    assert_eq!(inputs.unwrap(), ["news_article:0:0:1"]);
    assert_eq!(sentiment(b).await.0, Some(0.1));
    assert_eq!(sentiment(&p).await.0, Some(0.9));
    let hist = db
        .query(
            "SELECT key::text, sentiment_score, sentiment_source, replaced_by FROM sentiment_history ORDER BY replaced_at, sentiment_source",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(hist.len(), 1);
    assert_eq!(hist[0].get::<_, String>(0), a);
    assert_eq!(hist[0].get::<_, Option<f64>>(1), Some(0.5));
    assert_eq!(
        hist[0].get::<_, Option<String>>(2),
        Some(format!("{topic}:0:0"))
    );
    assert_eq!(hist[0].get::<_, String>(3), format!("{topic}:0:2"));
    assert_eq!(
        quarantine(&env, "sentiment_update").await,
        BTreeMap::from([
            ("database:unknown_target".into(), 2),
            ("validate:invalid_format".into(), 1),
            ("validate:invalid_input_ref".into(), 1),
            ("validate:out_of_range".into(), 1),
        ])
    );
    assert_eq!(
        outcomes(&env, "sentiment_update").await,
        (10, 1, 5, 4, 0, 0)
    );
    // The targets keep their own lineage and ingest time: they are still the spiders' records.
    let after: String = db.query_one(ingested, &[]).await.unwrap().get(0);
    assert_eq!(after, before);

    // A later batch: a replay of the current value is a duplicate; a new value replaces the
    // stored one, which goes to history.
    produce(
        &env,
        "sentiment_update",
        &[
            (None, update("news_article", a, -0.2, &t2, ev(0))), // 10 duplicate
            (None, update("news_article", a, 0.7, &t3, ev(0))), // 11 applied, the stored -0.2 -> history
        ],
    );
    run(&env, "sentiment_update");
    assert_eq!(sentiment(a).await.0, Some(0.7));
    let hist: Vec<(Option<f64>, String)> = db
        .query(
            "SELECT sentiment_score, replaced_by FROM sentiment_history WHERE key = $1::text::uuid ORDER BY replaced_at, replaced_by",
            &[&a],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        hist,
        [
            (Some(0.5), format!("{topic}:0:2")),
            (Some(-0.2), format!("{topic}:0:11"))
        ]
    );
    assert_eq!(
        outcomes(&env, "sentiment_update").await,
        (12, 2, 5, 5, 0, 0)
    );
    assert_eq!(env.stored_offset("sentiment_update", 0).await, 12);
}

#[tokio::test(flavor = "multi_thread")]
async fn tombstones_delete_results_into_history_once() {
    let env = TestEnv::new("wb_deletes", false).await;
    produce(&env, "market_data", &[(None, tick("AAPL", 0))]);
    produce(
        &env,
        "strategy",
        &[(None, strategy("mr", 1)), (None, strategy("mr", 2))],
    );
    run(&env, "market_data,strategy");
    let insight = value(
        json!({"insight_id": "i-1", "kind": "event", "title": "T", "confidence": 0.5,
                               "generated_at": ago(300), "model": "m"}),
    );
    produce(&env, "insight", &[(None, insight.clone())]);
    let ts = signal_ts();
    produce(&env, "signal", &[(None, signal_at("mr", 1, "AAPL", ts))]);
    run(&env, "insight,signal");
    assert_eq!(env.count("SELECT count(*) FROM insight").await, 1);
    assert_eq!(env.count("SELECT count(*) FROM signal").await, 1);

    // The same key, spelled otherwise: another time zone, a lower-case symbol.
    let signal_key = serde_json::to_vec(&json!({
        "strategy_id": "mr", "strategy_version": 1, "symbol": "aapl",
        "ts": ts.with_timezone(&chrono::FixedOffset::east_opt(3600).unwrap()).to_rfc3339(),
    }))
    .unwrap();
    produce(
        &env,
        "insight",
        &[
            (Some(&b"i-1"[..]), None),  // 1 deleted
            (Some(&b"i-1"[..]), None),  // 2 deleted before: duplicate
            (Some(&b"nope"[..]), None), // 3 never stored: unknown_target
            (None, None),               // 4 no key: unknown_target
            (None, insight), // 5 the deleted version again: a duplicate, not a resurrection
        ],
    );
    produce(
        &env,
        "strategy",
        &[
            (Some(&br#"{"strategy_id":"mr","version":2}"#[..]), None), // 2 deleted
            (Some(&b"mr"[..]), None), // 3 not a key: unknown_target
        ],
    );
    produce(
        &env,
        "signal",
        &[
            (Some(signal_key.as_slice()), None),    // 1 deleted
            (None, signal_at("mr", 1, "AAPL", ts)), // 2 the deleted version again: a duplicate
        ],
    );
    run(&env, "insight,strategy,signal");

    assert_eq!(env.count("SELECT count(*) FROM insight").await, 0);
    assert_eq!(env.count("SELECT count(*) FROM strategy").await, 1);
    assert_eq!(env.count("SELECT count(*) FROM signal").await, 0);
    for (t, n) in [("insight", 1), ("strategy", 1), ("signal", 1)] {
        assert_eq!(
            env.count(&format!(
                "SELECT count(*) FROM {t}_history WHERE history_reason = 'deleted'"
            ))
            .await,
            n,
            "{t}"
        );
    }
    // The deleted row keeps its own lineage in history.
    assert_eq!(
        env.count("SELECT count(*) FROM strategy_history WHERE version = 2 AND source_offset = 1")
            .await,
        1
    );
    assert_eq!(
        quarantine(&env, "insight").await,
        BTreeMap::from([
            ("database:unknown_target".into(), 1),
            ("validate:unknown_target".into(), 1)
        ])
    );
    assert_eq!(
        quarantine(&env, "strategy").await,
        BTreeMap::from([("validate:unknown_target".into(), 1)])
    );
    assert_eq!(quarantine(&env, "signal").await, BTreeMap::new());
    // (records, duplicates, quarantined, updated, deleted, revised)
    assert_eq!(outcomes(&env, "insight").await, (6, 2, 2, 0, 1, 0));
    assert_eq!(outcomes(&env, "strategy").await, (4, 0, 1, 0, 1, 0));
    assert_eq!(outcomes(&env, "signal").await, (3, 1, 0, 0, 1, 0));
    // A tombstone's quarantine row has a key and no payload, as it was read.
    assert_eq!(
        env.count(
            "SELECT count(*) FROM quarantine WHERE payload IS NULL AND reason = 'unknown_target'"
        )
        .await,
        3
    );
}
