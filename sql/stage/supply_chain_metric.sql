-- Per-session staging table for supply_chain_metric: the worker COPYs a batch into it, then runs
-- sql/merge/supply_chain_metric.sql. Emptied at every commit. LIKE copies column types, NOT NULL and
-- defaults, but no CHECKs, keys or indexes (staging must accept what the merge then judges).
CREATE TEMP TABLE IF NOT EXISTS stage_supply_chain_metric (LIKE supply_chain_metric INCLUDING DEFAULTS) ON COMMIT DELETE ROWS
