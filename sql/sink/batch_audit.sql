-- Audit trail: one row per committed batch, in the batch's own transaction. It is the last
-- statement before COMMIT, so clock_timestamp() is the commit time to within the commit's own fsync
-- (now() would be the transaction's start); the benchmark's latency figures rely on that. The id
-- names the batch to the enrichment relay when its writer hands the rows over.
INSERT INTO ingest_batches
       (consumer_group, topic, partition, first_offset, last_offset, records, rows_inserted,
        duplicates, quarantined, revised, superseded, conflicts, updated, deleted, committed_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, clock_timestamp())
RETURNING id
