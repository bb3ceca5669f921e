-- A partition first met after start: its cursor starts at its topic's mark (cursor_seed.sql).
INSERT INTO enrichment_cursor (consumer_group, topic, partition, after_batch_id)
SELECT $1, $2, $3, enabled_from
  FROM enrichment_topics
 WHERE consumer_group = $1 AND topic = $2
ON CONFLICT DO NOTHING
