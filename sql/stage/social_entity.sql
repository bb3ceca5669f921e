-- Per-session staging table for social_entity: the worker COPYs a batch into it, then runs
-- sql/merge/social_entity.sql. Emptied at every commit. LIKE copies column types, NOT NULL and
-- defaults, but no CHECKs, keys or indexes (staging must accept what the merge then judges).
CREATE TEMP TABLE IF NOT EXISTS stage_social_entity (LIKE social_entity INCLUDING DEFAULTS) ON COMMIT DELETE ROWS
