-- Stored offsets for `esurio offsets list`: one group, optionally one topic ($2 NULL: all).
SELECT topic, partition, next_offset, updated_at
  FROM consumed_offsets
 WHERE consumer_group = $1 AND ($2::text IS NULL OR topic = $2)
 ORDER BY topic, partition
