-- A partition's stored offset, locked until the reset's transaction ends so that a batch committing
-- at the same moment either lands before (and is overwritten, then fenced on its next batch) or
-- waits and is fenced. NULL row: the partition was never written.
SELECT next_offset FROM consumed_offsets
 WHERE consumer_group = $1 AND topic = $2 AND partition = $3
   FOR UPDATE
