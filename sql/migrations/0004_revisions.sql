-- 0004_revisions.sql: what real spiders send. Revisions with their history, the version time that
-- orders them, outcome counts in the audit trail, and partitions that a writer without DDL rights
-- can have created, without blocking ingestion.
--
-- Design choices
-- * A conflict policy per family (declared in src/records, documented in docs/RECORDS.md):
--   `reject` for ticks (market_data, crypto_data, order_book: the first row stays, a record with the
--   same key and other values is quarantined as conflicting_duplicate), `revise` for everything
--   else (the row takes the newest version, every other version is kept in <table>_history).
-- * version_at on every revise table says how new a version is: the record's own time where it has
--   one (earnings reported_at, indicator released_at, insight generated_at, strategy created_at),
--   otherwise the Kafka record's timestamp (the spider's crawl/produce time). Ties go to Kafka order.
--   Rows written before this migration get their own time or, lacking one, ingested_at.
-- * <table>_history has the table's columns (LIKE, so the same order) plus why the version left the
--   current row: 'revised' (it was current and a newer version replaced it) or 'superseded' (it
--   arrived after a newer version and never was current), and when. Entities of a superseded
--   article/post version go to <entity>_history with the same lineage as their parent version, so a
--   version and its entity set are found together. "What did we know at time T" is a query over the
--   table and its history by ingested_at and superseded_at (docs/RECORDS.md).
-- * economic_indicator's key loses released_at: a restated value now revises the period's row (the
--   release instant is its version time) instead of adding a row; older vintages already stored move
--   to the history table here, so nothing is lost.
-- * esurio_ensure_partitions becomes SECURITY DEFINER (owned by whoever runs migrations) so that a
--   writer role needs no DDL rights, is bounded (at most 366 days per call, at most 31 days ahead), and
--   creates a partition as a standalone table that it then ATTACHes: ATTACH PARTITION takes SHARE
--   UPDATE EXCLUSIVE on the parent, which does not block inserts into it (CREATE TABLE ... PARTITION OF
--   takes ACCESS EXCLUSIVE and queued behind every open batch transaction).

-- ---------------------------------------------------------------------------------------------
-- version_at on the revise tables
ALTER TABLE news_article        ADD COLUMN version_at timestamptz;
ALTER TABLE social_post         ADD COLUMN version_at timestamptz;
ALTER TABLE economic_indicator  ADD COLUMN version_at timestamptz;
ALTER TABLE supply_chain_metric ADD COLUMN version_at timestamptz;
ALTER TABLE earnings_event      ADD COLUMN version_at timestamptz;
ALTER TABLE sec_filing          ADD COLUMN version_at timestamptz;
ALTER TABLE feature             ADD COLUMN version_at timestamptz;
ALTER TABLE insight             ADD COLUMN version_at timestamptz;
ALTER TABLE strategy            ADD COLUMN version_at timestamptz;
ALTER TABLE signal              ADD COLUMN version_at timestamptz;
UPDATE news_article        SET version_at = ingested_at;
UPDATE social_post         SET version_at = ingested_at;
UPDATE economic_indicator  SET version_at = released_at;
UPDATE supply_chain_metric SET version_at = ingested_at;
UPDATE earnings_event      SET version_at = reported_at;
UPDATE sec_filing          SET version_at = ingested_at;
UPDATE feature             SET version_at = ingested_at;
UPDATE insight             SET version_at = generated_at;
UPDATE strategy            SET version_at = created_at;
UPDATE signal              SET version_at = ingested_at;
ALTER TABLE news_article        ALTER COLUMN version_at SET NOT NULL;
ALTER TABLE social_post         ALTER COLUMN version_at SET NOT NULL;
ALTER TABLE economic_indicator  ALTER COLUMN version_at SET NOT NULL;
ALTER TABLE supply_chain_metric ALTER COLUMN version_at SET NOT NULL;
ALTER TABLE earnings_event      ALTER COLUMN version_at SET NOT NULL;
ALTER TABLE sec_filing          ALTER COLUMN version_at SET NOT NULL;
ALTER TABLE feature             ALTER COLUMN version_at SET NOT NULL;
ALTER TABLE insight             ALTER COLUMN version_at SET NOT NULL;
ALTER TABLE strategy            ALTER COLUMN version_at SET NOT NULL;
ALTER TABLE signal              ALTER COLUMN version_at SET NOT NULL;

-- ---------------------------------------------------------------------------------------------
-- history tables: one per revise table and per entity table
DO $do$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['news_article', 'news_entity', 'social_post', 'social_entity',
                             'economic_indicator', 'supply_chain_metric', 'earnings_event',
                             'sec_filing', 'feature', 'insight', 'strategy', 'signal'] LOOP
        EXECUTE format($f$
            CREATE TABLE %1$I (
                LIKE %2$I,
                history_reason text        NOT NULL,
                superseded_at  timestamptz NOT NULL DEFAULT now(),
                CONSTRAINT %3$I CHECK (history_reason IN ('revised', 'superseded'))
            )$f$, t || '_history', t, t || '_history_reason_valid');
        EXECUTE format('COMMENT ON TABLE %I IS %L', t || '_history',
            'Versions of ' || t || ' rows that are no longer current (revised) or never were (superseded: arrived after a newer version); same columns as ' || t || ' plus why and when.');
    END LOOP;
END
$do$;
-- "the versions of this key" (identity checks of the merge, lineage queries): the natural key.
CREATE INDEX news_article_history_key_idx        ON news_article_history (article_id);
CREATE INDEX news_entity_history_key_idx         ON news_entity_history (article_id, source_offset);
CREATE INDEX social_post_history_key_idx         ON social_post_history (post_uid);
CREATE INDEX social_entity_history_key_idx       ON social_entity_history (post_uid, source_offset);
CREATE INDEX economic_indicator_history_key_idx  ON economic_indicator_history (source, indicator, country, frequency, period_start);
CREATE INDEX supply_chain_metric_history_key_idx ON supply_chain_metric_history (source, metric, location, observed_at);
CREATE INDEX earnings_event_history_key_idx      ON earnings_event_history (symbol, fiscal_year, fiscal_quarter);
CREATE INDEX sec_filing_history_key_idx          ON sec_filing_history (accession_number);
CREATE INDEX feature_history_key_idx             ON feature_history (entity, name, ts, model_version);
CREATE INDEX insight_history_key_idx             ON insight_history (insight_id);
CREATE INDEX strategy_history_key_idx            ON strategy_history (strategy_id, version);
CREATE INDEX signal_history_key_idx              ON signal_history (strategy_id, strategy_version, symbol, ts);

-- ---------------------------------------------------------------------------------------------
-- economic_indicator: released_at leaves the key; older vintages become history.
INSERT INTO economic_indicator_history
SELECT e.*, 'revised', now()
  FROM economic_indicator e
 WHERE EXISTS (SELECT 1 FROM economic_indicator n
                WHERE (n.source, n.indicator, n.country, n.frequency, n.period_start)
                    = (e.source, e.indicator, e.country, e.frequency, e.period_start)
                  AND (n.released_at, n.source_partition, n.source_offset)
                    > (e.released_at, e.source_partition, e.source_offset));
DELETE FROM economic_indicator e
 WHERE EXISTS (SELECT 1 FROM economic_indicator n
                WHERE (n.source, n.indicator, n.country, n.frequency, n.period_start)
                    = (e.source, e.indicator, e.country, e.frequency, e.period_start)
                  AND (n.released_at, n.source_partition, n.source_offset)
                    > (e.released_at, e.source_partition, e.source_offset));
ALTER TABLE economic_indicator DROP CONSTRAINT economic_indicator_pkey;
ALTER TABLE economic_indicator ADD CONSTRAINT economic_indicator_pkey
    PRIMARY KEY (source, indicator, country, frequency, period_start);
COMMENT ON TABLE economic_indicator IS 'Macroeconomic series (topic economic_indicator), one row per series period holding its latest release (version_at = released_at); earlier releases in economic_indicator_history.';

-- ---------------------------------------------------------------------------------------------
-- the audit trail counts every outcome (records, not rows)
ALTER TABLE ingest_batches
    ADD COLUMN revised    int NOT NULL DEFAULT 0,
    ADD COLUMN superseded int NOT NULL DEFAULT 0,
    ADD COLUMN conflicts  int NOT NULL DEFAULT 0;
COMMENT ON COLUMN ingest_batches.duplicates IS 'Records dropped as identical to a version already stored (an identical replay).';
COMMENT ON COLUMN ingest_batches.revised IS 'Records that became the current version of an existing key (the previous version moved to history).';
COMMENT ON COLUMN ingest_batches.superseded IS 'Records stored straight into history: a newer version of their key was already current.';
COMMENT ON COLUMN ingest_batches.conflicts IS 'Records quarantined as conflicting_duplicate (reject families); also counted in quarantined.';

-- ---------------------------------------------------------------------------------------------
-- partitions: bounded, SECURITY DEFINER, create + attach
CREATE OR REPLACE FUNCTION esurio_ensure_partitions(parent regclass, from_day date, to_day date)
RETURNS int
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    parent_schema text;
    parent_name   text;
    part_column   text;
    part_day      date;
    part_name     text;
    lo            text;
    hi            text;
    existing      regclass;
    missing       date[];
    created       int := 0;
    today         date := (now() AT TIME ZONE 'UTC')::date;
BEGIN
    IF parent IS NULL OR from_day IS NULL OR to_day IS NULL THEN
        RAISE EXCEPTION 'esurio_ensure_partitions: arguments must not be NULL';
    END IF;
    IF to_day < from_day THEN
        RETURN 0;
    END IF;
    -- Bounds: whoever may call this (a writer role) may create partitions, not fill the catalog.
    IF to_day - from_day > 366 THEN
        RAISE EXCEPTION 'esurio_ensure_partitions: % .. % spans more than 366 days', from_day, to_day;
    END IF;
    IF to_day > today + 31 THEN
        RAISE EXCEPTION 'esurio_ensure_partitions: % is more than 31 days ahead', to_day;
    END IF;

    SELECT n.nspname, c.relname, a.attname
      INTO parent_schema, parent_name, part_column
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_partitioned_table p ON p.partrelid = c.oid
      JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = p.partattrs[0]
     WHERE c.oid = parent AND c.relkind = 'p';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'esurio_ensure_partitions: % is not a partitioned table', parent;
    END IF;

    -- Fast path, no lock (see 0002): which days lack a partition of parent?
    SELECT array_agg(d::date ORDER BY d)
      INTO missing
      FROM generate_series(from_day::timestamp, to_day::timestamp, interval '1 day') AS d
     WHERE pg_partition_root(to_regclass(format('%I.%I', parent_schema,
                 parent_name || '_p' || to_char(d, 'YYYYMMDD')))) IS DISTINCT FROM parent;
    IF missing IS NULL THEN
        RETURN 0;
    END IF;

    PERFORM pg_advisory_xact_lock(hashtext('esurio_partitions'));

    FOREACH part_day IN ARRAY missing LOOP
        part_name := parent_name || '_p' || to_char(part_day, 'YYYYMMDD');
        existing := to_regclass(format('%I.%I', parent_schema, part_name));
        IF existing IS NOT NULL THEN
            IF pg_partition_root(existing) IS DISTINCT FROM parent THEN
                RAISE EXCEPTION 'esurio_ensure_partitions: %.% exists but is not a partition of %',
                    parent_schema, part_name, parent;
            END IF;
            CONTINUE;
        END IF;
        lo := to_char(part_day, 'YYYY-MM-DD') || ' 00:00:00+00';
        hi := to_char(part_day + 1, 'YYYY-MM-DD') || ' 00:00:00+00';
        -- A standalone table with the parent's columns, defaults, CHECKs and indexes, and a CHECK
        -- that proves the bounds, so ATTACH needs no scan; then attach it and drop the proof.
        EXECUTE format('CREATE TABLE %I.%I (LIKE %I.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
                       'INCLUDING GENERATED INCLUDING INDEXES INCLUDING STORAGE)',
                       parent_schema, part_name, parent_schema, parent_name);
        EXECUTE format('ALTER TABLE %I.%I ADD CONSTRAINT esurio_bounds CHECK (%I >= %L AND %I < %L)',
                       parent_schema, part_name, part_column, lo, part_column, hi);
        EXECUTE format('ALTER TABLE %I.%I ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                       parent_schema, parent_name, parent_schema, part_name, lo, hi);
        EXECUTE format('ALTER TABLE %I.%I DROP CONSTRAINT esurio_bounds', parent_schema, part_name);
        created := created + 1;
    END LOOP;
    RETURN created;
END
$fn$;
COMMENT ON FUNCTION esurio_ensure_partitions(regclass, date, date) IS
    'Creates the missing daily partitions <parent>_pYYYYMMDD for the UTC days from_day..to_day (inclusive, at most 366 days, at most 31 days ahead); returns how many it created. SECURITY DEFINER: grant EXECUTE to the writer role, which needs no DDL rights. Concurrency-safe; does not block inserts into the parent.';
REVOKE ALL ON FUNCTION esurio_ensure_partitions(regclass, date, date) FROM PUBLIC;
