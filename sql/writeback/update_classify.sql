-- sentiment_update, step 2: every staged update of the offset range $1..$2 in Kafka order, with
-- whether its target row exists and the sentiment it holds now. The worker replays them in order
-- (src/sink/writeback.rs): unknown target, duplicate of the current value, or applied.
SELECT s.source_offset,
       s.source_topic || ':' || s.source_partition || ':' || s.source_offset AS lineage,
       s.target,
       s.key::text AS key,
       s.sentiment_score, s.model, s.model_version, s.inputs, s.computed_at,
       c.found IS NOT NULL AS found,
       c.sentiment_score AS current_score,
       c.sentiment_model AS current_model,
       c.sentiment_model_version AS current_model_version,
       c.sentiment_inputs AS current_inputs,
       c.sentiment_at AS current_at
  FROM pg_temp.stage_sentiment_update s
  LEFT JOIN LATERAL (
        SELECT true AS found, a.sentiment_score, a.sentiment_model, a.sentiment_model_version,
               a.sentiment_inputs, a.sentiment_at
          FROM news_article a
         WHERE s.target = 'news_article' AND a.article_id = s.key
        UNION ALL
        SELECT true, p.sentiment_score, p.sentiment_model, p.sentiment_model_version,
               p.sentiment_inputs, p.sentiment_at
          FROM social_post p
         WHERE s.target = 'social_post' AND p.post_uid = s.key
  ) c ON true
 WHERE s.source_offset BETWEEN $1 AND $2
 ORDER BY s.source_offset
