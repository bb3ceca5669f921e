-- The dead-letter relay's next rows: quarantined but not yet published, except those waiting out a
-- retry backoff ($2). SKIP LOCKED lets several workers relay at once without publishing a row twice.
SELECT id, source_topic, source_partition, source_offset, record_key, payload, stage, reason, message
  FROM quarantine
 WHERE dlq_published_at IS NULL
   AND NOT (id = ANY($2::bigint[]))
 ORDER BY id
 LIMIT $1
   FOR UPDATE SKIP LOCKED
