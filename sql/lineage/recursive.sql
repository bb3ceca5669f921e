-- The whole lineage walk in one statement, for psql and for readers (docs/LINEAGE.md explains
-- it). `esurio lineage` runs the same walk step by step (row_by_key.sql, rows_by_event.sql), which
-- also reads the history tables, checks batches and reports what does not resolve; this query
-- shows the idea on the current tables. tests/it/roundtrip.rs checks that both find the same rows.
--
-- psql -v family=insight -v key='{"insight_id": "regime:AAPL:2026-12-02T13:00:19Z"}' -f sql/lineage/recursive.sql
--
-- nodes: every row that can appear in a lineage, as (family, key, Kafka position, the instant its
-- batch started = its ingested_at, the inputs it names). Ticks and articles name no inputs of their
-- own (an article's sentiment_inputs name the article's own event, so the cycle check below ends
-- that edge at once).
WITH RECURSIVE nodes AS NOT MATERIALIZED (
    SELECT 'insight' AS family, jsonb_build_object('insight_id', insight_id) AS key,
           source_topic, source_partition, source_offset, ingested_at, inputs
      FROM insight
    UNION ALL
    SELECT 'feature', jsonb_build_object('entity', entity, 'name', name, 'ts', ts,
                                         'model_version', model_version),
           source_topic, source_partition, source_offset, ingested_at, inputs
      FROM feature
    UNION ALL
    SELECT 'signal', jsonb_build_object('strategy_id', strategy_id,
                                        'strategy_version', strategy_version,
                                        'symbol', symbol, 'ts', ts),
           source_topic, source_partition, source_offset, ingested_at, inputs
      FROM signal
    UNION ALL
    SELECT 'strategy', jsonb_build_object('strategy_id', strategy_id, 'version', version),
           source_topic, source_partition, source_offset, ingested_at, inputs
      FROM strategy
    UNION ALL
    SELECT 'news_article', jsonb_build_object('article_id', article_id),
           source_topic, source_partition, source_offset, ingested_at,
           coalesce(sentiment_inputs, '{}')
      FROM news_article
    UNION ALL
    SELECT 'social_post', jsonb_build_object('post_uid', post_uid),
           source_topic, source_partition, source_offset, ingested_at,
           coalesce(sentiment_inputs, '{}')
      FROM social_post
    UNION ALL
    SELECT 'market_data', jsonb_build_object('exchange', exchange, 'symbol', symbol, 'ts', ts),
           source_topic, source_partition, source_offset, ingested_at, '{}'::text[]
      FROM market_data
),
walk AS (
    -- the root: the row the key names (key values compared as the row's own JSON values)
    SELECT n.family, n.key, n.source_topic, n.source_partition, n.source_offset, n.inputs,
           NULL::text AS via, 0 AS depth,
           ARRAY[n.source_topic || ':' || n.source_partition || ':' || n.source_offset] AS path
      FROM nodes n
     WHERE n.family = :'family' AND n.key @> :'key'::jsonb
    UNION ALL
    -- one step: each input "topic:partition:offset:batch" of a row found so far becomes the row
    -- that batch wrote from that position (the greedy (.+) splits at the last three colons, as
    -- topic names cannot contain one); the batch's started_at is the row's ingested_at.
    SELECT n.family, n.key, n.source_topic, n.source_partition, n.source_offset, n.inputs,
           i.ref, w.depth + 1,
           w.path || (n.source_topic || ':' || n.source_partition || ':' || n.source_offset)
      FROM walk w
     CROSS JOIN LATERAL unnest(w.inputs) AS i(ref)
     CROSS JOIN LATERAL regexp_match(i.ref, '^(.+):([0-9]+):([0-9]+):([0-9]+)$') AS m
      JOIN ingest_batches b ON b.id = m[4]::bigint
      JOIN nodes n ON n.ingested_at = b.started_at
                  AND n.source_topic = m[1]
                  AND n.source_partition = m[2]::int
                  AND n.source_offset = m[3]::bigint
     WHERE w.depth < 8                                  -- depth bound
       AND NOT (n.source_topic || ':' || n.source_partition || ':' || n.source_offset) = ANY (w.path)
                                                        -- cycle check: not already on this path
)
SELECT depth, via, family, key,
       source_topic || ':' || source_partition || ':' || source_offset AS lineage
  FROM walk
 ORDER BY path;
