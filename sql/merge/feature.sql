-- Move the staged feature rows with source_offset in [$1, $2] (bigint) into feature.
-- Rows whose natural key already exists, or repeats within the range, are skipped; ORDER BY makes
-- the lowest offset win a repeat. ingested_at takes its default (now()).
INSERT INTO feature (
    entity, name, ts, value, model_version,
    source_topic, source_partition, source_offset)
SELECT
    entity, name, ts, value, model_version,
    source_topic, source_partition, source_offset
FROM pg_temp.stage_feature
WHERE source_offset BETWEEN $1 AND $2
ORDER BY source_offset
ON CONFLICT DO NOTHING
