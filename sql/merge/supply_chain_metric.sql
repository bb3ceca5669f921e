-- Move the staged supply_chain_metric rows with source_offset in [$1, $2] (bigint) into supply_chain_metric.
-- Rows whose natural key already exists, or repeats within the range, are skipped; ORDER BY makes
-- the lowest offset win a repeat. ingested_at takes its default (now()).
INSERT INTO supply_chain_metric (
    metric, location, observed_at, value, unit, source,
    source_topic, source_partition, source_offset)
SELECT
    metric, location, observed_at, value, unit, source,
    source_topic, source_partition, source_offset
FROM pg_temp.stage_supply_chain_metric
WHERE source_offset BETWEEN $1 AND $2
ORDER BY source_offset
ON CONFLICT DO NOTHING
