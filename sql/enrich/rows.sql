-- The rows a set of batches of one partition wrote: rows carry ingested_at = now() of their
-- batch's transaction, which is the batch's started_at ($1); the lineage range narrows to the
-- batches' offsets. Served by <table>_ingested_at_idx. Template: {columns}, {table}, {order}.
SELECT {columns}, source_offset, ingested_at
  FROM {table}
 WHERE ingested_at = ANY($1::timestamptz[])
   AND source_topic = $2 AND source_partition = $3
   AND source_offset BETWEEN $4 AND $5
 ORDER BY {order}
