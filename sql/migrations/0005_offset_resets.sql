-- 0005_offset_resets.sql: the audit trail of every move of a stored offset that was not a batch.
--
-- Design choices
-- * consumed_offsets normally moves only with the rows a batch writes (0003). Any other move (an
--   operator's `esurio offsets reset`, or the worker's own reset under kafka.on_offset_gap =
--   reset_to_earliest) skips or replays records, so each one leaves a row here: who, when, why, from
--   where to where, and what the broker held at that moment (its low and high offsets), so that a
--   gap can be explained long after the topic's retention removed the evidence.
-- * old_offset is NULL when the partition had no stored offset yet (the row was inserted).
-- * how is a short code: manual:earliest | manual:latest | manual:offset | manual:time for the
--   command, auto:earliest for the worker. os_user is who ran the command (NULL for the worker);
--   db_user is the database role that made the change.
-- * Append-only; nothing reads it on the hot path.

CREATE TABLE offset_resets (
    id              bigserial   NOT NULL,
    consumer_group  text        NOT NULL,
    topic           text        NOT NULL,
    partition       int         NOT NULL,
    old_offset      bigint,
    new_offset      bigint      NOT NULL,
    broker_low      bigint      NOT NULL,
    broker_high     bigint      NOT NULL,
    how             text        NOT NULL,
    reason          text,
    os_user         text,
    db_user         text        NOT NULL DEFAULT current_user,
    reset_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT offset_resets_pkey PRIMARY KEY (id),
    CONSTRAINT offset_resets_how_valid CHECK (how ~ '^(manual|auto):[a-z_]+$')
);
COMMENT ON TABLE offset_resets IS 'Audit trail: every change of consumed_offsets that was not a batch (operator resets, automatic resets over an offset gap).';
-- "what happened to this partition's position" (WHERE topic = $1 AND partition = $2 ORDER BY id).
CREATE INDEX offset_resets_partition_idx ON offset_resets (topic, partition, id);
