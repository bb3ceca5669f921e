//! What real spiders send: identical replays, conflicting ticks, revisions in and out of order,
//! re-crawls with changed entity sets, trades in the same millisecond. Each outcome must be
//! deliberate and visible (docs/RECORDS.md, "Conflict policies").

use crate::helpers::TestEnv;
use chrono::{DateTime, Duration as Days, SubsecRound, Utc};
use serde_json::{json, Value};

fn j(v: Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

fn ms(t: DateTime<Utc>) -> Option<i64> {
    Some(t.timestamp_millis())
}

fn hour_ago() -> DateTime<Utc> {
    (Utc::now() - Days::hours(1)).trunc_subsecs(0)
}

fn tick(ts: &str, price: f64) -> Vec<u8> {
    j(
        json!({"symbol": "aapl", "exchange": "xnas", "ts": ts, "price": price, "volume": 10.0,
             "currency": "usd"}),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn ticks_keep_the_first_row_quarantine_conflicts_and_count_replays() {
    let env = TestEnv::new("ticks", false).await;
    let t = hour_ago();
    let at =
        |us: i64| (t + Days::microseconds(us)).to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    // Two trades in one millisecond, distinct by their microseconds: two rows.
    let first = vec![
        (tick(&at(1_001), 100.0), None),
        (tick(&at(1_002), 100.5), None),
        (tick(&at(5_000), 101.0), None),
        // same key as the first, same values, spelled differently: an identical replay
        (
            j(
                json!({"currency": "USD", "volume": 10, "price": 100.0, "exchange": "XNAS",
                     "symbol": "AAPL", "ts": at(1_001)}),
            ),
            None,
        ),
        // same key, another price, in the same batch: a conflict
        (tick(&at(1_001), 99.0), None),
    ];
    env.produce_at("market_data", 0, &first);
    env.run_until_idle();
    // Later: a replay and a conflict against rows committed in an earlier batch.
    env.produce_at(
        "market_data",
        0,
        &[
            (tick(&at(5_000), 101.0), None),
            (tick(&at(5_000), 102.0), None),
        ],
    );
    env.run_until_idle();

    let db = env.db().await;
    let rows = db
        .query("SELECT ts, price FROM market_data ORDER BY ts", &[])
        .await
        .unwrap();
    let prices: Vec<f64> = rows.iter().map(|r| r.get(1)).collect();
    assert_eq!(prices, vec![100.0, 100.5, 101.0], "the first rows stay");
    let q = db
        .query(
            "SELECT source_offset, reason, stage, message FROM quarantine ORDER BY source_offset",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(i64, String, String)> =
        q.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(
        got,
        vec![
            (4, "conflicting_duplicate".to_owned(), "database".to_owned()),
            (6, "conflicting_duplicate".to_owned(), "database".to_owned()),
        ]
    );
    let message: String = q[0].get(3);
    assert!(
        message.contains("(exchange, symbol, ts)")
            && message.contains("XNAS")
            && message.contains("AAPL"),
        "the message names the key: {message}"
    );
    assert_eq!(env.outcome_totals().await, (2, 0, 0, 2));
}

fn earnings(reported_at: DateTime<Utc>, eps_est: f64, eps_act: Option<f64>) -> Vec<u8> {
    j(
        json!({"symbol": "MSFT", "fiscal_year": 2026, "fiscal_quarter": 3,
             "reported_at": reported_at.to_rfc3339(), "eps_estimate": eps_est,
             "eps_actual": eps_act, "currency": "USD"}),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn earnings_actuals_revise_estimates_late_older_versions_go_to_history() {
    let env = TestEnv::new("revise", false).await;
    let t = hour_ago();
    // estimates, then actuals at the same report time (Kafka order decides), then within one batch
    // a late older restatement, a replay of the estimates and a replay of the actuals.
    env.produce_at("earnings_event", 0, &[(earnings(t, 2.5, None), None)]);
    env.run_until_idle();
    env.produce_at("earnings_event", 0, &[(earnings(t, 2.5, Some(2.7)), None)]);
    env.run_until_idle();
    env.produce_at(
        "earnings_event",
        0,
        &[
            (earnings(t - Days::days(1), 2.4, None), None),
            (earnings(t, 2.5, None), None),
            (earnings(t, 2.5, Some(2.7)), None),
        ],
    );
    env.run_until_idle();

    let db = env.db().await;
    let row = db
        .query_one(
            "SELECT eps_actual, source_offset, version_at FROM earnings_event",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<f64>>(0), Some(2.7), "actuals arrived");
    assert_eq!(row.get::<_, i64>(1), 1);
    let hist = db
        .query(
            "SELECT source_offset, history_reason, eps_actual FROM earnings_event_history
              ORDER BY source_offset",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(i64, String, Option<f64>)> = hist
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, "revised".to_owned(), None),
            (2, "superseded".to_owned(), None)
        ]
    );
    assert_eq!(env.outcome_totals().await, (2, 1, 1, 0));
    assert_eq!(env.count("SELECT count(*) FROM quarantine").await, 0);

    // What did we know an instant after the first batch? The estimates.
    let known = db
        .query_one(
            "WITH v AS (
               SELECT eps_actual, ingested_at, NULL::timestamptz AS superseded_at FROM earnings_event
               UNION ALL
               SELECT eps_actual, ingested_at, superseded_at FROM earnings_event_history
                WHERE history_reason = 'revised')
             SELECT count(*), max(eps_actual) FROM v
              WHERE ingested_at <= (SELECT min(committed_at) FROM ingest_batches)
                AND (superseded_at IS NULL OR superseded_at > (SELECT min(committed_at) FROM ingest_batches))",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(known.get::<_, i64>(0), 1);
    assert_eq!(known.get::<_, Option<f64>>(1), None);
}

fn article(title: &str, entities: &[(&str, &str)], published: DateTime<Utc>) -> Vec<u8> {
    let ents: Vec<Value> = entities
        .iter()
        .map(|(n, t)| json!({"name": n, "entity_type": t}))
        .collect();
    j(
        json!({"url": "https://news.example.com/acme-results", "title": title, "source": "Wire",
             "published_at": published.to_rfc3339(), "entities": ents}),
    )
}

async fn entities(env: &TestEnv, table: &str) -> Vec<(String, i64)> {
    let db = env.db().await;
    db.query(
        &format!("SELECT name, source_offset FROM {table} ORDER BY source_offset, name"),
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recrawl_replaces_the_article_and_its_entity_set_as_one() {
    let env = TestEnv::new("recrawl", false).await;
    let t0 = hour_ago();
    env.produce_at(
        "news_article",
        0,
        &[(
            article(
                "Acme beats",
                &[("Acme", "organization"), ("Bob", "person")],
                t0,
            ),
            ms(t0),
        )],
    );
    env.run_until_idle();
    // The re-crawl changes the title and the entity set; the same version again with its entities
    // in another order is identical; a stale crawl (older Kafka time) arrives last.
    env.produce_at(
        "news_article",
        0,
        &[
            (
                article(
                    "Acme beats estimates",
                    &[("Bob", "person"), ("Carol", "person")],
                    t0,
                ),
                ms(t0 + Days::minutes(10)),
            ),
            (
                article(
                    "Acme beats estimates",
                    &[("Carol", "person"), ("Bob", "person")],
                    t0,
                ),
                ms(t0 + Days::minutes(20)),
            ),
            (
                article("Acme", &[("Acme", "organization")], t0),
                ms(t0 - Days::minutes(5)),
            ),
        ],
    );
    env.run_until_idle();

    let db = env.db().await;
    let title: String = db
        .query_one("SELECT title FROM news_article", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(title, "Acme beats estimates");
    assert_eq!(
        entities(&env, "news_entity").await,
        vec![("Bob".to_owned(), 1), ("Carol".to_owned(), 1)],
        "the new entity set replaced the old one, with the new version's lineage"
    );
    let hist: Vec<(String, i64, String)> = db
        .query(
            "SELECT title, source_offset, history_reason FROM news_article_history ORDER BY source_offset",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        hist,
        vec![
            ("Acme beats".to_owned(), 0, "revised".to_owned()),
            ("Acme".to_owned(), 3, "superseded".to_owned())
        ]
    );
    assert_eq!(
        entities(&env, "news_entity_history").await,
        vec![
            ("Acme".to_owned(), 0),
            ("Bob".to_owned(), 0),
            ("Acme".to_owned(), 3)
        ],
        "each old version keeps its own entity set"
    );
    assert_eq!(env.outcome_totals().await, (1, 1, 1, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restated_indicator_revises_its_period_and_keeps_the_first_release() {
    let env = TestEnv::new("restate", false).await;
    let t = hour_ago();
    let release = |at: DateTime<Utc>, value: f64| {
        j(
            json!({"indicator": "CPI", "country": "US", "frequency": "monthly",
                 "period_start": "2026-10-01", "value": value, "unit": "index",
                 "released_at": at.to_rfc3339(), "source": "BLS"}),
        )
    };
    // The restatement arrives first (a backfill), the first release after it.
    env.produce_at(
        "economic_indicator",
        0,
        &[
            (release(t, 3.2), None),
            (release(t - Days::days(30), 3.1), None),
        ],
    );
    env.run_until_idle();
    let db = env.db().await;
    let v: f64 = db
        .query_one("SELECT value FROM economic_indicator", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        v, 3.2,
        "the later release is current whatever the arrival order"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM economic_indicator_history WHERE value = 3.1 AND history_reason = 'superseded'")
            .await,
        1
    );
}
