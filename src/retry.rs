//! The one retry policy: jittered exponential backoff.
//!
//! Each delay doubles from `initial` up to `max`, and the delay actually used is drawn uniformly
//! from its upper half ("equal jitter"): many partitions (or workers) that failed at the same moment
//! against the same dependency then come back spread out instead of in lockstep, while a delay never
//! drops below half its nominal value. The policy only computes delays; the caller decides how to
//! wait (the consumer thread pauses a partition rather than sleeping, see `crate::source`).

use rand::Rng;
use std::time::Duration;

/// The backoff state of one thing being retried (one partition waiting for the registry, ...).
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempts: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        Self {
            initial,
            max: max.max(initial),
            attempts: 0,
        }
    }

    /// Failed attempts so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Counts a failed attempt and returns how long to wait before the next one.
    pub fn next_delay(&mut self) -> Duration {
        let nominal = self.nominal(self.attempts);
        self.attempts = self.attempts.saturating_add(1);
        let half = nominal / 2;
        half + rand::thread_rng().gen_range(Duration::ZERO..=nominal - half)
    }

    /// The un-jittered delay after `failures` failures: `initial * 2^failures`, at most `max`.
    fn nominal(&self, failures: u32) -> Duration {
        self.initial
            .checked_mul(1u32.checked_shl(failures.min(31)).unwrap_or(u32::MAX))
            .map_or(self.max, |d| d.min(self.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_with_jitter_in_the_upper_half() {
        let (initial, max) = (Duration::from_millis(100), Duration::from_secs(2));
        let mut b = Backoff::new(initial, max);
        let mut seen_below_nominal = false;
        for n in 0..40u32 {
            let nominal = (initial * 2u32.pow(n.min(20))).min(max);
            let d = b.next_delay();
            assert!(
                d >= nominal / 2 && d <= nominal,
                "attempt {n}: {d:?} vs {nominal:?}"
            );
            seen_below_nominal |= d < nominal;
        }
        assert_eq!(b.attempts(), 40);
        assert!(seen_below_nominal, "the delays are jittered");
    }
}
