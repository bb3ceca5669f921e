-- `esurio lineage`: the audit rows of the batches that inputs name (event ids end in the batch id;
-- `batch:<id>` names a whole batch). Checks that an event's position lies in its batch.
SELECT id, topic, partition, first_offset, last_offset, records, rows_inserted, committed_at
  FROM ingest_batches
 WHERE id = ANY($1::bigint[])
