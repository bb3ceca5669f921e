-- The partition's batches after the cursor, in id order, which within one partition is commit
-- order (migration 0007). started_at is the ingested_at of every row the batch wrote.
SELECT id, first_offset, last_offset, started_at, committed_at
  FROM ingest_batches
 WHERE consumer_group = $1 AND topic = $2 AND partition = $3 AND id > $4
 ORDER BY id
 LIMIT $5
