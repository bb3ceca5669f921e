-- Per-session staging table for sec_filing: the worker COPYs a batch into it, then runs
-- sql/merge/sec_filing.sql. Emptied at every commit. LIKE copies column types, NOT NULL and
-- defaults, but no CHECKs, keys or indexes (staging must accept what the merge then judges).
CREATE TEMP TABLE IF NOT EXISTS stage_sec_filing (LIKE sec_filing INCLUDING DEFAULTS) ON COMMIT DELETE ROWS
