//! Integration tests: the real worker binary against the real PostgreSQL and the real Kafka broker
//! of `scripts/stack`. Each test gets its own database, topic prefix and consumer group, so tests
//! run in parallel without sharing state.

mod cli;
mod crash;
mod dlq;
mod enrich;
mod helpers;
mod lineage;
mod offsets;
mod partitions;
mod pipeline;
mod realdata;
mod roundtrip;
mod stray;
mod writeback;
