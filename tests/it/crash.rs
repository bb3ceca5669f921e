//! `kill -9` of the worker in the middle of ingesting 1,000,000 records, restarts, and the exact
//! counts at the end: nothing lost, nothing doubled.

use crate::helpers::{produced, TestEnv};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_ingest_of_a_million_records_loses_and_doubles_nothing() {
    let env = TestEnv::new("kill9", true).await;
    // 13 topics x 77,000 = 1,001,000 records.
    let summary = env.simulate(&[
        "--records",
        "77000",
        "--invalid-ratio",
        "0.1",
        "--format",
        "mixed",
        "--seed",
        "11",
    ]);
    let total = summary["totals"]["produced"].as_i64().unwrap();
    assert!(total >= 1_000_000);
    let invalid = summary["totals"]["invalid"].as_i64().unwrap();

    let mut kills = 0;
    let mut last_written = 0;
    for round in 0..4u64 {
        let mut worker = env.spawn_worker();
        // Kill at a different moment each round, once progress was made since the last restart.
        let wait_rows = last_written + 40_000 + (round as i64) * 7_000;
        let deadline = std::time::Instant::now() + Duration::from_secs(300);
        let mut written = 0;
        while std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200 + 150 * round)).await;
            written = env
                .count("SELECT coalesce(sum(records), 0)::bigint FROM ingest_batches")
                .await;
            if written >= wait_rows || worker.try_wait().unwrap().is_some() {
                break;
            }
        }
        worker.kill().unwrap(); // SIGKILL
        worker.wait().unwrap();
        if written >= total {
            break;
        }
        kills += 1;
        eprintln!("kill -9 #{kills}: {written} of {total} records committed");
        last_written = written;
    }
    assert!(
        kills >= 2,
        "the worker was killed mid-ingest at least twice"
    );
    assert!(
        last_written < total,
        "the last kill happened before the end"
    );

    env.run_until_idle();
    env.assert_exact(&summary["tables"], invalid, &produced(&summary))
        .await;
    let audited = env
        .count("SELECT sum(records)::bigint FROM ingest_batches")
        .await;
    assert_eq!(
        audited, total,
        "every record was committed by exactly one batch"
    );
}
