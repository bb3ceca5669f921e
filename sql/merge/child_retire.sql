-- A parent and its entities change as one: the entities of the current rows that staged parent
-- records $1 replace move to history (their lineage is their parent version's).
INSERT INTO {child_history} ({child_columns}, ingested_at, history_reason)
SELECT {c.child_columns}, c.ingested_at, 'revised'
  FROM {child} c
  JOIN {stage} s ON c.{fk} = s.{fk}
 WHERE s.source_offset = ANY($1::bigint[])
