//! The ML write-back loop end to end, against the real broker and database: ticks and articles
//! are ingested with enrichment events on, the reference model service (examples/model_service,
//! Python) reads the events and writes back a sentiment score per article and a 20-tick moving
//! average feature and regime insight per symbol, the worker ingests those; the database then holds
//! exactly the values recomputed here, and `esurio lineage` leads from each result to its inputs.

use crate::helpers::{wait_with_timeout, TestEnv};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The reference service's keyword lists (examples/model_service/model.py: change both).
const POSITIVE: &[&str] = &[
    "beat",
    "beats",
    "bullish",
    "gain",
    "gains",
    "growth",
    "improve",
    "improved",
    "outperform",
    "profit",
    "profitable",
    "rally",
    "record",
    "rise",
    "rises",
    "strong",
    "surge",
    "surges",
    "upgrade",
    "upgraded",
];
const NEGATIVE: &[&str] = &[
    "bearish",
    "cut",
    "cuts",
    "decline",
    "declines",
    "downgrade",
    "downgraded",
    "fall",
    "falls",
    "fraud",
    "lawsuit",
    "loss",
    "losses",
    "miss",
    "misses",
    "plunge",
    "plunges",
    "weak",
    "weaker",
];
const WINDOW: usize = 20;
const ENRICH: [(&str, &str); 2] = [
    ("ESURIO__ENRICHMENT__FAMILIES", "market_data,news_article"),
    ("ESURIO__ENRICHMENT__FORMAT", "json"),
];

/// The service's sentiment: words of title + body, lowercased, split on anything but a-z.
fn sentiment(title: &str, body: Option<&str>) -> f64 {
    let text = format!("{title} {}", body.unwrap_or("")).to_lowercase();
    let words: Vec<&str> = text.split(|c: char| !c.is_ascii_lowercase()).collect();
    let pos = words.iter().filter(|w| POSITIVE.contains(w)).count();
    let neg = words.iter().filter(|w| NEGATIVE.contains(w)).count();
    if pos + neg == 0 {
        0.0
    } else {
        (pos as f64 - neg as f64) / (pos + neg) as f64
    }
}

/// The service's regime confidence: r / (r + 0.01), r = |last - sma| / sma.
fn confidence(last: f64, sma: f64) -> f64 {
    let r = (last - sma).abs() / sma;
    r / (r + 0.01)
}

/// Prices per symbol (tick i): a rise, a fall, a wobble; and a symbol below the window.
fn price(symbol: &str, i: usize) -> f64 {
    match symbol {
        "AAA" => 100.0 + 0.5 * i as f64,
        "BBB" => 50.0 - 0.3 * i as f64,
        "CCC" => 20.0 + [0.0, 0.7, -0.4, 1.1, -0.9, 0.2, 0.5][i % 7],
        _ => 7.0 + i as f64,
    }
}

const TICKS: &[(&str, usize)] = &[("AAA", 30), ("BBB", 30), ("CCC", 30), ("DDD", 5)];

/// Titles and bodies with known words (mixed case, punctuation, none at all, body missing).
const ARTICLES: &[(&str, Option<&str>)] = &[
    ("Strong growth: AAA beats estimates", Some("Record profit.")),
    (
        "BBB shares plunge after lawsuit",
        Some("Losses widen; analysts downgrade."),
    ),
    ("CCC holds steady", Some("Nothing to report today.")),
    ("Rally fades as gains meet a cut", None),
    (
        "UPGRADE for AAA",
        Some("Profit-taking aside, outlook is bullish"),
    ),
    ("Weak quarter", Some("A miss, then a decline, then a surge")),
    (
        "Market wrap",
        Some("Stocks rise; bonds fall; oil is weaker"),
    ),
    ("Fraud probe", Some("Regulators allege fraud")),
    ("Quiet session", None),
    ("Outperform rating kept", Some("Improved margins")),
];

struct Tick {
    symbol: String,
    ts: DateTime<Utc>,
    price: f64,
    position: String,
    event_id: String,
}

/// The ticks as stored, each with its event id (its batch: the one whose started_at is its
/// ingested_at), in event order: ts, then Kafka position.
async fn stored_ticks(env: &TestEnv) -> Vec<Tick> {
    let rows = env
        .db()
        .await
        .query(
            "SELECT t.symbol, t.ts, t.price,
                    t.source_topic || ':' || t.source_partition || ':' || t.source_offset,
                    esurio_event_id(t.source_topic, t.source_partition, t.source_offset, t.ingested_at)
               FROM market_data t
              ORDER BY t.ts, t.source_partition, t.source_offset",
            &[],
        )
        .await
        .unwrap();
    rows.iter()
        .map(|r| Tick {
            symbol: r.get(0),
            ts: r.get(1),
            price: r.get(2),
            position: r.get(3),
            event_id: r.get(4),
        })
        .collect()
}

/// Runs the reference model service on this test's topics; returns its JSON summary.
fn run_model_service(env: &TestEnv) -> Value {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(format!("{root}/scripts/py-env"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/py-env failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let python = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let child = Command::new(python)
        .arg(format!("{root}/examples/model_service/model.py"))
        .args(["--brokers", &env.brokers, "--topic-prefix", &env.prefix])
        .args([
            "--group",
            &format!("{}-model", env.group),
            "--idle-exit",
            "2",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_with_timeout(child, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "the model service failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the model service printed no JSON summary ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// `esurio lineage <family> <key> --json`.
fn lineage(env: &TestEnv, family: &str, key: &str) -> Value {
    let out = env
        .esurio(&["lineage", family, key, "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "esurio lineage {family} {key}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ts_text(ts: &DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_reference_model_writes_back_exactly_and_every_result_leads_to_its_inputs() {
    let env = TestEnv::new("roundtrip", false).await;

    // Ticks over four partitions (a symbol's ticks interleave across them: event order is ts
    // order, not Kafka order), with one replayed tick that must change nothing.
    let base = (Utc::now() - chrono::Duration::minutes(20)).timestamp_millis();
    let mut by_partition: BTreeMap<i32, Vec<Vec<u8>>> = BTreeMap::new();
    for (symbol, n) in TICKS {
        for i in 0..*n {
            let ts = DateTime::from_timestamp_millis(base + 1000 * i as i64 + 7).unwrap();
            let v = serde_json::to_vec(&json!({
                "symbol": symbol, "exchange": "XNYS", "ts": ts.to_rfc3339(),
                "price": price(symbol, i), "volume": 100 + i, "currency": "USD"
            }))
            .unwrap();
            let p = ((i * 3 + symbol.len()) % 4) as i32;
            by_partition.entry(p).or_default().push(v.clone());
            if *symbol == "AAA" && i == 4 {
                by_partition.entry((p + 1) % 4).or_default().push(v);
            }
        }
    }
    for (p, payloads) in &by_partition {
        env.produce("market_data", *p, payloads);
    }
    let published = Utc::now() - chrono::Duration::hours(1);
    let articles: Vec<Vec<u8>> = ARTICLES
        .iter()
        .enumerate()
        .map(|(i, (title, body))| {
            serde_json::to_vec(&json!({
                "url": format!("https://news.example.com/roundtrip/{i}"), "title": title,
                "body": body, "source": "Example Wire", "published_at": published.to_rfc3339(),
                "entities": [{"name": "AAA Corp", "entity_type": "organization", "symbol": "AAA"}]
            }))
            .unwrap()
        })
        .collect();
    env.produce("news_article", 0, &articles[..6]);
    env.produce("news_article", 1, &articles[6..]);

    // 1. Ingest with enrichment events on.
    env.run_until_idle_with(&ENRICH);
    let ticks = stored_ticks(&env).await;
    let total_ticks: usize = TICKS.iter().map(|(_, n)| n).sum();
    assert_eq!(
        ticks.len(),
        total_ticks,
        "every tick once (the replay dropped)"
    );

    // 2. The model service: one event per committed row, one result per article and per symbol
    //    with a full window.
    let summary = run_model_service(&env);
    assert_eq!(summary["events"]["market_data"], total_ticks, "{summary}");
    assert_eq!(
        summary["events"]["news_article"],
        ARTICLES.len(),
        "{summary}"
    );
    assert_eq!(
        summary["produced"]["sentiment_update"],
        ARTICLES.len(),
        "{summary}"
    );
    assert_eq!(summary["produced"]["feature"], 3, "{summary}");
    assert_eq!(summary["produced"]["insight"], 3, "{summary}");
    assert_eq!(summary["symbols_below_window"]["DDD"], 5, "{summary}");

    // 3. Ingest the results.
    env.run_until_idle_with(&ENRICH);
    let db = env.db().await;
    let quarantined = db
        .query("SELECT source_topic, reason, message FROM quarantine", &[])
        .await
        .unwrap();
    let q: Vec<String> = quarantined
        .iter()
        .map(|r| {
            format!(
                "{} {} {}",
                r.get::<_, String>(0),
                r.get::<_, String>(1),
                r.get::<_, String>(2)
            )
        })
        .collect();
    assert!(q.is_empty(), "nothing is quarantined: {q:#?}");

    // Sentiment: exactly the recomputed score on every article, with its producer and its input.
    let rows = db
        .query(
            "SELECT a.article_id::text, a.title, a.body, a.sentiment_score, a.sentiment_model,
                    a.sentiment_model_version, a.sentiment_inputs,
                    esurio_event_id(a.source_topic, a.source_partition, a.source_offset, a.ingested_at)
               FROM news_article a",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), ARTICLES.len());
    let mut article_ids = Vec::new();
    for r in &rows {
        let (id, title, body): (String, String, Option<String>) = (r.get(0), r.get(1), r.get(2));
        let want = sentiment(&title, body.as_deref());
        assert_eq!(
            r.get::<_, Option<f64>>(3),
            Some(want),
            "sentiment of {title:?}"
        );
        assert_eq!(
            r.get::<_, Option<String>>(4).as_deref(),
            Some("kw-sentiment")
        );
        assert_eq!(r.get::<_, Option<String>>(5).as_deref(), Some("1"));
        assert_eq!(
            r.get::<_, Option<Vec<String>>>(6),
            Some(vec![r.get::<_, String>(7)]),
            "the sentiment's input is the article's event"
        );
        article_ids.push((id, want));
    }
    // The recomputation itself is right, on known texts.
    assert_eq!(sentiment(ARTICLES[0].0, ARTICLES[0].1), 1.0);
    assert_eq!(sentiment(ARTICLES[1].0, ARTICLES[1].1), -1.0);
    assert_eq!(sentiment(ARTICLES[2].0, ARTICLES[2].1), 0.0);
    assert_eq!(sentiment(ARTICLES[4].0, ARTICLES[4].1), 1.0); // "Profit-taking" has "profit"
    assert_eq!(sentiment(ARTICLES[5].0, ARTICLES[5].1), -0.5);
    assert!(
        rows.iter().any(|r| r.get::<_, Option<f64>>(3) == Some(0.0)),
        "an article without any listed word scores 0"
    );

    // Features and insights: exactly one of each per symbol with a full window.
    let mut expected: BTreeMap<String, (String, f64, f64, Vec<&Tick>)> = BTreeMap::new();
    for (symbol, _) in TICKS {
        let mine: Vec<&Tick> = ticks.iter().filter(|t| t.symbol == *symbol).collect();
        if mine.len() < WINDOW {
            continue;
        }
        let window = mine[mine.len() - WINDOW..].to_vec();
        let sma = window.iter().fold(0.0, |s, t| s + t.price) / WINDOW as f64;
        let last = window[WINDOW - 1];
        expected.insert(
            symbol.to_string(),
            (ts_text(&last.ts), sma, last.price, window),
        );
    }
    assert_eq!(expected.len(), 3);
    let features = db
        .query(
            "SELECT entity, name, ts, value, model, model_version, inputs FROM feature ORDER BY entity",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(features.len(), 3, "one sma_20 per symbol with 20 ticks");
    for f in &features {
        let entity: String = f.get(0);
        let (ts, sma, _, window) = &expected[&entity];
        assert_eq!(f.get::<_, String>(1), "sma_20");
        assert_eq!(ts_text(&f.get(2)), *ts, "the last tick's ts");
        assert!(
            (f.get::<_, f64>(3) - sma).abs() < 1e-9,
            "sma_20 of {entity}"
        );
        assert_eq!(f.get::<_, Option<String>>(4).as_deref(), Some("ref-regime"));
        assert_eq!(f.get::<_, String>(5), "1");
        let inputs: BTreeSet<String> = f.get::<_, Vec<String>>(6).into_iter().collect();
        let want: BTreeSet<String> = window.iter().map(|t| t.event_id.clone()).collect();
        assert_eq!(inputs, want, "the feature's inputs are its 20 ticks");
    }
    let insights = db
        .query(
            "SELECT insight_id, symbol, kind, title, confidence, generated_at, model, model_version,
                    inputs
               FROM insight ORDER BY symbol",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(insights.len(), 3);
    let mut trends = BTreeSet::new();
    for i in &insights {
        let symbol: String = i.get(1);
        let (ts, sma, last, window) = &expected[&symbol];
        let trend = if last > sma { "uptrend" } else { "downtrend" };
        trends.insert(trend);
        assert_eq!(i.get::<_, String>(0), format!("regime:{symbol}:{ts}"));
        assert_eq!(i.get::<_, String>(2), "trend");
        assert_eq!(i.get::<_, String>(3), format!("{symbol} {trend}"));
        let c: f64 = i.get(4);
        assert!(
            (c - confidence(*last, *sma)).abs() < 1e-9,
            "confidence of {symbol}"
        );
        assert!((0.0..=1.0).contains(&c));
        assert_eq!(ts_text(&i.get(5)), *ts);
        assert_eq!(i.get::<_, String>(6), "ref-regime");
        assert_eq!(i.get::<_, Option<String>>(7).as_deref(), Some("1"));
        let inputs: BTreeSet<String> = i.get::<_, Vec<String>>(8).into_iter().collect();
        let want: BTreeSet<String> = window.iter().map(|t| t.event_id.clone()).collect();
        assert_eq!(inputs, want, "the insight's inputs are its 20 ticks");
    }
    assert_eq!(
        trends.len(),
        2,
        "both an uptrend and a downtrend: {trends:?}"
    );

    // 4. Lineage: each result leads to exactly its ticks, whose prices give its value.
    for (symbol, (ts, sma, _, window)) in &expected {
        let positions: BTreeSet<String> = window.iter().map(|t| t.position.clone()).collect();
        let refs: BTreeSet<String> = window.iter().map(|t| t.event_id.clone()).collect();
        let id = format!("regime:{symbol}:{ts}");
        let feature_key =
            json!({"entity": symbol, "name": "sma_20", "ts": ts, "model_version": "1"});
        for tree in [
            lineage(&env, "insight", &id),
            lineage(&env, "feature", &feature_key.to_string()),
        ] {
            assert_eq!(tree["model"], "ref-regime", "{tree:#}");
            assert_eq!(tree["model_version"], "1");
            let children = tree["children"].as_array().unwrap();
            assert_eq!(children.len(), WINDOW, "{tree:#}");
            let mut got_pos = BTreeSet::new();
            let mut got_refs = BTreeSet::new();
            let mut sum = 0.0;
            for c in children {
                assert_eq!(c["status"], "found", "{c:#}");
                assert_eq!(c["family"], "market_data");
                assert_eq!(c["key"]["symbol"], symbol.as_str());
                assert!(c["warnings"].is_null(), "{c:#}");
                let l = &c["lineage"];
                got_pos.insert(format!(
                    "{}:{}:{}",
                    l["topic"].as_str().unwrap(),
                    l["partition"],
                    l["offset"]
                ));
                got_refs.insert(c["ref"].as_str().unwrap().to_owned());
                sum += c["row"]["price"].as_f64().unwrap();
            }
            assert_eq!(got_pos, positions, "lineage of {symbol}");
            assert_eq!(got_refs, refs);
            assert!(
                (sum / WINDOW as f64 - sma).abs() < 1e-9,
                "the inputs give the value"
            );
        }

        // The recursive query of docs/LINEAGE.md finds the same rows.
        let sql = include_str!("../../sql/lineage/recursive.sql")
            .replace(":'family'", "'insight'")
            .replace(":'key'", &format!("'{}'", json!({ "insight_id": id })));
        let rows = db.query(&sql, &[]).await.unwrap();
        let depth1: BTreeSet<String> = rows
            .iter()
            .filter(|r| r.get::<_, i32>(0) == 1)
            .map(|r| r.get(4))
            .collect();
        assert_eq!(rows.iter().filter(|r| r.get::<_, i32>(0) == 0).count(), 1);
        assert_eq!(depth1, positions, "recursive.sql agrees with the command");
    }
    for (id, score) in &article_ids {
        let tree = lineage(&env, "news_article", id);
        assert_eq!(tree["row"]["sentiment_score"], *score);
        assert_eq!(tree["model"], "kw-sentiment");
        let children = tree["children"].as_array().unwrap();
        assert_eq!(children.len(), 1, "{tree:#}");
        // The sentiment was computed from the article itself: the walk ends there.
        assert_eq!(children[0]["via"], "sentiment_inputs");
        assert_eq!(children[0]["status"], "repeat");
        assert_eq!(children[0]["lineage"], tree["lineage"]);
    }

    // The terminal tree and the errors a person meets.
    let (first, (ts, _, _, _)) = expected.iter().next().unwrap();
    let out = env
        .esurio(&["lineage", "insight", &format!("regime:{first}:{ts}")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!("insight regime:{first}:")),
        "{text}"
    );
    assert_eq!(
        text.matches("├── market_data").count(),
        WINDOW - 1,
        "{text}"
    );
    assert_eq!(text.matches("└── market_data").count(), 1, "{text}");
    for (args, want) in [
        (
            vec!["lineage", "insights", "x"],
            "unknown family \"insights\"; choose one of:",
        ),
        (vec!["lineage", "insight", "regime:NOPE"], "key not found"),
        (vec!["lineage", "feature", "AAA"], "malformed key"),
        (
            vec!["lineage", "news_article", "not-a-uuid"],
            "malformed key",
        ),
    ] {
        let out = env.esurio(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(want),
            "{args:?}: {err}"
        );
    }
}
