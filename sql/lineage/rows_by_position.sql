-- `esurio lineage`: the fallback for events whose batch has no audit row (ingest_batches pruned,
-- or a hand-written id): the rows written from the Kafka position alone, newest first. Without
-- the batch, a reused offset (recreated topic) is ambiguous; the command says so. Not indexed on
-- the ticks tables (no index leads with the lineage columns), so only used when the batch is gone.
-- Placeholders as in rows_by_event.sql. $1, $2, $3: topics, partitions, offsets.
SELECT to_jsonb(t) - 'history_reason' - 'superseded_at' AS row,
       {history_reason} AS history_reason,
       t.source_topic, t.source_partition, t.source_offset, NULL::timestamptz AS at
  FROM {source} t
  JOIN unnest($1::text[], $2::int[], $3::bigint[]) AS s(topic, part, off)
    ON t.source_topic = s.topic AND t.source_partition = s.part AND t.source_offset = s.off
 ORDER BY t.ingested_at DESC
