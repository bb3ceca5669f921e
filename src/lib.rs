//! # Esurio ingest
//!
//! Spider topics from Kafka into PostgreSQL with COPY, exactly once.
//!
//! # Layout
//! A record flows `consume -> decode -> validate/normalize -> batch -> write (COPY) -> commit ->
//! publish`:
//! - [`source`]: one Kafka consumer per topic, on its own thread; starts each assigned partition at
//!   the offset stored in PostgreSQL; decodes, validates and encodes records into batches.
//! - [`decode`]: Avro (schema registry wire format, single-object) and JSON, to a payload.
//! - [`records`]: one file per record family: the wire struct, validation and normalization into the
//!   valid struct, and its COPY rows.
//! - [`batch`]: a partition's records between two writes, cut by rows, bytes and linger time.
//! - [`sink`]: the pool, binary COPY into staging, merge with duplicate detection, quarantine and the
//!   offset compare-and-set, in one transaction per batch; the ML write-back (reference checks,
//!   updates, tombstone deletes: `sink::writeback`); migrations.
//! - [`publish`]: after commit: the dead-letter relay.
//! - [`admin`]: operator commands: `esurio offsets list | reset` (stored offsets against the
//!   broker, audited resets); `esurio lineage` (what a result was computed from).
//! - [`run`]: wiring, supervision and shutdown; [`simulate`]: the spider simulator; [`config`],
//!   [`telemetry`]; [`retry`]: the jittered exponential backoff policy; [`fault`]: a fault-injection
//!   hook for tests only.

pub mod admin;
pub mod batch;
pub mod bench;
pub mod config;
pub mod decode;
pub mod enrich;
pub mod fault;
pub mod publish;
pub mod records;
pub mod retry;
pub mod run;
pub mod simulate;
pub mod sink;
pub mod source;
pub mod telemetry;
