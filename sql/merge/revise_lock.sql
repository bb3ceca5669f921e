-- revise policy: lock the current rows of the keys in the range, so that the classification below
-- stays true until commit even if another partition carries the same key.
SELECT 1
  FROM {table} t
 WHERE ({t.key}) IN (SELECT {key} FROM {stage} WHERE source_offset BETWEEN $1 AND $2)
   FOR UPDATE
