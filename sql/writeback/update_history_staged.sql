-- sentiment_update, step 3b: staged updates $1 that a later update of the same range replaced
-- ($2: the replacing update's lineage) go straight to sentiment_history.
INSERT INTO sentiment_history
       (target, key, sentiment_score, sentiment_model, sentiment_model_version, sentiment_inputs,
        sentiment_at, sentiment_source, replaced_by)
SELECT s.target, s.key, s.sentiment_score, s.model, s.model_version, s.inputs, s.computed_at,
       s.source_topic || ':' || s.source_partition || ':' || s.source_offset, r.replaced_by
  FROM pg_temp.stage_sentiment_update s
  JOIN unnest($1::bigint[], $2::text[]) AS r(source_offset, replaced_by) USING (source_offset)
