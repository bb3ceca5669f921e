-- 0008_writeback.sql: the ML write-back loop. Results say what produced them, updates of existing
-- rows keep the value they replace, tombstones delete results into history.
--
-- Design choices
-- * Results (feature, insight, strategy, signal) record their producer: model, model_version and
--   inputs, the enrichment event ids ("topic:partition:offset:batch_id") or batch ids ("batch:<id>")
--   the row was computed from (docs/RECORDS.md, docs/LINEAGE.md). inputs is a set (sorted, no
--   repeats); '{}' when the producer does not say. The CHECKs mirror the validator's rules
--   (invalid_input_ref), so that a row written by something else still meets the contract.
-- * The history tables are LIKE their table (0004) and take the same columns, so that a version
--   keeps its producer when it leaves the current row. All merge statements name their columns, so
--   the columns' position (after history_reason there) does not matter.
-- * References are checked by the sink against the database, set-based per batch, and the record is
--   quarantined alone (unknown_entity, unknown_strategy): esurio_known_symbol() says whether a symbol
--   has any row of market or reference data (every table it reads has an index led by symbol).
-- * Updates: sentiment_update records set a sentiment on an existing news_article or social_post row
--   (the sentiment_* columns). The value they replace moves to sentiment_history with the lineage of
--   the update that replaced it. An update touches neither ingested_at nor the row's lineage: the row
--   is still the spider's record (the enrichment relay finds a batch's rows by ingested_at).
-- * Deletes: a tombstone on insight, strategy or signal moves the row to <table>_history with
--   history_reason 'deleted'.
-- * ingest_batches counts the new outcomes: updated (updates applied) and deleted (rows removed).

-- ---------------------------------------------------------------------------------------------
-- results: model, model_version, inputs (feature had model_version, insight had model)
ALTER TABLE feature          ADD COLUMN model text,                            ADD COLUMN inputs text[] NOT NULL DEFAULT '{}';
ALTER TABLE feature_history  ADD COLUMN model text,                            ADD COLUMN inputs text[] NOT NULL DEFAULT '{}';
ALTER TABLE insight          ADD COLUMN model_version text,                    ADD COLUMN inputs text[] NOT NULL DEFAULT '{}';
ALTER TABLE insight_history  ADD COLUMN model_version text,                    ADD COLUMN inputs text[] NOT NULL DEFAULT '{}';
ALTER TABLE strategy         ADD COLUMN model text, ADD COLUMN model_version text, ADD COLUMN inputs text[] NOT NULL DEFAULT '{}';
ALTER TABLE strategy_history ADD COLUMN model text, ADD COLUMN model_version text, ADD COLUMN inputs text[] NOT NULL DEFAULT '{}';
ALTER TABLE signal           ADD COLUMN model text, ADD COLUMN model_version text, ADD COLUMN inputs text[] NOT NULL DEFAULT '{}';
ALTER TABLE signal_history   ADD COLUMN model text, ADD COLUMN model_version text, ADD COLUMN inputs text[] NOT NULL DEFAULT '{}';

-- An input reference: an event id "topic:partition:offset:batch_id" (Kafka topic names are
-- [A-Za-z0-9._-], at most 249 characters) or "batch:<ingest_batches.id>".
CREATE FUNCTION esurio_inputs_valid(inputs text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN cardinality(inputs) <= 1000
   AND array_position(inputs, NULL) IS NULL
   AND (cardinality(inputs) = 0
        OR array_to_string(inputs, ' ') ~ '^(([A-Za-z0-9._-]{1,249}:[0-9]{1,10}:[0-9]{1,19}:[0-9]{1,19}|batch:[0-9]{1,19})( |$))+$');
COMMENT ON FUNCTION esurio_inputs_valid(text[]) IS
    'Whether every element of a results row''s inputs is an event id (topic:partition:offset:batch_id) or a batch id (batch:<id>); at most 1000.';

DO $do$
DECLARE
    t text;
    c text;
BEGIN
    FOREACH t IN ARRAY ARRAY['feature', 'insight', 'strategy', 'signal'] LOOP
        -- feature_model_version_length and insight_model_length exist since 0001.
        FOREACH c IN ARRAY ARRAY['model', 'model_version'] LOOP
            IF NOT EXISTS (SELECT 1 FROM pg_constraint
                            WHERE conname = t || '_' || c || '_length' AND conrelid = t::regclass) THEN
                EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (char_length(%I) BETWEEN 1 AND 64)',
                               t, t || '_' || c || '_length', c);
            END IF;
        END LOOP;
        EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (esurio_inputs_valid(inputs))',
                       t, t || '_inputs_valid');
        -- tombstones (insight, strategy, signal; harmless for feature, which has none)
        EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', t || '_history', t || '_history_reason_valid');
        EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (history_reason IN (%L, %L, %L))',
                       t || '_history', t || '_history_reason_valid', 'revised', 'superseded', 'deleted');
    END LOOP;
END
$do$;
COMMENT ON COLUMN feature.inputs IS 'Event ids (topic:partition:offset:batch_id) or batch ids (batch:<id>) the value was computed from: its lineage (esurio lineage).';
COMMENT ON COLUMN insight.inputs IS 'Event ids (topic:partition:offset:batch_id) or batch ids (batch:<id>) the insight was computed from: its lineage (esurio lineage).';
COMMENT ON COLUMN strategy.inputs IS 'Event ids (topic:partition:offset:batch_id) or batch ids (batch:<id>) the strategy version was derived from: its lineage (esurio lineage).';
COMMENT ON COLUMN signal.inputs IS 'Event ids (topic:partition:offset:batch_id) or batch ids (batch:<id>) the signal was computed from: its lineage (esurio lineage).';

-- ---------------------------------------------------------------------------------------------
-- known symbols: what unknown_entity checks against
CREATE FUNCTION esurio_known_symbol(sym text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
RETURN EXISTS (SELECT 1 FROM market_data    WHERE symbol = sym)
    OR EXISTS (SELECT 1 FROM crypto_data    WHERE symbol = sym)
    OR EXISTS (SELECT 1 FROM order_book     WHERE symbol = sym)
    OR EXISTS (SELECT 1 FROM earnings_event WHERE symbol = sym)
    OR EXISTS (SELECT 1 FROM sec_filing     WHERE symbol = sym)
    OR EXISTS (SELECT 1 FROM news_entity    WHERE symbol = sym)
    OR EXISTS (SELECT 1 FROM social_entity  WHERE symbol = sym);
COMMENT ON FUNCTION esurio_known_symbol(text) IS
    'Whether a symbol has a row in market_data, crypto_data, order_book, earnings_event, sec_filing, news_entity or social_entity (each lookup uses an index led by symbol).';

-- ---------------------------------------------------------------------------------------------
-- updates: the sentiment of articles and posts, and the values it replaced
ALTER TABLE news_article
    ADD COLUMN sentiment_score         float8,
    ADD COLUMN sentiment_model         text,
    ADD COLUMN sentiment_model_version text,
    ADD COLUMN sentiment_inputs        text[],
    ADD COLUMN sentiment_at            timestamptz,
    ADD COLUMN sentiment_source        text,
    ADD CONSTRAINT news_article_sentiment_score_range CHECK (sentiment_score BETWEEN -1 AND 1);
ALTER TABLE social_post
    ADD COLUMN sentiment_score         float8,
    ADD COLUMN sentiment_model         text,
    ADD COLUMN sentiment_model_version text,
    ADD COLUMN sentiment_inputs        text[],
    ADD COLUMN sentiment_at            timestamptz,
    ADD COLUMN sentiment_source        text,
    ADD CONSTRAINT social_post_sentiment_score_range CHECK (sentiment_score BETWEEN -1 AND 1);
COMMENT ON COLUMN news_article.sentiment_score IS 'Set by sentiment_update records (a model''s score in [-1, 1]); sentiment_source is the update''s lineage (topic:partition:offset); earlier values in sentiment_history.';
COMMENT ON COLUMN social_post.sentiment_score IS 'Set by sentiment_update records (a model''s score in [-1, 1]); sentiment_source is the update''s lineage (topic:partition:offset); earlier values in sentiment_history.';

CREATE TABLE sentiment_history (
    target                  text        NOT NULL,
    key                     uuid        NOT NULL,
    -- the replaced value, as the row held it (NULL where a row written by other means had none)
    sentiment_score         float8,
    sentiment_model         text,
    sentiment_model_version text,
    sentiment_inputs        text[],
    sentiment_at            timestamptz,
    sentiment_source        text,
    -- the lineage (topic:partition:offset) of the update that replaced this value
    replaced_by             text        NOT NULL,
    replaced_at             timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sentiment_history_target_valid CHECK (target IN ('news_article', 'social_post'))
);
COMMENT ON TABLE sentiment_history IS 'Sentiment values of news_article / social_post rows that a later sentiment_update replaced (target, key = article_id / post_uid).';
-- "the sentiment versions of this article" (WHERE target = $1 AND key = $2).
CREATE INDEX sentiment_history_key_idx ON sentiment_history (target, key);

-- ---------------------------------------------------------------------------------------------
-- the audit trail counts updates and deletes
ALTER TABLE ingest_batches
    ADD COLUMN updated int NOT NULL DEFAULT 0,
    ADD COLUMN deleted int NOT NULL DEFAULT 0;
COMMENT ON COLUMN ingest_batches.updated IS 'Update records (sentiment_update) applied to an existing row (the value they replaced moved to sentiment_history).';
COMMENT ON COLUMN ingest_batches.deleted IS 'Tombstones that deleted a row (moved to <table>_history as deleted).';
