-- The rows one batch of one partition wrote: rows carry ingested_at = now() of their batch's
-- transaction, which is the batch's started_at ($1); the lineage range narrows to the batch's
-- offsets. Served by the table's ingested_at index. For revise tables the same is read from the
-- history table too (rows_history.sql: a version revised again or deleted before the relay read
-- its batch was current once, so it has its event; superseded versions never were). Placeholders
-- (src/enrich/relay.rs renders them): the columns, the table, the history part (or nothing) and
-- the ORDER BY (nothing for a family's own rows: within a batch a key has one row).
SELECT {columns}, source_offset
  FROM {table}
 WHERE ingested_at = $1
   AND source_topic = $2 AND source_partition = $3
   AND source_offset BETWEEN $4 AND $5
{history}
{order_by}
