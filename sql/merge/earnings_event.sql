-- Move the staged earnings_event rows with source_offset in [$1, $2] (bigint) into earnings_event.
-- Rows whose natural key already exists, or repeats within the range, are skipped; ORDER BY makes
-- the lowest offset win a repeat. ingested_at takes its default (now()).
INSERT INTO earnings_event (
    symbol, fiscal_year, fiscal_quarter, reported_at, eps_estimate, eps_actual,
    revenue_estimate, revenue_actual, currency,
    source_topic, source_partition, source_offset)
SELECT
    symbol, fiscal_year, fiscal_quarter, reported_at, eps_estimate, eps_actual,
    revenue_estimate, revenue_actual, currency,
    source_topic, source_partition, source_offset
FROM pg_temp.stage_earnings_event
WHERE source_offset BETWEEN $1 AND $2
ORDER BY source_offset
ON CONFLICT DO NOTHING
