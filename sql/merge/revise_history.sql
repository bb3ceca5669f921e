-- revise policy: staged records $1 go straight to history, each with its reason $2 ('revised': it
-- was current in Kafka order and a later record of the range replaced it; 'superseded': a newer
-- version was already current when it arrived).
INSERT INTO {history} ({columns}, ingested_at, history_reason)
SELECT {s.columns}, now(), r.reason
  FROM {stage} s
  JOIN unnest($1::bigint[], $2::text[]) AS r(source_offset, reason) USING (source_offset)
