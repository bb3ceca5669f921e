//! FAULT INJECTION FOR TESTS ONLY: lets the integration tests make a part of the real worker fail
//! on purpose, to prove that such a failure is noticed. Never set in production.
//!
//! `ESURIO_TEST_FAULT` is read once, at the first question asked. Known values:
//! - `writer_panic_after:N`: the partition writer about to write the process's N-th batch (counted
//!   over all partitions, from 1) panics instead, before touching the database.
//! - `enrich_abort_after:N`: the process aborts (as a kill -9 would end it) right after the N-th
//!   enrichment pass got the broker's answers and before it moved its cursor: committed rows whose
//!   events were published but not recorded as such.
//!
//! Anything else is ignored (with a warning), so a typo cannot change behaviour silently.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    WriterPanicAfter(u64),
    EnrichAbortAfter(u64),
}

fn fault() -> Option<Fault> {
    static FAULT: OnceLock<Option<Fault>> = OnceLock::new();
    *FAULT.get_or_init(|| {
        let v = std::env::var("ESURIO_TEST_FAULT").ok()?;
        let parsed = parse(&v);
        match parsed {
            Some(f) => tracing::warn!(fault = ?f, "Fault injection is on (ESURIO_TEST_FAULT); this is for tests only."),
            None => tracing::warn!(value = %v, "Ignoring an unknown ESURIO_TEST_FAULT."),
        }
        parsed
    })
}

fn parse(v: &str) -> Option<Fault> {
    if let Some(n) = v.strip_prefix("enrich_abort_after:") {
        return Some(Fault::EnrichAbortAfter(n.parse().ok()?));
    }
    let n = v.strip_prefix("writer_panic_after:")?.parse().ok()?;
    Some(Fault::WriterPanicAfter(n))
}

/// Called by the enrichment relay after a pass's events were answered, before its cursor moves.
pub fn after_publishing_events(topic: &str, partition: i32) {
    static PASSES: AtomicU64 = AtomicU64::new(0);
    if let Some(Fault::EnrichAbortAfter(n)) = fault() {
        if PASSES.fetch_add(1, Ordering::Relaxed) + 1 == n {
            eprintln!("injected fault (ESURIO_TEST_FAULT=enrich_abort_after:{n}): aborting after publishing events of {topic}[{partition}]");
            std::process::abort();
        }
    }
}

/// Called by a partition writer before each batch it writes.
///
/// # Panics
/// On purpose, when `ESURIO_TEST_FAULT=writer_panic_after:N` and this is the N-th batch.
pub fn before_writing_a_batch(topic: &str, partition: i32) {
    static BATCHES: AtomicU64 = AtomicU64::new(0);
    if let Some(Fault::WriterPanicAfter(n)) = fault() {
        if BATCHES.fetch_add(1, Ordering::Relaxed) + 1 == n {
            panic!("injected fault (ESURIO_TEST_FAULT=writer_panic_after:{n}): the writer of {topic}[{partition}] panics");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_only_known_faults() {
        assert_eq!(
            super::parse("writer_panic_after:3"),
            Some(super::Fault::WriterPanicAfter(3))
        );
        assert_eq!(super::parse("writer_panic_after:x"), None);
        assert_eq!(super::parse("writer_panic"), None);
        assert_eq!(
            super::parse("enrich_abort_after:2"),
            Some(super::Fault::EnrichAbortAfter(2))
        );
    }
}
