-- Moves a partition's stored offset from the value this worker last saw ($4) to the batch's end ($5).
-- Zero rows updated means another writer moved it first: the batch is fenced and rolled back.
UPDATE consumed_offsets
   SET next_offset = $5, updated_at = now()
 WHERE consumer_group = $1 AND topic = $2 AND partition = $3 AND next_offset = $4
