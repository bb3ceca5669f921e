-- `esurio lineage`: the audit rows of the batches that inputs name (event ids end in the batch id;
-- `batch:<id>` names a whole batch). started_at is the ingested_at of every row the batch wrote.
SELECT id, topic, partition, first_offset, last_offset, records, rows_inserted, committed_at,
       started_at
  FROM ingest_batches
 WHERE id = ANY($1::bigint[])
