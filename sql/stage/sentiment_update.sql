-- Per-session staging table for sentiment_update records (a table-less family: the records update
-- news_article / social_post rows, src/sink/writeback.rs). Emptied at every commit.
CREATE TEMP TABLE IF NOT EXISTS stage_sentiment_update (
    target           text        NOT NULL,
    key              uuid        NOT NULL,
    sentiment_score  float8      NOT NULL,
    model            text        NOT NULL,
    model_version    text        NOT NULL,
    inputs           text[]      NOT NULL,
    computed_at      timestamptz NOT NULL,
    source_topic     text        NOT NULL,
    source_partition int         NOT NULL,
    source_offset    bigint      NOT NULL
) ON COMMIT DELETE ROWS;
-- The apply steps look records up by offset and targets by key.
CREATE INDEX IF NOT EXISTS stage_sentiment_update_offset_idx ON pg_temp.stage_sentiment_update (source_offset)
