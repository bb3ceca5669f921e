-- Audit trail: one row per committed batch, in the batch's own transaction.
INSERT INTO ingest_batches
       (consumer_group, topic, partition, first_offset, last_offset, records, rows_inserted,
        duplicates, quarantined)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
