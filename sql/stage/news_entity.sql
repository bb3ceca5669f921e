-- Per-session staging table for news_entity: the worker COPYs a batch into it, then runs
-- sql/merge/news_entity.sql. Emptied at every commit. LIKE copies column types, NOT NULL and
-- defaults, but no CHECKs, keys or indexes (staging must accept what the merge then judges).
CREATE TEMP TABLE IF NOT EXISTS stage_news_entity (LIKE news_entity INCLUDING DEFAULTS) ON COMMIT DELETE ROWS
