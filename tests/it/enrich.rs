//! Enrichment events against the real broker and database: one event per committed row, none for
//! what was not written (duplicates, conflicts, quarantined records), deterministic ids, nothing
//! more on a rerun, and the same ids again after a crash between the publish and the cursor.

use crate::helpers::{event_ids, expected_event_ids, revised_event_ids, TestEnv};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

#[tokio::test(flavor = "multi_thread")]
async fn every_committed_row_has_one_event_and_nothing_else_has_one() {
    let env = TestEnv::new("enrich_json", false).await;
    // Re-crawls, revisions, replays and conflicts, and invalid records: only rows get events.
    env.simulate(&[
        "--topics",
        "market_data,news_article",
        "--records",
        "600",
        "--realism",
        "0.3",
    ]);
    let on = [
        ("ESURIO__KAFKA__TOPICS", "market_data,news_article"),
        ("ESURIO__ENRICHMENT__FAMILIES", "market_data,news_article"),
        ("ESURIO__ENRICHMENT__FORMAT", "json"),
        ("ESURIO__BATCH__MAX_RECORDS", "50"),
    ];
    env.run_until_idle_with(&on);

    for family in ["market_data", "news_article"] {
        let topic = format!("{}.enriched", env.topic(family));
        let events = env.read_topic(&topic);
        let got = event_ids(&events);
        let distinct: BTreeSet<String> = got.iter().cloned().collect();
        assert_eq!(
            distinct.len(),
            got.len(),
            "{family}: an id was published twice"
        );
        let current = expected_event_ids(&env, family).await;
        let once_current = revised_event_ids(&env, family).await;
        let every: BTreeSet<String> = current.union(&once_current).cloned().collect();
        let missing: Vec<_> = every.difference(&distinct).collect();
        assert!(
            missing.is_empty(),
            "{family}: versions without an event: {missing:?}"
        );
        let stray: Vec<_> = distinct.difference(&every).collect();
        assert!(
            stray.is_empty(),
            "{family}: events of no committed version: {stray:?}"
        );
        if family == "news_article" {
            assert!(
                !once_current.is_empty(),
                "the simulator's re-crawls revised articles"
            );
        }
        assert!(current.len() > 100, "{family}: {} rows", current.len());

        // The event says what the row says.
        let db = env.db().await;
        for m in events.iter().take(50) {
            let v: Value = serde_json::from_slice(&m.payload).unwrap();
            assert_eq!(v["family"], family);
            assert_eq!(v["schema_version"], 1);
            let id = v["event_id"].as_str().unwrap();
            let lineage = &v["lineage"];
            assert_eq!(
                id,
                format!(
                    "{}:{}:{}:{}",
                    lineage["topic"].as_str().unwrap(),
                    lineage["partition"],
                    lineage["offset"],
                    v["batch"]["id"]
                )
            );
            let key: Value = serde_json::from_slice(m.key.as_deref().unwrap()).unwrap();
            assert_eq!(key, v["key"]);
            if family == "market_data" && current.contains(id) {
                let row = db
                    .query_one(
                        "SELECT price, symbol FROM market_data WHERE source_partition = $1 AND source_offset = $2",
                        &[
                            &(lineage["partition"].as_i64().unwrap() as i32),
                            &lineage["offset"].as_i64().unwrap(),
                        ],
                    )
                    .await
                    .unwrap();
                assert_eq!(v["record"]["price"].as_f64().unwrap(), row.get::<_, f64>(0));
                assert_eq!(v["record"]["symbol"], row.get::<_, String>(1));
            }
            if family == "news_article" {
                assert!(v["record"]["entities"].is_array());
            }
        }
    }
    let cursor_events = env
        .count("SELECT sum(events)::bigint FROM enrichment_cursor")
        .await;

    // A rerun writes nothing and publishes nothing.
    env.run_until_idle_with(&on);
    let mut after = 0;
    for family in ["market_data", "news_article"] {
        after += env
            .read_topic(&format!("{}.enriched", env.topic(family)))
            .len() as i64;
    }
    assert_eq!(after, cursor_events, "the rerun published no event");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_after_the_publish_repeats_events_with_their_ids_and_misses_none() {
    let env = TestEnv::new("enrich_crash", false).await;
    env.simulate(&["--topics", "market_data", "--records", "2000"]);
    let on = [
        ("ESURIO__KAFKA__TOPICS", "market_data"),
        ("ESURIO__ENRICHMENT__FAMILIES", "market_data"),
        ("ESURIO__ENRICHMENT__MAX_BATCHES_PER_PASS", "4"),
        ("ESURIO__BATCH__MAX_RECORDS", "100"),
    ];
    // The third pass's events are acknowledged, then the process aborts before the cursor moves.
    let mut with_fault = on.to_vec();
    with_fault.push(("ESURIO_TEST_FAULT", "enrich_abort_after:3"));
    let (child, log) = env.spawn_logged(&["run", "--exit-when-idle", "3s"], &with_fault);
    let out = crate::helpers::wait_with_timeout(child, std::time::Duration::from_secs(300));
    assert!(!out.status.success(), "the fault aborts the worker");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("injected fault"),
        "{}",
        crate::helpers::tail(&text, 30)
    );
    let before = env.read_topic(&format!("{}.enriched", env.topic("market_data")));
    assert!(!before.is_empty(), "events were published before the abort");

    // The rerun reads back what the aborted run had handed over.
    let out = env.run_until_idle_with(&on);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        relay_count(&log, "read_back") > 0,
        "{}",
        crate::helpers::tail(&log, 20)
    );
    let events = env.read_topic(&format!("{}.enriched", env.topic("market_data")));
    // A repeated event is byte for byte the first: the hand-over (before the abort) encodes what
    // the read-back (after it) encodes.
    let mut first: BTreeMap<String, &[u8]> = BTreeMap::new();
    for m in &events {
        let id = crate::helpers::event_id(&m.payload);
        match first.get(&id) {
            Some(p) => assert_eq!(*p, &m.payload[..], "the two copies of {id} differ"),
            None => {
                first.insert(id, &m.payload);
            }
        }
    }
    let got = event_ids(&events);
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for id in &got {
        *count.entry(id).or_default() += 1;
    }
    let distinct: BTreeSet<String> = count.keys().map(|s| (*s).to_owned()).collect();
    assert_eq!(
        distinct,
        expected_event_ids(&env, "market_data").await,
        "one distinct id per row"
    );
    let repeated = count.values().filter(|n| **n > 1).count();
    assert!(repeated > 0, "the aborted pass's events were sent again");
    assert!(
        repeated <= 4 * 4 * 100,
        "repeats stay within the in-flight window (one pass per partition at once: 4 partitions x 4 batches of 100): {repeated}"
    );
    assert!(count.values().all(|n| *n <= 2));
    // Avro by default: every value is single-object encoded.
    assert!(events.iter().all(|m| m.payload.starts_with(&[0xC3, 0x01])));
}

/// A count from the relay's last log line ("Enrichment relay stopped; ... handed_over=N read_back=M").
fn relay_count(log: &str, field: &str) -> u64 {
    let pat = format!("{field}=");
    // The log is colored: drop the escape sequences.
    let mut plain = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for e in chars.by_ref() {
                if e.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
        .lines()
        .filter(|l| l.contains("Enrichment relay stopped"))
        .filter_map(|l| {
            let at = l.find(&pat)? + pat.len();
            let digits: String = l[at..].chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u64>().ok()
        })
        .sum()
}

/// Every family with events, through both routes: the first run relays what its writers handed
/// over (direct COPYs) and reads back the rest (merges, entities, JSON columns); with the cursors
/// moved back, a second run, which writes nothing, reads every batch back. Each event must come
/// out of the second run byte for byte as it came out of the first (char(n) padding, arrays,
/// dates, uuids, nulls included), and no other event.
#[tokio::test(flavor = "multi_thread")]
async fn handed_over_events_are_byte_for_byte_the_read_back_ones() {
    let env = TestEnv::new("enrich_handover", false).await;
    let families: Vec<&str> = esurio::records::FAMILIES
        .iter()
        .filter(|f| !f.tables.is_empty())
        .map(|f| f.name)
        .collect();
    // No realism: every batch without entities or references goes in by the direct COPY and is
    // handed over (merged batches are read back both times, which proves nothing here).
    env.simulate(&["--records", "120", "--invalid-ratio", "0.05"]);
    let list = families.join(",");
    let on = [
        ("ESURIO__ENRICHMENT__FAMILIES", list.as_str()),
        ("ESURIO__BATCH__MAX_RECORDS", "20"),
    ];
    let out = env.run_until_idle_with(&on);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        relay_count(&log, "handed_over") > 0,
        "{}",
        crate::helpers::tail(&log, 20)
    );

    let read = |env: &TestEnv| {
        let mut by_id: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
        for f in &families {
            for m in env.read_topic(&format!("{}.enriched", env.topic(f))) {
                by_id
                    .entry(crate::helpers::event_id(&m.payload))
                    .or_default()
                    .push(m.payload);
            }
        }
        by_id
    };
    let first = read(&env);
    assert!(first.values().all(|v| v.len() == 1), "one event per row");

    // Back to where each topic's events started: the second run relays everything again, and
    // since it commits no batch, nothing is handed over.
    let db = env.db().await;
    db.execute(
        "UPDATE enrichment_cursor c SET after_batch_id = t.enabled_from
           FROM enrichment_topics t
          WHERE t.consumer_group = c.consumer_group AND t.topic = c.topic",
        &[],
    )
    .await
    .unwrap();
    let out = env.run_until_idle_with(&on);
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(relay_count(&log, "handed_over"), 0);
    assert!(relay_count(&log, "read_back") > 0);

    let both = read(&env);
    assert_eq!(
        both.keys().collect::<Vec<_>>(),
        first.keys().collect::<Vec<_>>(),
        "the same events"
    );
    let mut per_family: BTreeMap<String, usize> = BTreeMap::new();
    for (id, copies) in &both {
        assert_eq!(copies.len(), 2, "{id}: published once by each run");
        assert_eq!(
            copies[0], copies[1],
            "{id}: the read-back differs from the hand-over"
        );
        let topic = id.rsplitn(4, ':').last().unwrap().to_owned();
        *per_family.entry(topic).or_default() += 1;
    }
    // Every family with rows has its events (char(n) columns: market_data, economic_indicator,
    // earnings_event).
    for f in [
        "market_data",
        "crypto_data",
        "order_book",
        "economic_indicator",
        "earnings_event",
    ] {
        assert!(
            per_family.get(&env.topic(f)).copied().unwrap_or(0) > 20,
            "{f}: {per_family:?}"
        );
    }
}
