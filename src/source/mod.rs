//! The source: one Kafka consumer per topic, all in one group, each on its own thread.
//!
//! A topic's thread polls, decodes, validates and encodes each record into its partition's batch
//! (CPU work that would otherwise compete with the async writers), and hands full batches to the
//! partition's writer task through a bounded channel: a full channel blocks the thread, which is the
//! backpressure. On assignment a partition starts at the offset stored in PostgreSQL
//! ([`crate::sink`] says why that keeps exactly-once); on revocation its unwritten batches are
//! abandoned (the next owner re-reads them from the stored offset) and the thread waits, bounded, for
//! the write in flight.

mod partition;
mod topic;

pub use topic::{TopicProgress, TopicWorker, WorkerDeps};
