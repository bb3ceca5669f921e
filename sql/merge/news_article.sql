-- Move the staged news_article rows with source_offset in [$1, $2] (bigint) into news_article.
-- Rows whose natural key already exists, or repeats within the range, are skipped; ORDER BY makes
-- the lowest offset win a repeat. ingested_at takes its default (now()).
INSERT INTO news_article (
    article_id, url, title, body, source, author, published_at, language,
    source_topic, source_partition, source_offset)
SELECT
    article_id, url, title, body, source, author, published_at, language,
    source_topic, source_partition, source_offset
FROM pg_temp.stage_news_article
WHERE source_offset BETWEEN $1 AND $2
ORDER BY source_offset
ON CONFLICT DO NOTHING
