-- `esurio lineage`: the rows written from given Kafka positions (what enrichment event ids resolve
-- to: "topic:partition:offset:batch" names the record at topic/partition/offset that batch wrote).
-- One statement per table and step for all the inputs of a node, not one per input.
--
-- Placeholder {source}: the table or its <table>_history (a version that was revised or deleted
-- since the result was computed is still the data behind it); {history_reason}: that column, or
-- NULL for the current table. ingested_at tells apart two rows at one position (a topic recreated
-- and its offsets reused): the one the named batch wrote was ingested before that batch committed.
-- $1, $2, $3: topics, partitions, offsets (parallel arrays).
SELECT to_jsonb(t) - 'history_reason' - 'superseded_at' AS row,
       {history_reason} AS history_reason,
       t.source_topic, t.source_partition, t.source_offset, t.ingested_at
  FROM {source} t
  JOIN unnest($1::text[], $2::int[], $3::bigint[]) AS s(topic, part, off)
    ON t.source_topic = s.topic AND t.source_partition = s.part AND t.source_offset = s.off
