-- Move the staged economic_indicator rows with source_offset in [$1, $2] (bigint) into economic_indicator.
-- Rows whose natural key already exists, or repeats within the range, are skipped; ORDER BY makes
-- the lowest offset win a repeat. ingested_at takes its default (now()).
INSERT INTO economic_indicator (
    indicator, country, frequency, period_start, value, unit, released_at, source,
    source_topic, source_partition, source_offset)
SELECT
    indicator, country, frequency, period_start, value, unit, released_at, source,
    source_topic, source_partition, source_offset
FROM pg_temp.stage_economic_indicator
WHERE source_offset BETWEEN $1 AND $2
ORDER BY source_offset
ON CONFLICT DO NOTHING
