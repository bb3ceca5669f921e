-- Per-session staging table for news_article: the worker COPYs a batch into it, then runs
-- sql/merge/news_article.sql. Emptied at every commit. LIKE copies column types, NOT NULL and
-- defaults, but no CHECKs, keys or indexes (staging must accept what the merge then judges).
CREATE TEMP TABLE IF NOT EXISTS stage_news_article (LIKE news_article INCLUDING DEFAULTS) ON COMMIT DELETE ROWS
