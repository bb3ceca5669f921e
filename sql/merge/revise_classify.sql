-- revise policy: every staged record of the range, in Kafka order, with the current row of its key
-- (if any) and whether it is a duplicate: identical to the current row, to a version already kept in
-- history, or to an earlier record of the range. The caller replays the rest in order to decide
-- which version ends current and which go to history (src/sink/merge.rs).
SELECT s.source_offset,
       ROW({s.key})::text AS key,
       s.version_at,
       s.source_partition,
       t.version_at       AS current_version_at,
       t.source_partition AS current_partition,
       t.source_offset    AS current_offset,
       ({t.key0} IS NOT NULL AND {same_t_s})
         OR EXISTS (SELECT 1 FROM {history} h WHERE {key_h_s} AND {same_h_s})
         OR EXISTS (SELECT 1 FROM {stage} p
                     WHERE {key_p_s} AND p.source_offset >= $1 AND p.source_offset < s.source_offset
                       AND {same_p_s}) AS duplicate
  FROM {stage} s
  LEFT JOIN {table} t ON {key_t_s}
 WHERE s.source_offset BETWEEN $1 AND $2
 ORDER BY s.source_offset
