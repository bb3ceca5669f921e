-- Staged records $1 that name unknown references leave the staging table {stage} before the merge
-- (they are quarantined instead).
DELETE FROM {stage} WHERE source_offset = ANY($1::bigint[])
