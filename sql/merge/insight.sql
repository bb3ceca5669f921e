-- Move the staged insight rows with source_offset in [$1, $2] (bigint) into insight.
-- Rows whose natural key already exists, or repeats within the range, are skipped; ORDER BY makes
-- the lowest offset win a repeat. ingested_at takes its default (now()).
INSERT INTO insight (
    insight_id, symbol, kind, title, body, confidence, generated_at, model,
    source_topic, source_partition, source_offset)
SELECT
    insight_id, symbol, kind, title, body, confidence, generated_at, model,
    source_topic, source_partition, source_offset
FROM pg_temp.stage_insight
WHERE source_offset BETWEEN $1 AND $2
ORDER BY source_offset
ON CONFLICT DO NOTHING
