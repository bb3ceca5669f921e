-- Every stored offset of a topic for a group: the idle check compares them with the end offsets.
SELECT partition, next_offset FROM consumed_offsets WHERE consumer_group = $1 AND topic = $2
