-- The entity sets of the staged parent records $1 that are now current.
INSERT INTO {child} ({child_columns})
SELECT {child_columns} FROM {child_stage} WHERE source_offset = ANY($1::bigint[])
