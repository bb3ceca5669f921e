-- Move the staged crypto_data rows with source_offset in [$1, $2] (bigint) into crypto_data.
-- Rows whose natural key already exists, or repeats within the range, are skipped; ORDER BY makes
-- the lowest offset win a repeat. ingested_at takes its default (now()).
INSERT INTO crypto_data (
    symbol, exchange, ts, price, volume, market_cap, quote_currency,
    source_topic, source_partition, source_offset)
SELECT
    symbol, exchange, ts, price, volume, market_cap, quote_currency,
    source_topic, source_partition, source_offset
FROM pg_temp.stage_crypto_data
WHERE source_offset BETWEEN $1 AND $2
ORDER BY source_offset
ON CONFLICT DO NOTHING
