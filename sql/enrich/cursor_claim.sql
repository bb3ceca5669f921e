-- One relay per partition at a time (any worker's); a busy cursor is skipped, not waited for. The
-- lock is held, in this transaction, until the events are acknowledged and the cursor moved.
SELECT after_batch_id
  FROM enrichment_cursor
 WHERE consumer_group = $1 AND topic = $2 AND partition = $3
   FOR UPDATE SKIP LOCKED
