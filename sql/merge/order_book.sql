-- Move the staged order_book rows with source_offset in [$1, $2] (bigint) into order_book.
-- Rows whose natural key already exists, or repeats within the range, are skipped; ORDER BY makes
-- the lowest offset win a repeat. ingested_at takes its default (now()).
-- The generated column spread is computed by the target table, so it is not listed.
INSERT INTO order_book (
    symbol, exchange, ts, bid_prices, bid_sizes, ask_prices, ask_sizes, best_bid, best_ask,
    source_topic, source_partition, source_offset)
SELECT
    symbol, exchange, ts, bid_prices, bid_sizes, ask_prices, ask_sizes, best_bid, best_ask,
    source_topic, source_partition, source_offset
FROM pg_temp.stage_order_book
WHERE source_offset BETWEEN $1 AND $2
ORDER BY source_offset
ON CONFLICT DO NOTHING
