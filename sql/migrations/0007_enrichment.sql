-- 0007_enrichment.sql: enrichment events, published after commit (src/enrich).
--
-- Design choices
-- * No outbox of event payloads: the committed rows themselves are the source of truth. A batch's
--   rows all carry ingested_at = now() of the batch's transaction (inserted rows by default,
--   revised rows by revise_update.sql), and the batch's audit row records the same instant as
--   started_at. So "the rows batch B wrote" is: the family's table, WHERE ingested_at =
--   B.started_at AND the row's lineage lies in B's offset range. A rolled-back batch has no audit
--   row and no rows, so it never yields an event; an identical replay writes no row, so it yields
--   none either.
-- * enrichment_cursor says, per (consumer group, topic, partition), the last ingest_batches.id
--   whose events the broker acknowledged. Within one partition ids are in commit order: every batch
--   first moves the partition's consumed_offsets row (a compare-and-set that holds its row lock until
--   COMMIT), so the next batch of the partition cannot take its id before this one committed. Across
--   partitions they are not, which is why the cursor is per partition and never global.
-- * A cursor starts at its topic's enrichment_topics.enabled_from (below).
-- * The relay claims cursor rows FOR UPDATE SKIP LOCKED: one relay per partition at a time, any
--   worker's; a killed relay's lock goes with its connection.
-- * ingested_at indexes: how the relay (and `esurio lineage`) finds a batch's rows. All rows of one
--   batch share the key, so the btree deduplicates them into posting lists, and new keys go to the
--   rightmost leaf. They also serve "what arrived since T". Not here for the tick tables
--   (market_data, crypto_data, order_book): there the index costs ~10% of COPY throughput, so
--   `esurio run` creates it when a tick family's events are switched on (sql/enrich/index.sql);
--   a tick's event id exists only then, so lineage needs it only then.

ALTER TABLE ingest_batches ADD COLUMN started_at timestamptz NOT NULL DEFAULT now();
COMMENT ON COLUMN ingest_batches.started_at IS
    'now() of the batch transaction: the ingested_at of every row the batch wrote (the enrichment relay and lineage find them by it).';
-- the relay: a partition's batches after its cursor, in id order.
CREATE INDEX ingest_batches_relay_idx ON ingest_batches (consumer_group, topic, partition, id);

-- The enrichment event id of a row (current or in history) from its lineage columns: the batch
-- that wrote it is the one whose started_at is the row's ingested_at and whose offset range holds
-- it (src/enrich/event.rs, event_id). NULL for a row no audited batch wrote; an error if two
-- batches match (a scalar subquery), which the design rules out.
CREATE FUNCTION esurio_event_id(source_topic text, source_partition int, source_offset bigint,
                                ingested_at timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT source_topic || ':' || source_partition || ':' || source_offset || ':'
           || (SELECT b.id
                 FROM ingest_batches b
                WHERE b.topic = source_topic AND b.partition = source_partition
                  AND source_offset BETWEEN b.first_offset AND b.last_offset
                  AND b.started_at = ingested_at)
$$;

CREATE TABLE enrichment_cursor (
    consumer_group  text        NOT NULL,
    topic           text        NOT NULL,
    partition       int         NOT NULL,
    after_batch_id  bigint      NOT NULL,
    events          bigint      NOT NULL DEFAULT 0,
    bytes           bigint      NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT enrichment_cursor_pkey PRIMARY KEY (consumer_group, topic, partition),
    CONSTRAINT enrichment_cursor_after_nonneg CHECK (after_batch_id >= 0)
);
COMMENT ON TABLE enrichment_cursor IS
    'Enrichment relay position per partition: events of every batch with id <= after_batch_id were acknowledged by the broker; events and bytes (key and value) count them.';

-- When each topic's events were switched on: the largest batch id committed then. A partition's
-- cursor starts there, whenever it is created (also after a crash that came before its creation),
-- so no batch committed with events on is skipped and none from before is published.
CREATE TABLE enrichment_topics (
    consumer_group  text        NOT NULL,
    topic           text        NOT NULL,
    enabled_from    bigint      NOT NULL,
    enabled_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT enrichment_topics_pkey PRIMARY KEY (consumer_group, topic)
);
COMMENT ON TABLE enrichment_topics IS
    'Per topic with enrichment events on: events cover batches with id > enabled_from.';

DO $do$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['news_article', 'news_entity', 'social_post', 'social_entity', 'economic_indicator',
                             'supply_chain_metric', 'earnings_event', 'sec_filing', 'feature',
                             'insight', 'strategy', 'signal'] LOOP
        EXECUTE format('CREATE INDEX %I ON %I (ingested_at)', t || '_ingested_at_idx', t);
    END LOOP;
    -- History: a version revised again (or deleted) before the relay read its batch is found
    -- there, by the same instant.
    FOREACH t IN ARRAY ARRAY['news_article', 'news_entity', 'social_post', 'social_entity',
                             'economic_indicator', 'supply_chain_metric', 'earnings_event',
                             'sec_filing', 'feature', 'insight', 'strategy', 'signal'] LOOP
        EXECUTE format('CREATE INDEX %I ON %I (ingested_at)', t || '_history_ingested_at_idx',
                       t || '_history');
    END LOOP;
END
$do$;
