-- Per-session staging table for insight: the worker COPYs a batch into it, then runs
-- sql/merge/insight.sql. Emptied at every commit. LIKE copies column types, NOT NULL and
-- defaults, but no CHECKs, keys or indexes (staging must accept what the merge then judges).
CREATE TEMP TABLE IF NOT EXISTS stage_insight (LIKE insight INCLUDING DEFAULTS) ON COMMIT DELETE ROWS
