-- Per-session staging table for order_book: the worker COPYs a batch into it, then merges
-- it under the family's conflict policy (sql/merge/, src/sink/merge.rs). Emptied at every commit.
-- LIKE copies column types, NOT NULL and defaults, but no CHECKs, keys or indexes (staging must
-- accept what the merge then judges).
-- The generated column spread becomes a plain nullable column here; the COPY leaves it NULL.
CREATE TEMP TABLE IF NOT EXISTS stage_order_book (LIKE order_book INCLUDING DEFAULTS) ON COMMIT DELETE ROWS
