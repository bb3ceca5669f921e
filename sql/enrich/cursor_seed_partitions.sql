INSERT INTO enrichment_cursor (consumer_group, topic, partition, after_batch_id)
SELECT $1, p.topic, p.partition, t.enabled_from
  FROM (SELECT DISTINCT topic, partition
          FROM ingest_batches
         WHERE consumer_group = $1 AND topic = ANY($2::text[])) p
  JOIN enrichment_topics t ON t.consumer_group = $1 AND t.topic = p.topic
ON CONFLICT DO NOTHING
