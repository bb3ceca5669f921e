-- reject policy, step 1 of 2: store the first staged record (by offset) of every key in the
-- range that is not stored yet. Rows whose key exists (or that a concurrent writer stores first)
-- are left to step 2, which runs with a new snapshot and so sees them.
INSERT INTO {table} ({columns})
SELECT DISTINCT ON ({key}) {columns}
  FROM {stage}
 WHERE source_offset BETWEEN $1 AND $2
 ORDER BY {key}, source_offset
ON CONFLICT DO NOTHING
