UNION ALL
SELECT {columns}, source_offset
  FROM {table}_history
 WHERE ingested_at = $1
   AND source_topic = $2 AND source_partition = $3
   AND source_offset BETWEEN $4 AND $5
   AND history_reason <> 'superseded'
