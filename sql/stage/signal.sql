-- Per-session staging table for signal: the worker COPYs a batch into it, then runs
-- sql/merge/signal.sql. Emptied at every commit. LIKE copies column types, NOT NULL and
-- defaults, but no CHECKs, keys or indexes (staging must accept what the merge then judges).
CREATE TEMP TABLE IF NOT EXISTS stage_signal (LIKE signal INCLUDING DEFAULTS) ON COMMIT DELETE ROWS
