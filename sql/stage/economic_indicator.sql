-- Per-session staging table for economic_indicator: the worker COPYs a batch into it, then runs
-- sql/merge/economic_indicator.sql. Emptied at every commit. LIKE copies column types, NOT NULL and
-- defaults, but no CHECKs, keys or indexes (staging must accept what the merge then judges).
CREATE TEMP TABLE IF NOT EXISTS stage_economic_indicator (LIKE economic_indicator INCLUDING DEFAULTS) ON COMMIT DELETE ROWS
