-- revise policy: the replaced rows take the values (and lineage) of staged records $1.
UPDATE {table} t
   SET ({columns}) = ({s.columns}), ingested_at = now()
  FROM {stage} s
 WHERE {key_t_s} AND s.source_offset = ANY($1::bigint[])
