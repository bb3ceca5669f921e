//! Per-partition state on the consumer thread, and the partition's writer task.

use crate::batch::Batch;
use crate::retry::Backoff;
use crate::sink::{Sink, SinkError};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// What writers tell their consumer thread.
#[derive(Debug)]
pub enum Control {
    /// A batch of `epoch` committed; the partition's stored offset is now `next_offset`.
    Committed {
        partition: i32,
        epoch: u64,
        next_offset: i64,
    },
    /// A batch of `epoch` was fenced: another writer moved the stored offset to `stored`. The thread
    /// must drop what it has for the partition and re-seek there.
    Fenced {
        partition: i32,
        epoch: u64,
        stored: Option<i64>,
    },
}

pub struct PartitionState {
    pub epoch: u64,
    /// The stored offset the next batch continues from.
    pub expected: Option<i64>,
    /// The last stored offset known committed (for idle detection and Kafka commits).
    pub committed: Option<i64>,
    /// The next offset we accept from Kafka; older ones are leftovers from before a seek.
    pub position: Option<i64>,
    pub batch: Option<Batch>,
    /// Sealed batches the writer's queue had no room for yet. While any wait, the partition is
    /// paused in the consumer, so the thread keeps polling (heartbeats, rebalances) without fetching
    /// more: memory stays bounded by the prefetch limit and the group never evicts us.
    pub pending: std::collections::VecDeque<Batch>,
    /// Paused in the consumer (for backpressure, the memory budget, or a registry wait).
    pub paused: bool,
    /// Set while a record of this partition waits for the schema registry; see [`RegistryWait`].
    pub registry_wait: Option<RegistryWait>,
    pub writer: mpsc::Sender<Batch>,
    /// Fired when the partition is revoked: queued batches are dropped unwritten.
    pub revoked: CancellationToken,
    pub handle: tokio::task::JoinHandle<()>,
    /// Batches sent to the writer and not yet acknowledged.
    pub in_flight: usize,
}

/// A partition held back because a record needs the schema registry and the registry is
/// unavailable. The record is neither quarantined nor skipped: the partition's position goes back
/// to it, the consumer seeks there and pauses the partition (the thread keeps polling, so
/// heartbeats, rebalances and the other partitions go on), and resumes it at `retry_at`, which
/// re-fetches from the record. On shutdown the stored offset simply stays at the record.
#[derive(Debug)]
pub struct RegistryWait {
    /// The record that could not be decoded yet.
    pub offset: i64,
    /// When to resume and try again; `None` once resumed, until the record is read back.
    pub retry_at: Option<Instant>,
    pub backoff: Backoff,
}

impl RegistryWait {
    /// Whether the partition must stay paused for the registry now.
    pub fn holds(&self) -> bool {
        self.retry_at.is_some()
    }
}

/// Writes a partition's batches in order until the channel closes.
///
/// It returns before the channel closes only when the hard stop fires while a write is retried;
/// the consumer thread treats any other end (or a panic) while it owns the partition as the death
/// of the writer and stops the worker.
pub async fn run_writer(
    mut rx: mpsc::Receiver<Batch>,
    sink: Arc<Sink>,
    revoked: CancellationToken,
    hard_stop: CancellationToken,
    ctl: std_mpsc::Sender<Control>,
    dlq: Arc<tokio::sync::Notify>,
    enrich: Option<crate::enrich::EnrichHook>,
) {
    let mut fenced_epoch: Option<u64> = None;
    while let Some(batch) = rx.recv().await {
        if revoked.is_cancelled() || fenced_epoch.is_some_and(|e| batch.epoch <= e) {
            continue;
        }
        crate::fault::before_writing_a_batch(&batch.topic, batch.partition);
        match sink.write(&batch, &hard_stop).await {
            Ok(o) => {
                if o.quarantined > 0 {
                    dlq.notify_one();
                }
                if let Some(hook) = &enrich {
                    if o.direct {
                        // The table holds exactly the COPY stream: the relay encodes the events
                        // from it instead of reading the rows back. Offered before the relay
                        // hears of the batch, so it is there when the relay looks.
                        if let Some((rows, _)) = batch.staged.sealed().next() {
                            hook.handovers
                                .offer(&batch.topic, batch.partition, o.batch_id, rows);
                        }
                    }
                    // The relay may have stopped (shutdown): its cursor keeps the batch anyway.
                    let _ = hook.committed.send((batch.topic.clone(), batch.partition));
                }
                debug!(
                    topic = %batch.topic,
                    partition = batch.partition,
                    first = batch.first_offset,
                    last = batch.last_offset,
                    records = o.records,
                    rows = o.rows_inserted,
                    duplicates = o.duplicates,
                    quarantined = o.quarantined,
                    attempts = o.attempts,
                    "Committed a batch."
                );
                let _ = ctl.send(Control::Committed {
                    partition: batch.partition,
                    epoch: batch.epoch,
                    next_offset: batch.next_offset(),
                });
            }
            Err(SinkError::Fenced { stored, .. }) => {
                warn!(topic = %batch.topic, partition = batch.partition, ?stored, expected = ?batch.expected,
                    "Another writer moved this partition's offset; dropping the batch and re-seeking.");
                fenced_epoch = Some(batch.epoch);
                let _ = ctl.send(Control::Fenced {
                    partition: batch.partition,
                    epoch: batch.epoch,
                    stored,
                });
            }
            Err(e) => {
                // Only reached when the hard stop fired while retrying: nothing was committed, and
                // the stored offset still points at this batch, so it is read again after restart.
                warn!(error = %e, topic = %batch.topic, partition = batch.partition,
                    "Stopped before a batch could be written; it will be re-read after restart.");
                return;
            }
        }
    }
}
