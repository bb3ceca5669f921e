-- reject policy, step 2 of 2: every staged record of the range against the row stored under its key.
-- stored: the stored row came from this very record (step 1 inserted it, or an earlier read of the
-- same offset did); identical: same values (a replay: a duplicate); otherwise a conflict, quarantined
-- by the caller as conflicting_duplicate with the key and the stored row's lineage.
SELECT s.source_offset,
       (t.source_topic, t.source_partition, t.source_offset)
           = (s.source_topic, s.source_partition, s.source_offset) AS stored,
       {same_t_s} AS identical,
       ROW({s.key})::text AS key,
       format('%s[%s]@%s', t.source_topic, t.source_partition, t.source_offset) AS holder
  FROM {stage} s
  JOIN {table} t ON {key_t_s}
 WHERE s.source_offset BETWEEN $1 AND $2
