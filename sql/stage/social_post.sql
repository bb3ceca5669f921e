-- Per-session staging table for social_post: the worker COPYs a batch into it, then runs
-- sql/merge/social_post.sql. Emptied at every commit. LIKE copies column types, NOT NULL and
-- defaults, but no CHECKs, keys or indexes (staging must accept what the merge then judges).
CREATE TEMP TABLE IF NOT EXISTS stage_social_post (LIKE social_post INCLUDING DEFAULTS) ON COMMIT DELETE ROWS
