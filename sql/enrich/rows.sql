-- The rows one batch of one partition wrote: rows carry ingested_at = now() of their batch's
-- transaction, which is the batch's started_at ($1); the lineage range narrows to the batch's
-- offsets. Served by <table>_ingested_at_idx. Template: {columns}, {table}, {order_by} (empty for
-- a family's own rows: within a batch a key has one row, so their order does not matter).
SELECT {columns}, source_offset
  FROM {table}
 WHERE ingested_at = $1
   AND source_topic = $2 AND source_partition = $3
   AND source_offset BETWEEN $4 AND $5
{order_by}
