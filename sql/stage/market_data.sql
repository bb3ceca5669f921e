-- Per-session staging table for market_data: the worker COPYs a batch into it, then merges
-- it under the family's conflict policy (sql/merge/, src/sink/merge.rs). Emptied at every commit.
-- LIKE copies column types, NOT NULL and defaults, but no CHECKs, keys or indexes (staging must
-- accept what the merge then judges).
CREATE TEMP TABLE IF NOT EXISTS stage_market_data (LIKE market_data INCLUDING DEFAULTS) ON COMMIT DELETE ROWS
