//! How `kafka.prefetch_bytes` becomes librdkafka's per-partition prefetch bounds.

use rdkafka::client::{Client, ClientContext};
use std::time::Duration;
use tracing::{info, warn};

/// Each consumer's per-partition share of `kafka.prefetch_bytes`, as librdkafka's
/// `queued.max.messages.kbytes` and `queued.min.messages` (both are upper bounds per partition,
/// whatever their names say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefetch {
    pub kbytes_per_partition: u32,
    pub messages_per_partition: u32,
}

/// What librdkafka holds per fetched message beyond its payload (its op and message structs; a
/// heap profile of the 13-topic benchmark showed 241 MiB of them at ~1 million queued messages).
const MESSAGE_OVERHEAD: usize = 256;

/// Partitions assumed for a topic the metadata does not list (yet): auto-creation makes 1.
const UNKNOWN_TOPIC_PARTITIONS: usize = 1;

impl Prefetch {
    /// Splits `prefetch_bytes` evenly over `partitions`. The message bound assumes payloads of at
    /// least the overhead's size, so small records (market ticks, ~150 bytes) cannot queue many
    /// times their payload in librdkafka's bookkeeping.
    pub fn split(prefetch_bytes: usize, partitions: usize) -> Self {
        let share = prefetch_bytes / partitions.max(1);
        Self {
            kbytes_per_partition: (share / 1024).clamp(64, 2 * 1024 * 1024) as u32,
            messages_per_partition: (share / (2 * MESSAGE_OVERHEAD)).clamp(100, 10_000_000) as u32,
        }
    }

    /// Counts the partitions of `topics` in the cluster's metadata and splits `prefetch_bytes`
    /// over them. If the metadata cannot be read, assumes 4 partitions per topic.
    pub fn for_topics<C: ClientContext>(
        client: &Client<C>,
        topics: &[String],
        prefetch_bytes: usize,
    ) -> Self {
        let partitions = match client.fetch_metadata(None, Duration::from_secs(10)) {
            Ok(md) => topics
                .iter()
                .map(|t| {
                    md.topics()
                        .iter()
                        .find(|m| m.name() == t && m.error().is_none())
                        .map_or(UNKNOWN_TOPIC_PARTITIONS, |m| m.partitions().len().max(1))
                })
                .sum(),
            Err(e) => {
                warn!(error = %e, "Cannot read the topics' metadata; assuming 4 partitions per topic for the prefetch bound.");
                4 * topics.len()
            }
        };
        let p = Self::split(prefetch_bytes, partitions);
        info!(
            partitions,
            kbytes_per_partition = p.kbytes_per_partition,
            messages_per_partition = p.messages_per_partition,
            "Prefetch bound split over the consumed partitions."
        );
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefetch_budget_is_split_over_all_partitions() {
        let market = Prefetch::split(64 << 20, 4);
        assert_eq!(market.kbytes_per_partition, 16 * 1024);
        assert_eq!(market.messages_per_partition, 32 * 1024);
        let all = Prefetch::split(64 << 20, 52);
        assert!(all.kbytes_per_partition * 52 <= 64 * 1024);
        assert!(all.messages_per_partition as usize * 52 * 2 * MESSAGE_OVERHEAD <= 64 << 20);
        // Never zero, even when the budget is tiny or the partitions many.
        let tiny = Prefetch::split(1, 100_000);
        assert_eq!(
            (tiny.kbytes_per_partition, tiny.messages_per_partition),
            (64, 100)
        );
    }
}
