-- Move the staged signal rows with source_offset in [$1, $2] (bigint) into signal.
-- Rows whose natural key already exists, or repeats within the range, are skipped; ORDER BY makes
-- the lowest offset win a repeat. ingested_at takes its default (now()).
INSERT INTO signal (
    strategy_id, strategy_version, symbol, ts, direction, strength, confidence, horizon_seconds,
    source_topic, source_partition, source_offset)
SELECT
    strategy_id, strategy_version, symbol, ts, direction, strength, confidence, horizon_seconds,
    source_topic, source_partition, source_offset
FROM pg_temp.stage_signal
WHERE source_offset BETWEEN $1 AND $2
ORDER BY source_offset
ON CONFLICT DO NOTHING
