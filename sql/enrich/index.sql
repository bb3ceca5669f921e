-- The index the relay reads a tick table's batches back by, for a table whose family has its
-- events switched on: BRIN, since rows arrive in ingested_at order and a B-tree cost ~10% of the
-- table's COPY throughput. Their batches are normally handed over by the writer (no read at all);
-- this serves the read-backs after a restart or when a hand-over was missed. autosummarize keeps
-- the ranges summarized as they fill, so a read-back scans few pages. An earlier version's B-tree
-- is dropped. Builds once (inserts into the table wait meanwhile), then is a no-op. Placeholder:
-- the table.
CREATE INDEX IF NOT EXISTS {table}_ingested_at_brin ON {table} USING brin (ingested_at)
  WITH (autosummarize = on);
DROP INDEX IF EXISTS {table}_ingested_at_idx;
