-- Per-session staging table for news_article: the worker COPYs a batch into it, then merges
-- it under the family's conflict policy (sql/merge/, src/sink/merge.rs). Emptied at every commit.
-- LIKE copies column types, NOT NULL and defaults, but no CHECKs, keys or indexes (staging must
-- accept what the merge then judges).
CREATE TEMP TABLE IF NOT EXISTS stage_news_article (LIKE news_article INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;
-- The revise merge looks records up by key (and entity sets by parent and record) for every
-- staged record: without an index each lookup would scan the whole batch.
CREATE INDEX IF NOT EXISTS stage_news_article_key_idx ON pg_temp.stage_news_article (article_id)
