//! End to end: simulate every topic, run until idle, check exact counts; then the database's own
//! rejections and the dead-letter topics.

use crate::helpers::{produced, TestEnv};
use serde_json::Value;

/// The outcome counts compared with `ingest_batches` (see docs: which are deterministic).
const EXACT_OUTCOMES: &[&str] = &["duplicates", "conflicting", "revised", "superseded"];

#[tokio::test(flavor = "multi_thread")]
async fn every_topic_lands_exactly_and_a_rerun_adds_no_rows() {
    let env = TestEnv::new("exact", true).await;
    let args = [
        "--records",
        "300",
        "--invalid-ratio",
        "0.15",
        "--realism",
        "0.3",
        "--format",
        "mixed",
        "--seed",
        "7",
    ];
    let summary = env.simulate(&args);
    let invalid = summary["totals"]["invalid"].as_i64().unwrap();
    assert!(invalid as f64 >= 0.1 * summary["totals"]["produced"].as_f64().unwrap());
    env.run_until_idle();
    env.assert_exact(&summary["tables"], invalid, &produced(&summary))
        .await;
    // Spider realism: the history tables and the outcome counts are exactly the simulator's.
    assert!(summary["totals"]["conflicting"].as_i64().unwrap() > 0);
    assert!(summary["totals"]["revised"].as_i64().unwrap() > 0);
    assert!(summary["totals"]["superseded"].as_i64().unwrap() > 0);
    let mismatches = env
        .history_and_outcome_mismatches(&summary, 1, EXACT_OUTCOMES)
        .await;
    assert!(mismatches.is_empty(), "{mismatches:#?}");

    // Every topic's quarantine matches the simulator's reasons, reason by reason.
    let db = env.db().await;
    for (family, t) in summary["topics"].as_object().unwrap() {
        let rows = db
            .query(
                "SELECT reason, count(*) FROM quarantine WHERE source_topic = $1 GROUP BY reason",
                &[&env.topic(family)],
            )
            .await
            .unwrap();
        let got: std::collections::BTreeMap<String, i64> =
            rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let want: std::collections::BTreeMap<String, i64> = t["invalid_by_reason"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_i64().unwrap()))
            .filter(|(_, v)| *v > 0)
            .collect();
        assert_eq!(got, want, "quarantine reasons of {family}");
    }

    // Quarantined records reached their dead-letter topics, with the reason in headers.
    assert_eq!(
        env.count("SELECT count(*) FROM quarantine WHERE dlq_published_at IS NULL")
            .await,
        0
    );
    let dlq_total: i64 = summary["topics"]
        .as_object()
        .unwrap()
        .keys()
        .map(|f| env.topic_size(&format!("{}.dlq", env.topic(f))))
        .sum();
    assert_eq!(dlq_total, invalid);

    // The same seed again: every valid record is a duplicate, every invalid one is quarantined at
    // its new offset.
    let again = env.simulate(&args);
    assert_eq!(again["tables"], summary["tables"]);
    env.run_until_idle();
    let doubled: std::collections::BTreeMap<String, i64> = produced(&summary)
        .into_iter()
        .map(|(k, v)| (k, 2 * v))
        .collect();
    env.assert_exact(&summary["tables"], 2 * invalid, &doubled)
        .await;
    let mismatches = env
        .history_and_outcome_mismatches(&summary, 2, EXACT_OUTCOMES)
        .await;
    assert!(mismatches.is_empty(), "after the rerun: {mismatches:#?}");
    let dups = env
        .count("SELECT coalesce(sum(duplicates), 0)::bigint FROM ingest_batches")
        .await;
    assert!(dups > 0, "duplicates were counted");
}

fn tick(symbol: &str, i: usize) -> Vec<u8> {
    let ts = chrono::Utc::now() - chrono::Duration::seconds(60)
        + chrono::Duration::milliseconds(i as i64);
    serde_json::to_vec(&serde_json::json!({
        "symbol": symbol, "exchange": "XNYS", "ts": ts.to_rfc3339(), "price": 10.0 + i as f64,
        "volume": 5, "currency": "USD"
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_the_database_rejects_are_quarantined_alone() {
    let env = TestEnv::new("dbreject", false).await;
    let db = env.db().await;
    // Constraints the validator does not know about: only the database can reject these rows.
    db.batch_execute(
        "ALTER TABLE market_data ADD CONSTRAINT it_no_badsym CHECK (symbol <> 'BADSYM');
         ALTER TABLE news_entity ADD CONSTRAINT it_no_forbidden CHECK (name <> 'Forbidden');",
    )
    .await
    .unwrap();
    let mut ticks = Vec::new();
    for i in 0..200 {
        ticks.push(tick(if i % 67 == 5 { "BADSYM" } else { "GOOD" }, i));
    }
    env.produce("market_data", 0, &ticks);
    let now = chrono::Utc::now().to_rfc3339();
    let article = |n: usize, entity: &str| -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "url": format!("https://example.com/{}/{n}", env.prefix), "title": "T", "source": "S",
            "published_at": now,
            "entities": [{"name": "Acme", "entity_type": "organization"},
                         {"name": entity, "entity_type": "person"}]
        }))
        .unwrap()
    };
    env.produce(
        "news_article",
        0,
        &[
            article(1, "Ann"),
            article(2, "Forbidden"),
            article(3, "Bob"),
        ],
    );
    let out = env
        .esurio(&["run", "--exit-when-idle", "3s"])
        .env("ESURIO__KAFKA__TOPICS", "market_data,news_article")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad = env.count("SELECT count(*) FROM quarantine WHERE reason = 'constraint:it_no_badsym' AND stage = 'database'").await;
    assert_eq!(bad, 3);
    assert_eq!(env.count("SELECT count(*) FROM market_data").await, 197);
    assert_eq!(
        env.count("SELECT count(*) FROM market_data WHERE symbol = 'BADSYM'")
            .await,
        0
    );
    // The article whose entity was rejected is quarantined whole: no orphan rows either way.
    assert_eq!(env.count("SELECT count(*) FROM news_article").await, 2);
    assert_eq!(env.count("SELECT count(*) FROM news_entity").await, 4);
    let r: Value = db
        .query_one(
            "SELECT json_build_object('reason', reason, 'offset', source_offset, 'payload', convert_from(payload, 'UTF8')) FROM quarantine WHERE reason = 'constraint:it_no_forbidden'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(r["offset"], 1);
    assert!(
        r["payload"].as_str().unwrap().contains("Forbidden"),
        "the raw record is kept"
    );
    // Stored offsets passed every record, good or bad.
    assert_eq!(
        env.count("SELECT sum(next_offset)::bigint FROM consumed_offsets")
            .await,
        203
    );
}
