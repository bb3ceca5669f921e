-- The entity sets of staged parent records $1 that went straight to history, with the same reason.
INSERT INTO {child_history} ({child_columns}, ingested_at, history_reason)
SELECT {c.child_columns}, now(), r.reason
  FROM {child_stage} c
  JOIN unnest($1::bigint[], $2::text[]) AS r(source_offset, reason) USING (source_offset)
