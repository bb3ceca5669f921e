//! The source: one Kafka consumer per topic, all in one group, each on its own thread.
//!
//! A topic's thread polls, decodes, validates and encodes each record into its partition's batch
//! (CPU work that would otherwise compete with the async writers), and hands full batches to the
//! partition's writer task through a bounded channel. When the channel is full the batch waits on
//! the thread and the partition is paused in the consumer, which keeps polling (so heartbeats and
//! rebalances are served and the group never evicts a worker behind a slow database) while memory
//! stays bounded by the prefetch limit ([`Prefetch`]) and the batch budget
//! ([`crate::batch::MemoryBudget`]); it resumes once the writer caught up. On assignment a
//! partition starts at the offset stored in PostgreSQL ([`crate::sink`] says why that keeps
//! exactly-once); on revocation its unwritten batches are abandoned (the next owner re-reads them
//! from the stored offset) and the thread waits, bounded, for the write in flight. A stored offset
//! the broker no longer holds (a recreated topic, retention) never makes a partition skip records
//! silently ([`offsets`]).

pub mod offsets;
mod partition;
mod prefetch;
mod topic;

pub use prefetch::Prefetch;
pub use topic::{TopicProgress, TopicWorker, WorkerDeps};
