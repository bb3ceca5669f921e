-- Sets a partition's stored offset, inserting the row if the partition was never written. A running
-- owner notices on its next batch (the compare-and-set of sql/sink/offsets_advance.sql fails) or at
-- its periodic offset check, and seeks here.
INSERT INTO consumed_offsets (consumer_group, topic, partition, next_offset)
VALUES ($1, $2, $3, $4)
ON CONFLICT (consumer_group, topic, partition)
DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()
