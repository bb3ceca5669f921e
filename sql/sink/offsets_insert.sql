-- The first batch of a partition that has no stored offset yet. Zero rows inserted means another
-- writer created the row first: the batch is fenced and rolled back.
INSERT INTO consumed_offsets (consumer_group, topic, partition, next_offset)
VALUES ($1, $2, $3, $4)
ON CONFLICT DO NOTHING
