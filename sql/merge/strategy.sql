-- Move the staged strategy rows with source_offset in [$1, $2] (bigint) into strategy.
-- Rows whose natural key already exists, or repeats within the range, are skipped; ORDER BY makes
-- the lowest offset win a repeat. ingested_at takes its default (now()).
INSERT INTO strategy (
    strategy_id, version, name, description, parameters, created_at,
    source_topic, source_partition, source_offset)
SELECT
    strategy_id, version, name, description, parameters, created_at,
    source_topic, source_partition, source_offset
FROM pg_temp.stage_strategy
WHERE source_offset BETWEEN $1 AND $2
ORDER BY source_offset
ON CONFLICT DO NOTHING
