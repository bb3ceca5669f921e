-- Move the staged social_post rows with source_offset in [$1, $2] (bigint) into social_post.
-- Rows whose natural key already exists, or repeats within the range, are skipped; ORDER BY makes
-- the lowest offset win a repeat. ingested_at takes its default (now()).
INSERT INTO social_post (
    post_uid, platform, post_id, author, body, url, posted_at, likes, shares, language,
    source_topic, source_partition, source_offset)
SELECT
    post_uid, platform, post_id, author, body, url, posted_at, likes, shares, language,
    source_topic, source_partition, source_offset
FROM pg_temp.stage_social_post
WHERE source_offset BETWEEN $1 AND $2
ORDER BY source_offset
ON CONFLICT DO NOTHING
