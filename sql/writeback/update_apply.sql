-- sentiment_update, step 4: the {target} rows take the values of staged updates $1 (the last
-- applied update of each row). The row keeps its own lineage and ingested_at: it is still the
-- spider's record; sentiment_source is the update's.
UPDATE {target} t
   SET sentiment_score         = s.sentiment_score,
       sentiment_model         = s.model,
       sentiment_model_version = s.model_version,
       sentiment_inputs        = s.inputs,
       sentiment_at            = s.computed_at,
       sentiment_source        = s.source_topic || ':' || s.source_partition || ':' || s.source_offset
  FROM pg_temp.stage_sentiment_update s
 WHERE s.target = '{target}' AND t.{key} = s.key AND s.source_offset = ANY($1::bigint[])
