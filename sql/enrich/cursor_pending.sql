-- Partitions of the enriched topics with batches after their cursor.
SELECT c.topic, c.partition
  FROM enrichment_cursor c
 WHERE c.consumer_group = $1 AND c.topic = ANY($2::text[])
   AND EXISTS (SELECT 1 FROM ingest_batches b
                WHERE b.consumer_group = $1 AND b.topic = c.topic
                  AND b.partition = c.partition AND b.id > c.after_batch_id)
