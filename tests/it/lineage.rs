//! `esurio lineage` on what the round trip does not produce: a signal's strategy link, an input
//! whose row was revised since (found in history), a whole-batch input, an input that resolves to
//! nothing, and a row reached twice.

use crate::helpers::TestEnv;
use chrono::Utc;
use serde_json::{json, Value};

fn lineage(env: &TestEnv, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["lineage"];
    all.extend_from_slice(args);
    let out = env.esurio(&all).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every node of a JSON tree, depth first.
fn nodes(tree: &Value) -> Vec<&Value> {
    let mut out = vec![tree];
    for c in tree["children"].as_array().into_iter().flatten() {
        out.extend(nodes(c));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signal_leads_to_its_strategy_to_revised_inputs_and_to_batches() {
    let env = TestEnv::new("lineage", false).await;
    let now = Utc::now();
    let t0 = now - chrono::Duration::minutes(10);
    let ticks: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            serde_json::to_vec(&json!({
                "symbol": "AAA", "exchange": "XNYS",
                "ts": (t0 + chrono::Duration::seconds(i)).to_rfc3339(),
                "price": 10.0 + i as f64, "volume": 1, "currency": "USD"
            }))
            .unwrap()
        })
        .collect();
    env.produce("market_data", 0, &ticks);
    env.produce(
        "strategy",
        0,
        &[serde_json::to_vec(&json!({
            "strategy_id": "mom", "version": 1, "name": "Momentum", "parameters": {"window": 3},
            "created_at": t0.to_rfc3339(), "model": "ref-strategy", "model_version": "1"
        }))
        .unwrap()],
    );
    env.run_until_idle();

    let db = env.db().await;
    let ids: Vec<(String, i64)> = db
        .query(
            "SELECT esurio_event_id(t.source_topic, t.source_partition, t.source_offset, t.ingested_at)
               FROM market_data t
              ORDER BY t.ts",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let id: String = r.get(0);
            let batch = id.rsplit(':').next().unwrap().parse().unwrap();
            (id, batch)
        })
        .collect();
    assert_eq!(ids.len(), 3);

    // A market-wide insight (no symbol), then a newer version of it: the first goes to history.
    let insight = |generated: chrono::DateTime<Utc>, input: &str, title: &str| {
        serde_json::to_vec(&json!({
            "insight_id": "wide:1", "kind": "trend", "title": title, "confidence": 0.5,
            "generated_at": generated.to_rfc3339(), "model": "ref", "model_version": "1",
            "inputs": [input]
        }))
        .unwrap()
    };
    env.produce(
        "insight",
        0,
        &[
            insight(t0, &ids[0].0, "first"),
            insight(t0 + chrono::Duration::seconds(5), &ids[1].0, "second"),
        ],
    );
    env.run_until_idle();
    let first: String = db
        .query_one(
            "SELECT esurio_event_id(h.source_topic, h.source_partition, h.source_offset, h.ingested_at)
               FROM insight_history h",
            &[],
        )
        .await
        .unwrap()
        .get(0);

    let missing = format!("{}:0:999:{}", env.topic("market_data"), ids[0].1);
    let batch = format!("batch:{}", ids[0].1);
    // Whole seconds: the key is compared after PostgreSQL parses it (microseconds).
    let signal_ts =
        (now - chrono::Duration::minutes(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    env.produce(
        "signal",
        0,
        &[serde_json::to_vec(&json!({
            "strategy_id": "mom", "strategy_version": 1, "symbol": "AAA", "ts": signal_ts,
            "direction": "long", "strength": 0.7, "model": "ref-signal", "model_version": "2",
            "inputs": [ids[0].0, ids[1].0, ids[2].0, first, batch, missing]
        }))
        .unwrap()],
    );
    env.run_until_idle();
    assert_eq!(env.count("SELECT count(*) FROM quarantine").await, 0);
    assert_eq!(env.count("SELECT count(*) FROM signal").await, 1);

    let key =
        json!({"strategy_id": "mom", "strategy_version": 1, "symbol": "AAA", "ts": signal_ts})
            .to_string();
    let (ok, out, err) = lineage(&env, &["signal", &key, "--json"]);
    assert!(ok, "{err}");
    let tree: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(tree["family"], "signal");
    assert_eq!(tree["model"], "ref-signal");
    assert_eq!(tree["model_version"], "2");
    let children = tree["children"].as_array().unwrap();
    assert_eq!(children.len(), 7, "6 inputs and the strategy: {tree:#}");
    let by_ref = |r: &str| {
        children
            .iter()
            .find(|c| c["ref"] == r)
            .unwrap_or_else(|| panic!("no child {r}: {tree:#}"))
    };
    // The revised insight is found in history, and leads on to its own input.
    let old = by_ref(&first);
    assert_eq!(old["status"], "found");
    assert_eq!(old["family"], "insight");
    assert_eq!(old["state"], "revised");
    assert_eq!(old["row"]["title"], "first");
    assert_eq!(old["children"][0]["ref"], ids[0].0.as_str());
    assert_eq!(old["children"][0]["family"], "market_data");
    // The batch, the missing position, the strategy link.
    let b = by_ref(&format!("batch:{}", ids[0].1));
    assert_eq!(b["status"], "batch");
    assert_eq!(b["batch"]["id"], ids[0].1);
    assert_eq!(by_ref(&missing)["status"], "missing");
    let strategy = children.iter().find(|c| c["via"] == "strategy").unwrap();
    assert_eq!(strategy["status"], "found");
    assert_eq!(strategy["key"], json!({"strategy_id": "mom", "version": 1}));
    assert_eq!(strategy["model"], "ref-strategy");
    // Every tick is shown once in full; a second path to tick 0 is marked as a repeat.
    let all = nodes(&tree);
    for (id, _) in &ids {
        let found = all
            .iter()
            .filter(|n| n["ref"] == id.as_str() && n["status"] == "found")
            .count();
        assert_eq!(found, 1, "{id} shown once");
    }
    assert_eq!(all.iter().filter(|n| n["status"] == "repeat").count(), 1);

    // The same on the terminal.
    let (ok, text, err) = lineage(&env, &["signal", &key]);
    assert!(ok, "{err}");
    assert!(
        text.starts_with("signal {\"strategy_id\":\"mom\""),
        "{text}"
    );
    assert!(text.contains("(revised)"), "{text}");
    assert!(
        text.contains("[strategy] strategy {\"strategy_id\":\"mom\",\"version\":1}"),
        "{text}"
    );
    assert!(text.contains("(shown above)"), "{text}");
    assert!(text.contains("missing: no row of market_data"), "{text}");
    assert!(text.contains(&format!("batch {}", ids[0].1)), "{text}");
    // --depth 0: the row alone, its inputs counted.
    let (ok, text, _) = lineage(&env, &["signal", &key, "--depth", "0"]);
    assert!(ok && text.lines().count() == 1, "{text}");
    assert!(text.contains("(+6 inputs beyond --depth)"), "{text}");
    // A key in another spelling of the same instant finds the row.
    let other = json!({"strategy_id": "mom", "strategy_version": 1, "symbol": "AAA",
                       "ts": chrono::DateTime::parse_from_rfc3339(&signal_ts).unwrap()
                           .with_timezone(&chrono::FixedOffset::east_opt(3600).unwrap()).to_rfc3339()});
    let (ok, _, err) = lineage(&env, &["signal", &other.to_string()]);
    assert!(ok, "{err}");
    // Errors a person meets.
    let (ok, _, err) = lineage(&env, &["signal", r#"{"strategy_id":"mom"}"#]);
    assert!(
        !ok && err.contains("missing: strategy_version, symbol, ts"),
        "{err}"
    );
    let (ok, _, err) = lineage(&env, &["strategy", r#"{"strategy_id":"mom","version":9}"#]);
    assert!(!ok && err.contains("key not found"), "{err}");
}
