-- The index the relay reads a batch's rows by (migration 0007), for a table whose family has its
-- events switched on; the tick tables do not have it otherwise. Builds once (inserts into the
-- table wait meanwhile), then is a no-op. Placeholder: the table.
CREATE INDEX IF NOT EXISTS {table}_ingested_at_idx ON {table} (ingested_at)
