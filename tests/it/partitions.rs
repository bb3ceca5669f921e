//! Day partitions on real data: bounded on-demand creation, a writer role without DDL rights,
//! partitions dropped by retention, and values PostgreSQL's input functions reject at COPY time.

use crate::helpers::TestEnv;
use chrono::{Duration as Days, SubsecRound, Utc};
use serde_json::json;
use std::time::{Duration, Instant};

fn tick(days_ago: i64, micros: i64, price: f64) -> Vec<u8> {
    let ts = (Utc::now() - Days::days(days_ago)).trunc_subsecs(0) + Days::microseconds(micros);
    serde_json::to_vec(
        &json!({"symbol": "AAPL", "exchange": "XNAS", "ts": ts.to_rfc3339(),
        "price": price, "volume": 1.0, "currency": "USD"}),
    )
    .unwrap()
}

fn day_name(days_ago: i64) -> String {
    format!(
        "market_data_p{}",
        (Utc::now() - Days::days(days_ago)).format("%Y%m%d")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn ticks_outside_the_partition_window_are_quarantined_inside_it_get_their_day() {
    let env = TestEnv::new("window", false).await;
    env.produce("market_data", 0, &[tick(400, 0, 1.0), tick(20, 0, 2.0)]);
    env.run_until_idle();
    assert_eq!(env.count("SELECT count(*) FROM market_data").await, 1);
    let db = env.db().await;
    let q = db
        .query_one("SELECT reason, stage, message FROM quarantine", &[])
        .await
        .unwrap();
    assert_eq!(q.get::<_, String>(0), "outside_partition_window");
    assert_eq!(q.get::<_, String>(1), "validate");
    assert!(q
        .get::<_, String>(2)
        .contains("database.partition_max_past"));
    let exists = |name: String| {
        let db = &db;
        async move {
            db.query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
                .await
                .unwrap()
                .get::<_, bool>(0)
        }
    };
    assert!(
        !exists(day_name(400)).await,
        "no partition for a long-gone day"
    );
    assert!(
        exists(day_name(20)).await,
        "the day inside the window got its partition"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_writer_role_without_ddl_rights_gets_its_partitions() {
    let env = TestEnv::new("writer", false).await;
    let role = format!("it_writer_{}", std::process::id());
    let db = env.db().await;
    db.batch_execute(&format!(
        "DROP ROLE IF EXISTS {role};
         CREATE ROLE {role} LOGIN PASSWORD 'writer';
         GRANT USAGE ON SCHEMA public TO {role};
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};
         GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role};
         GRANT EXECUTE ON FUNCTION esurio_ensure_partitions(regclass, date, date) TO {role};"
    ))
    .await
    .unwrap();
    let can_create: bool = db
        .query_one(
            &format!("SELECT has_schema_privilege('{role}', 'public', 'CREATE')"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!can_create, "the writer has no DDL rights");
    let url = env
        .db_url
        .replacen("esurio:esurio@", &format!("{role}:writer@"), 1);
    env.produce("market_data", 0, &[tick(25, 0, 3.0), tick(0, 0, 4.0)]);
    env.run_until_idle_args(&["--no-migrate"], &[("ESURIO__DATABASE__URL", &url)]);
    assert_eq!(env.count("SELECT count(*) FROM market_data").await, 2);
    assert_eq!(env.count("SELECT count(*) FROM quarantine").await, 0);
    let owner: String = db
        .query_one(
            "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = to_regclass($1)",
            &[&day_name(25)],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        owner, "esurio",
        "created by the function's owner, not the writer"
    );
    drop(db);
    let admin = env.db().await;
    let _ = admin
        .batch_execute(&format!(
            "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role};
             REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {role};
             REVOKE ALL ON SCHEMA public FROM {role};
             REVOKE ALL ON FUNCTION esurio_ensure_partitions(regclass, date, date) FROM {role};"
        ))
        .await;
}

async fn wait_for(env: &TestEnv, sql: &str, want: i64) {
    let start = Instant::now();
    loop {
        let n = env.count(sql).await;
        if n == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "{sql}: {n}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_late_row_for_a_partition_dropped_meanwhile_is_written_not_quarantined() {
    let env = TestEnv::new("dropped", false).await;
    let mut worker = env.spawn_worker();
    env.produce("market_data", 0, &[tick(10, 0, 5.0)]);
    wait_for(&env, "SELECT count(*) FROM market_data", 1).await;
    // Retention drops the day while the worker (which has seen it) runs; a late tick arrives.
    env.db()
        .await
        .batch_execute(&format!("DROP TABLE {}", day_name(10)))
        .await
        .unwrap();
    env.produce("market_data", 0, &[tick(10, 1, 6.0)]);
    wait_for(&env, "SELECT count(*) FROM market_data", 1).await;
    wait_for(
        &env,
        "SELECT count(*) FROM consumed_offsets WHERE next_offset = 2",
        1,
    )
    .await;
    let _ = worker.kill();
    let _ = worker.wait();
    assert_eq!(env.count("SELECT count(*) FROM quarantine").await, 0);
    let price: f64 = env
        .db()
        .await
        .query_one("SELECT price FROM market_data", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(price, 6.0, "the late row recreated its day");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_value_the_database_cannot_take_is_quarantined_alone() {
    let env = TestEnv::new("inputfn", false).await;
    // An operator narrowed a column: values that passed validation no longer fit at COPY time.
    env.db()
        .await
        .batch_execute("ALTER TABLE news_article ALTER COLUMN source TYPE varchar(10)")
        .await
        .unwrap();
    let at = Utc::now() - Days::hours(2);
    let article = |i: usize, source: &str| {
        serde_json::to_vec(&json!({"url": format!("https://news.example.com/{i}"),
            "title": "t", "source": source, "published_at": at.to_rfc3339(),
            "entities": [{"name": "Acme", "entity_type": "organization"}]}))
        .unwrap()
    };
    let records: Vec<Vec<u8>> = (0..20)
        .map(|i| {
            article(
                i,
                if i == 7 || i == 13 {
                    "A very long source name"
                } else {
                    "Wire"
                },
            )
        })
        .collect();
    env.produce("news_article", 0, &records);
    env.run_until_idle();
    assert_eq!(env.count("SELECT count(*) FROM news_article").await, 18);
    assert_eq!(env.count("SELECT count(*) FROM news_entity").await, 18);
    let db = env.db().await;
    let q: Vec<(i64, String, String)> = db
        .query(
            "SELECT source_offset, reason, stage FROM quarantine ORDER BY source_offset",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        q,
        vec![
            (7, "sqlstate:22001".to_owned(), "database".to_owned()),
            (13, "sqlstate:22001".to_owned(), "database".to_owned())
        ]
    );
}
