//! The fault suite: every scenario runs the real worker against the real PostgreSQL and Kafka of
//! `scripts/stack`, with the simulator producing while faults happen, and ends with an exactness
//! check: per table rows = valid records produced, quarantine = invalid records produced, no source
//! offset written twice, no two batches of a partition overlapping, stored offsets = end offsets.
//!
//! `cargo test --test faults` runs the short profile (CI); `ESURIO_FAULTS=long cargo test
//! --test faults` the long one (release checks). `ESURIO_FAULTS_ONLY=kill9,sigterm` picks scenarios.
//! Prints a table and exits non-zero on any loss, double or failed expectation.

#[path = "../it/helpers.rs"]
mod helpers;
mod scenarios;

use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Short,
    Long,
}

/// One scenario's outcome.
#[derive(Debug, Default)]
pub struct Row {
    pub scenario: String,
    pub produced: i64,
    pub written: i64,
    pub quarantined: i64,
    pub lost: i64,
    pub doubled: i64,
    pub secs: f64,
    /// Expectations of the scenario beyond exactness that failed (e.g. a drain deadline missed).
    pub failures: Vec<String>,
    pub notes: Vec<String>,
}

fn main() {
    let profile = match std::env::var("ESURIO_FAULTS").as_deref() {
        Ok("long") => Profile::Long,
        _ => Profile::Short,
    };
    let only: Option<Vec<String>> = std::env::var("ESURIO_FAULTS_ONLY")
        .ok()
        .map(|s| s.split(',').map(str::to_owned).collect());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for (name, f) in scenarios::ALL {
        if only.as_ref().is_some_and(|o| !o.iter().any(|x| x == name)) {
            continue;
        }
        eprintln!("faults: running {name} ({profile:?})");
        let start = Instant::now();
        // A panic (a harness assertion, a timeout) fails the scenario, not the whole suite.
        let mut row = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rt.block_on(f(profile))
        })) {
            Ok(row) => row,
            Err(p) => Row {
                failures: vec![format!(
                    "panicked: {}",
                    p.downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| p.downcast_ref::<&str>().copied())
                        .unwrap_or("?")
                )],
                ..Default::default()
            },
        };
        row.scenario = name.to_string();
        row.secs = start.elapsed().as_secs_f64();
        eprintln!("faults: {name} done in {:.0}s", row.secs);
        rows.push(row);
    }
    println!(
        "\n{:<22} {:>9} {:>9} {:>11} {:>5} {:>7} {:>7}  result",
        "scenario", "produced", "written", "quarantined", "lost", "doubled", "time"
    );
    let mut failed = 0;
    for r in &rows {
        let ok = r.lost == 0 && r.doubled == 0 && r.failures.is_empty();
        if !ok {
            failed += 1;
        }
        println!(
            "{:<22} {:>9} {:>9} {:>11} {:>5} {:>7} {:>6.0}s  {}",
            r.scenario,
            r.produced,
            r.written,
            r.quarantined,
            r.lost,
            r.doubled,
            r.secs,
            if ok { "ok" } else { "FAILED" }
        );
        for n in &r.notes {
            println!("    note: {n}");
        }
        for f in &r.failures {
            println!("    failure: {f}");
        }
    }
    // The plain closing line CI reads.
    println!(
        "\nfaults: {} passed, {} failed",
        rows.len() - failed,
        failed
    );
    if failed > 0 {
        std::process::exit(1);
    }
}
