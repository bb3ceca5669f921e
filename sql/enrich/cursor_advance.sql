-- Every event of the batches up to $4 was acknowledged by the broker.
UPDATE enrichment_cursor
   SET after_batch_id = $4, events = events + $5, updated_at = now()
 WHERE consumer_group = $1 AND topic = $2 AND partition = $3
