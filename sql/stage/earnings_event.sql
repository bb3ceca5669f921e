-- Per-session staging table for earnings_event: the worker COPYs a batch into it, then runs
-- sql/merge/earnings_event.sql. Emptied at every commit. LIKE copies column types, NOT NULL and
-- defaults, but no CHECKs, keys or indexes (staging must accept what the merge then judges).
CREATE TEMP TABLE IF NOT EXISTS stage_earnings_event (LIKE earnings_event INCLUDING DEFAULTS) ON COMMIT DELETE ROWS
