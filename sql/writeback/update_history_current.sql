-- sentiment_update, step 3a: the sentiment the {target} rows hold now, where staged updates $1 (the
-- first applied update of each row) replace it, moves to sentiment_history, naming its replacement.
INSERT INTO sentiment_history
       (target, key, sentiment_score, sentiment_model, sentiment_model_version, sentiment_inputs,
        sentiment_at, sentiment_source, replaced_by)
SELECT '{target}', t.{key}, t.sentiment_score, t.sentiment_model, t.sentiment_model_version,
       t.sentiment_inputs, t.sentiment_at, t.sentiment_source,
       s.source_topic || ':' || s.source_partition || ':' || s.source_offset
  FROM {target} t
  JOIN pg_temp.stage_sentiment_update s ON s.target = '{target}' AND t.{key} = s.key
 WHERE s.source_offset = ANY($1::bigint[])
   AND t.sentiment_score IS NOT NULL
