-- `esurio lineage`: the rows that enrichment events name. An event id "topic:partition:offset:batch"
-- names the row that batch wrote from that Kafka position; every row a batch writes carries
-- ingested_at = the batch's started_at (0007), so the row is found by the ingested_at index and its
-- lineage, and two rows at one position (a topic recreated and its offsets reused) are told apart.
-- One statement per table and step for all the inputs of a node, not one per input.
--
-- Placeholders, filled by src/admin/lineage.rs with quoted identifiers of a known table only:
--   {source}  the table or its <table>_history (a version revised or deleted since the result was
--             computed is still the data behind it; history keeps the version's ingested_at)
--   {history_reason}  t.history_reason, or NULL for the current table
-- $1, $2, $3, $4: topics, partitions, offsets, the batches' started_at (parallel arrays).
SELECT to_jsonb(t) - 'history_reason' - 'superseded_at' AS row,
       {history_reason} AS history_reason,
       t.source_topic, t.source_partition, t.source_offset, s.at
  FROM {source} t
  JOIN unnest($1::text[], $2::int[], $3::bigint[], $4::timestamptz[]) AS s(topic, part, off, at)
    ON t.ingested_at = s.at
   AND t.source_topic = s.topic AND t.source_partition = s.part AND t.source_offset = s.off
