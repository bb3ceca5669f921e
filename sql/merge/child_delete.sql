-- ... and leave the entity table, to be replaced by the new version's entity set.
DELETE FROM {child} c
 USING {stage} s
 WHERE c.{fk} = s.{fk} AND s.source_offset = ANY($1::bigint[])
