-- 0003_ingest_state.sql: the worker's own state: resume offsets, quarantine, batch audit trail.
--
-- Design choices
-- * consumed_offsets is the source of truth for where each (group, topic, partition) resumes. It is
--   updated in the same transaction as the rows a batch writes, so data and position commit
--   atomically (exactly-once into PostgreSQL); Kafka's own committed offsets are advisory only.
-- * quarantine keeps every record that could not be stored (decode / validate / database stage)
--   with its raw key and payload, once per Kafka position (UNIQUE lineage, so a replay does not
--   duplicate it). reason is a short machine-readable code (for a database rejection, the
--   constraint name); message is the human-readable detail. dlq_published_at is set once the
--   republisher has copied the record to the dead-letter topic.
-- * ingest_batches is an append-only audit trail, one row per committed batch.
-- * Timestamps are timestamptz (UTC).

CREATE TABLE consumed_offsets (
    consumer_group  text        NOT NULL,
    topic           text        NOT NULL,
    partition       int         NOT NULL,
    next_offset     bigint      NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT consumed_offsets_pkey PRIMARY KEY (consumer_group, topic, partition),
    CONSTRAINT consumed_offsets_next_offset_nonneg CHECK (next_offset >= 0)
);
COMMENT ON TABLE consumed_offsets IS 'Next Kafka offset to consume per (consumer_group, topic, partition); written in the batch transaction; source of truth for resuming.';

CREATE TABLE quarantine (
    id                bigserial   NOT NULL,
    source_topic      text        NOT NULL,
    source_partition  int         NOT NULL,
    source_offset     bigint      NOT NULL,
    record_key        bytea,
    payload           bytea,
    stage             text        NOT NULL,
    reason            text        NOT NULL,
    message           text        NOT NULL,
    record_ts         timestamptz,
    quarantined_at    timestamptz NOT NULL DEFAULT now(),
    dlq_published_at  timestamptz,
    CONSTRAINT quarantine_pkey PRIMARY KEY (id),
    CONSTRAINT quarantine_source_key UNIQUE (source_topic, source_partition, source_offset),
    CONSTRAINT quarantine_stage_valid CHECK (stage IN ('decode', 'validate', 'database'))
);
COMMENT ON TABLE quarantine IS 'Records that could not be stored, with the stage and reason; republished to the DLQ topic when dlq_published_at is NULL.';
-- counts / drill-down by reason ("how many rows did order_book_not_crossed reject today").
CREATE INDEX quarantine_reason_idx ON quarantine (reason);
-- the DLQ republisher's work queue ("WHERE dlq_published_at IS NULL ORDER BY id"); stays tiny.
CREATE INDEX quarantine_dlq_pending_idx ON quarantine (id) WHERE dlq_published_at IS NULL;

CREATE TABLE ingest_batches (
    id              bigserial   NOT NULL,
    consumer_group  text        NOT NULL,
    topic           text        NOT NULL,
    partition       int         NOT NULL,
    first_offset    bigint      NOT NULL,
    last_offset     bigint      NOT NULL,
    records         int         NOT NULL,
    rows_inserted   int         NOT NULL,
    duplicates      int         NOT NULL,
    quarantined     int         NOT NULL,
    committed_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ingest_batches_pkey PRIMARY KEY (id)
);
COMMENT ON TABLE ingest_batches IS 'Audit trail: one row per committed batch (offset range and outcome counts).';
-- "which batch wrote offset N of topic/partition" (WHERE topic = $1 AND partition = $2 AND
-- first_offset <= $3 ORDER BY first_offset DESC LIMIT 1).
CREATE INDEX ingest_batches_position_idx ON ingest_batches (topic, partition, first_offset);
