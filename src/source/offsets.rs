//! Offsets never jump silently: before a partition resumes at its stored offset, that offset is
//! compared with what the broker holds.
//!
//! PostgreSQL's `consumed_offsets` says where each partition resumes, but the broker may no longer
//! hold that position: above the high watermark the topic was deleted and recreated (or truncated),
//! below the low watermark retention removed records before they were written. librdkafka would
//! quietly start elsewhere (`auto.offset.reset`), and a stored offset above the end would skip every
//! new record below it. So at assignment, and whenever a held partition is checked again, [`gate`]
//! decides: start at the stored offset, or hold the partition. Under `kafka.on_offset_gap = stop` a
//! partition with a gap is held (paused, no writer: nothing written, nothing skipped) with one error
//! line that names the command resolving it; the rest of the worker goes on, and the partition is
//! checked every `kafka.offset_check_interval`, so an operator's `esurio offsets reset` takes effect
//! without a restart. Under `reset_to_earliest` the worker moves the stored offset to the low
//! watermark itself, recording the gap in `offset_resets` ([`crate::sink::offsets`]).
//!
//! One case watermarks cannot see: a topic recreated with at least as many records as the stored
//! offset. Telling that apart needs the topic's id, which librdkafka's consumer API does not expose.

use super::WorkerDeps;
use crate::config::OffsetGapPolicy;
use crate::sink::offsets::{self as store, OffsetsError, Reset};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use std::fmt;
use std::time::{Duration, Instant};
use tracing::{error, warn};

/// Where a stored offset stands against the broker's low and high offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Written up to the end.
    Ok,
    /// Records wait between the stored offset and the end.
    Behind,
    /// Above the end: the topic was deleted and recreated, or truncated.
    Recreated,
    /// Below the start: retention removed records that were never written.
    Gap,
    /// The broker has the partition, the database has no offset for it (it starts at the beginning).
    New,
}

impl Status {
    /// Whether resuming at the stored offset would skip records silently.
    pub fn is_gap(self) -> bool {
        matches!(self, Status::Recreated | Status::Gap)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Behind => "behind",
            Status::Recreated => "recreated",
            Status::Gap => "gap",
            Status::New => "new",
        }
    }

    /// What happened, for operators.
    pub fn explain(self) -> &'static str {
        match self {
            Status::Recreated => "the stored offset is above the broker's high offset: the topic was deleted and recreated, or truncated",
            Status::Gap => "the stored offset is below the broker's low offset: retention removed records that were never written",
            Status::Ok => "written up to the broker's high offset",
            Status::Behind => "records wait between the stored offset and the broker's high offset",
            Status::New => "no stored offset: the partition starts at the beginning",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Classifies a stored offset (`None`: never written) against the broker's `low`..`high`.
pub fn classify(stored: Option<i64>, low: i64, high: i64) -> Status {
    match stored {
        None => Status::New,
        Some(s) if s > high => Status::Recreated,
        Some(s) if s < low => Status::Gap,
        Some(s) if s == high => Status::Ok,
        Some(_) => Status::Behind,
    }
}

/// The command that resolves a gap, for the error line.
pub fn fix_command(topic: &str, partition: i32) -> String {
    format!(
        "esurio offsets reset --topic {topic} --partition {partition} --to-earliest --reason '...'"
    )
}

/// Why a partition is held back instead of consumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum HoldReason {
    /// The stored offset is outside the broker's range (the policy is `stop`, or the automatic reset
    /// could not be made).
    Gap {
        stored: i64,
        low: i64,
        high: i64,
        status: Status,
    },
    /// The check could not be made yet (the broker did not answer in time, the database is down);
    /// retried shortly, never treated as caught up.
    Unchecked(String),
}

/// A partition this worker was assigned but does not consume.
#[derive(Debug, Clone)]
pub(super) struct Held {
    pub reason: HoldReason,
    pub next_check: Instant,
}

impl Held {
    /// For the idle exit's message: `topic[p]: stored S, broker L..H (recreated)`.
    pub fn describe(&self, topic: &str, partition: i32) -> String {
        match &self.reason {
            HoldReason::Gap {
                stored,
                low,
                high,
                status,
            } => format!("{topic}[{partition}]: stored {stored}, broker {low}..{high} ({status})"),
            HoldReason::Unchecked(why) => format!("{topic}[{partition}]: not checked yet ({why})"),
        }
    }

    pub fn is_gap(&self) -> bool {
        matches!(self.reason, HoldReason::Gap { .. })
    }
}

/// What to do with an assigned partition.
pub(super) enum Gate {
    /// Consume from this stored offset (`None`: from the beginning).
    Start(Option<i64>),
    Hold(Held),
}

/// How long a check may wait for the broker outside the rebalance callback.
pub(super) const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// A partition whose check could not be made is tried again this soon.
const UNCHECKED_RETRY: Duration = Duration::from_secs(1);
/// Attempts at an automatic reset when batches or operators keep moving the offset meanwhile.
const AUTO_RESET_ATTEMPTS: usize = 3;

/// What the rebalance callback may spend on broker round trips in total: the group waits for the
/// callback, so a slow broker must not cost more than a fraction of the session timeout.
pub(super) fn callback_budget(session_timeout: Duration) -> Duration {
    (session_timeout / 3).min(Duration::from_secs(10))
}

/// Decides whether `partition` may start at `stored`, fetching the broker's watermarks (a blocking
/// round trip, at most `timeout`). Under `reset_to_earliest` a gap is resolved here, in the
/// database, before the partition starts. Logs the warning of an automatic reset; the caller logs
/// holds (it knows whether one is new).
pub(super) fn gate<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    deps: &WorkerDeps,
    topic: &str,
    partition: i32,
    mut stored: Option<i64>,
    timeout: Duration,
) -> Gate {
    let check_interval = deps.settings.kafka.offset_check_interval;
    let unchecked = |why: String| {
        Gate::Hold(Held {
            reason: HoldReason::Unchecked(why),
            next_check: Instant::now() + UNCHECKED_RETRY.min(check_interval),
        })
    };
    let Some(mut s) = stored else {
        // Never written: starting at the beginning skips nothing.
        return Gate::Start(None);
    };
    if timeout.is_zero() {
        return unchecked("no time was left for broker round trips in this pass".into());
    }
    for _ in 0..AUTO_RESET_ATTEMPTS {
        let (low, high) = match consumer.fetch_watermarks(topic, partition, timeout) {
            Ok(w) => w,
            Err(e) => return unchecked(format!("cannot fetch the broker's offsets: {e}")),
        };
        let status = classify(Some(s), low, high);
        if !status.is_gap() {
            return Gate::Start(Some(s));
        }
        let held = Held {
            reason: HoldReason::Gap {
                stored: s,
                low,
                high,
                status,
            },
            next_check: Instant::now() + check_interval,
        };
        if deps.settings.kafka.on_offset_gap == OffsetGapPolicy::Stop {
            return Gate::Hold(held);
        }
        let reset = Reset {
            group: deps.sink.group(),
            topic,
            partition,
            expect: Some(Some(s)),
            new_offset: low,
            low,
            high,
            how: "auto:earliest",
            reason: Some(status.explain()),
            os_user: None,
        };
        let res = deps.runtime.block_on(async {
            let mut client = deps.sink.pool().get().await?;
            store::apply(&mut client, &reset, false).await
        });
        match res {
            Ok(_) => {
                warn!(topic, partition, stored = s, broker_low = low, broker_high = high, %status,
                    skipped = (low - s).max(0), reason = status.explain(),
                    "Reset a partition's stored offset to the broker's earliest offset over an offset gap (kafka.on_offset_gap = reset_to_earliest); recorded in offset_resets.");
                return Gate::Start(Some(low));
            }
            Err(OffsetsError::Moved { found, .. }) => {
                // A batch or an operator moved it since it was read: decide again on the new value.
                stored = found;
                match found {
                    Some(f) => s = f,
                    None => return Gate::Start(None),
                }
            }
            Err(e) => {
                error!(topic, partition, error = %e, "Failed to reset a partition's stored offset over an offset gap; holding the partition and retrying.");
                return Gate::Hold(held);
            }
        }
    }
    unchecked(format!(
        "the stored offset kept moving during an automatic reset (last {stored:?})"
    ))
}

/// The error line of a partition stopped on a gap: once per distinct gap.
pub(super) fn log_hold(topic: &str, partition: i32, held: &Held) {
    match &held.reason {
        HoldReason::Gap {
            stored,
            low,
            high,
            status,
        } => error!(
            topic,
            partition,
            stored,
            broker_low = low,
            broker_high = high,
            %status,
            reason = status.explain(),
            fix = %fix_command(topic, partition),
            "Stopped a partition: its stored offset is outside the broker's range, so resuming there would skip records. Nothing of it is written or skipped until its offset is reset (see `esurio offsets list`); the rest of the worker goes on."
        ),
        HoldReason::Unchecked(why) => warn!(
            topic,
            partition,
            why = %why,
            "Holding a partition until its stored offset can be checked against the broker."
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_against_the_watermarks() {
        assert_eq!(classify(None, 0, 10), Status::New);
        assert_eq!(classify(Some(10), 0, 10), Status::Ok);
        assert_eq!(classify(Some(4), 0, 10), Status::Behind);
        assert_eq!(classify(Some(11), 0, 10), Status::Recreated);
        assert_eq!(classify(Some(50), 0, 3), Status::Recreated);
        assert_eq!(classify(Some(2), 5, 10), Status::Gap);
        assert_eq!(classify(Some(5), 5, 10), Status::Behind);
        assert_eq!(classify(Some(0), 0, 0), Status::Ok);
        // Everything deleted by retention: nothing to read, but what was there was never written.
        assert_eq!(classify(Some(3), 7, 7), Status::Gap);
        assert!(Status::Recreated.is_gap() && Status::Gap.is_gap());
        assert!(!Status::Behind.is_gap() && !Status::New.is_gap() && !Status::Ok.is_gap());
    }
}
