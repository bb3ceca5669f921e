-- At start, for the topics with events on: a topic switched on for the first time records the
-- largest batch id committed now (its events cover what comes after); one switched on before keeps
-- its mark, so switching off and on again resumes where it stopped, missing nothing. Then
-- cursor_seed_partitions.sql gives every partition of these topics in the audit trail a cursor at
-- that mark if it has none (a crash can come between a partition's first batch and its cursor).
INSERT INTO enrichment_topics (consumer_group, topic, enabled_from)
SELECT $1, t, coalesce((SELECT max(id) FROM ingest_batches), 0)
  FROM unnest($2::text[]) t
ON CONFLICT DO NOTHING
