-- revise policy: the current rows that staged records $1 (offsets) replace move to history.
INSERT INTO {history} ({columns}, ingested_at, history_reason)
SELECT {t.columns}, t.ingested_at, 'revised'
  FROM {table} t
  JOIN {stage} s ON {key_t_s}
 WHERE s.source_offset = ANY($1::bigint[])
