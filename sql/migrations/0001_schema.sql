-- 0001_schema.sql: the 15 record tables (contract: docs/RECORDS.md).
--
-- Design choices
-- * Column order is the order of docs/RECORDS.md, followed by the lineage columns. The worker COPYs
--   (binary) the record columns plus source_topic/source_partition/source_offset into a temp staging
--   table, then runs sql/merge/<table>.sql (INSERT ... SELECT ... ON CONFLICT DO NOTHING).
-- * Prices, quantities and scores are float8, not numeric: this is analytics, not a ledger. float8
--   round-trips every decimal of up to 15 significant digits, COPY and aggregation are faster, and
--   Avro double / JSON number need no conversion. PostgreSQL orders NaN above every number (so
--   'NaN' > 0 is true) and accepts +/-Infinity, hence the explicit "finite" bounds in the CHECKs.
-- * All instants are timestamptz and stored in UTC; the partition bounds in 0002 are written with
--   an explicit +00 so the server/session TimeZone never matters.
-- * Every table has a natural key (PRIMARY KEY, and for social_post an extra UNIQUE). Kafka delivers
--   at least once and producers retry, so duplicates are expected: ON CONFLICT DO NOTHING drops them
--   and the first write wins. Facts that can change (economic releases) carry the release instant in
--   the key, so a revision is a new row instead of an update.
-- * Lineage: source_topic, source_partition, source_offset say which Kafka record produced a row
--   (replay, debugging, deleting a bad producer's rows); ingested_at is the commit-side clock.
-- * CHECK constraints mirror the validator's cheap rules (ranges, enum lists, shapes, lengths) so a
--   row written by something else still meets the contract, and so a validator bug is caught at
--   the database. Every CHECK / key has an explicit name: the worker quarantines a row a constraint
--   rejects and reports that name. Rules that need the clock (timestamp plausibility), trimming and
--   sorting stay in the validator only. Lengths are in characters (code points), as char_length.
-- * Enumerations are text + CHECK (not PostgreSQL enum types): adding a value is one ALTER of the
--   constraint, and COPY needs no custom type OIDs.
-- * Indexes are kept to those that serve a known read; each one costs ingest throughput. Each is
--   commented with the query it serves. BRIN is used for time ranges on append-mostly tables.
-- * market_data, crypto_data and order_book are partitioned by day on ts (partitions: 0002); their
--   keys include ts as partitioning requires. There is deliberately no DEFAULT partition.
-- * No generated column may be NOT NULL: the staging tables are created with LIKE (which turns a
--   generated column into a plain one and copies NOT NULL), and the COPY does not fill it.

-- ---------------------------------------------------------------------------------------------
-- market_data: ticks of listed instruments, daily partitions on ts.
CREATE TABLE market_data (
    symbol            text        NOT NULL,
    exchange          text        NOT NULL,
    ts                timestamptz NOT NULL,
    price             float8      NOT NULL,
    volume            float8      NOT NULL,
    bid               float8,
    ask               float8,
    currency          char(3)     NOT NULL,
    source_topic      text        NOT NULL,
    source_partition  int         NOT NULL,
    source_offset     bigint      NOT NULL,
    ingested_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT market_data_pkey PRIMARY KEY (exchange, symbol, ts),
    CONSTRAINT market_data_symbol_format   CHECK (symbol ~ '^[A-Z0-9./^=_-]{1,32}$'),
    CONSTRAINT market_data_exchange_format CHECK (exchange ~ '^[A-Z0-9_-]{1,16}$'),
    CONSTRAINT market_data_price_positive  CHECK (price > 0 AND price < 'Infinity'),
    CONSTRAINT market_data_volume_nonneg   CHECK (volume >= 0 AND volume < 'Infinity'),
    CONSTRAINT market_data_bid_positive    CHECK (bid > 0 AND bid < 'Infinity'),
    CONSTRAINT market_data_ask_positive    CHECK (ask > 0 AND ask < 'Infinity'),
    CONSTRAINT market_data_bid_le_ask      CHECK (bid <= ask),
    CONSTRAINT market_data_currency_format CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT market_data_lineage_valid   CHECK (source_partition >= 0 AND source_offset >= 0)
) PARTITION BY RANGE (ts);
COMMENT ON TABLE market_data IS 'Ticks of listed instruments (topic market_data); daily partitions market_data_pYYYYMMDD on ts (UTC days).';
-- "latest rows for a symbol" across exchanges: the key starts with exchange, so it cannot serve this.
CREATE INDEX market_data_symbol_ts_idx ON market_data (symbol, ts DESC);
-- time ranges inside a day partition (pruning alone narrows to whole days); rows arrive nearly in ts
-- order, so BRIN is tiny and almost free to maintain.
CREATE INDEX market_data_ts_brin ON market_data USING brin (ts);

-- ---------------------------------------------------------------------------------------------
-- crypto_data: crypto-asset ticks, daily partitions on ts.
CREATE TABLE crypto_data (
    symbol            text        NOT NULL,
    exchange          text        NOT NULL,
    ts                timestamptz NOT NULL,
    price             float8      NOT NULL,
    volume            float8      NOT NULL,
    market_cap        float8,
    quote_currency    text        NOT NULL,
    source_topic      text        NOT NULL,
    source_partition  int         NOT NULL,
    source_offset     bigint      NOT NULL,
    ingested_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT crypto_data_pkey PRIMARY KEY (exchange, symbol, ts),
    CONSTRAINT crypto_data_symbol_format         CHECK (symbol ~ '^[A-Z0-9./^=_-]{1,32}$'),
    CONSTRAINT crypto_data_exchange_format       CHECK (exchange ~ '^[A-Z0-9_-]{1,16}$'),
    CONSTRAINT crypto_data_price_positive        CHECK (price > 0 AND price < 'Infinity'),
    CONSTRAINT crypto_data_volume_nonneg         CHECK (volume >= 0 AND volume < 'Infinity'),
    CONSTRAINT crypto_data_market_cap_nonneg     CHECK (market_cap >= 0 AND market_cap < 'Infinity'),
    CONSTRAINT crypto_data_quote_currency_format CHECK (quote_currency ~ '^[A-Z0-9]{2,10}$'),
    CONSTRAINT crypto_data_lineage_valid         CHECK (source_partition >= 0 AND source_offset >= 0)
) PARTITION BY RANGE (ts);
COMMENT ON TABLE crypto_data IS 'Crypto-asset ticks (topic crypto_data); daily partitions crypto_data_pYYYYMMDD on ts (UTC days).';
-- latest rows for a symbol across exchanges (the key starts with exchange).
CREATE INDEX crypto_data_symbol_ts_idx ON crypto_data (symbol, ts DESC);
-- sub-day time ranges; see market_data_ts_brin.
CREATE INDEX crypto_data_ts_brin ON crypto_data USING brin (ts);

-- ---------------------------------------------------------------------------------------------
-- order_book: book snapshots, levels stored as parallel float8 arrays (the wire's bids/asks arrays
-- of {price, size}, sorted by the validator), daily partitions on ts.
CREATE TABLE order_book (
    symbol            text        NOT NULL,
    exchange          text        NOT NULL,
    ts                timestamptz NOT NULL,
    bid_prices        float8[]    NOT NULL,
    bid_sizes         float8[]    NOT NULL,
    ask_prices        float8[]    NOT NULL,
    ask_sizes         float8[]    NOT NULL,
    best_bid          float8      NOT NULL,
    best_ask          float8      NOT NULL,
    -- not COPYed and not in the merge; nullable on purpose (see the header).
    spread            float8      GENERATED ALWAYS AS (best_ask - best_bid) STORED,
    source_topic      text        NOT NULL,
    source_partition  int         NOT NULL,
    source_offset     bigint      NOT NULL,
    ingested_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT order_book_pkey PRIMARY KEY (exchange, symbol, ts),
    CONSTRAINT order_book_symbol_format   CHECK (symbol ~ '^[A-Z0-9./^=_-]{1,32}$'),
    CONSTRAINT order_book_exchange_format CHECK (exchange ~ '^[A-Z0-9_-]{1,16}$'),
    -- one-dimensional, 1-based, 1..1000 levels, prices and sizes of equal length
    CONSTRAINT order_book_bid_levels CHECK (
        array_ndims(bid_prices) = 1 AND array_lower(bid_prices, 1) = 1
        AND cardinality(bid_prices) BETWEEN 1 AND 1000),
    CONSTRAINT order_book_ask_levels CHECK (
        array_ndims(ask_prices) = 1 AND array_lower(ask_prices, 1) = 1
        AND cardinality(ask_prices) BETWEEN 1 AND 1000),
    CONSTRAINT order_book_bid_lengths_equal CHECK (
        array_ndims(bid_sizes) = 1 AND array_lower(bid_sizes, 1) = 1
        AND cardinality(bid_sizes) = cardinality(bid_prices)),
    CONSTRAINT order_book_ask_lengths_equal CHECK (
        array_ndims(ask_sizes) = 1 AND array_lower(ask_sizes, 1) = 1
        AND cardinality(ask_sizes) = cardinality(ask_prices)),
    -- every element finite and > 0, and no NULL element (a NULL would make "0 < ALL" unknown)
    CONSTRAINT order_book_bid_prices_positive CHECK (
        array_position(bid_prices, NULL) IS NULL AND 0 < ALL (bid_prices) AND 'Infinity' > ALL (bid_prices)),
    CONSTRAINT order_book_bid_sizes_positive CHECK (
        array_position(bid_sizes, NULL) IS NULL AND 0 < ALL (bid_sizes) AND 'Infinity' > ALL (bid_sizes)),
    CONSTRAINT order_book_ask_prices_positive CHECK (
        array_position(ask_prices, NULL) IS NULL AND 0 < ALL (ask_prices) AND 'Infinity' > ALL (ask_prices)),
    CONSTRAINT order_book_ask_sizes_positive CHECK (
        array_position(ask_sizes, NULL) IS NULL AND 0 < ALL (ask_sizes) AND 'Infinity' > ALL (ask_sizes)),
    CONSTRAINT order_book_best_bid_first CHECK (best_bid = bid_prices[1]),
    CONSTRAINT order_book_best_ask_first CHECK (best_ask = ask_prices[1]),
    CONSTRAINT order_book_not_crossed    CHECK (best_bid < best_ask),
    CONSTRAINT order_book_lineage_valid  CHECK (source_partition >= 0 AND source_offset >= 0)
) PARTITION BY RANGE (ts);
COMMENT ON TABLE order_book IS 'Order book snapshots (topic order_book); bids sorted descending, asks ascending; daily partitions order_book_pYYYYMMDD on ts (UTC days).';
COMMENT ON COLUMN order_book.spread IS 'best_ask - best_bid (generated).';
-- latest snapshot for a symbol across exchanges (the key starts with exchange).
CREATE INDEX order_book_symbol_ts_idx ON order_book (symbol, ts DESC);
-- sub-day time ranges; see market_data_ts_brin.
CREATE INDEX order_book_ts_brin ON order_book USING brin (ts);

-- ---------------------------------------------------------------------------------------------
-- news_article: one row per normalized URL; entities in news_entity.
CREATE TABLE news_article (
    article_id        uuid        NOT NULL,
    url               text        NOT NULL,
    title             text        NOT NULL,
    body              text,
    source            text        NOT NULL,
    author            text,
    published_at      timestamptz NOT NULL,
    language          text,
    source_topic      text        NOT NULL,
    source_partition  int         NOT NULL,
    source_offset     bigint      NOT NULL,
    ingested_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT news_article_pkey PRIMARY KEY (article_id),
    CONSTRAINT news_article_url_valid       CHECK (url ~* '^https?://' AND char_length(url) <= 2048),
    CONSTRAINT news_article_title_length    CHECK (char_length(title) BETWEEN 1 AND 1000),
    CONSTRAINT news_article_body_length     CHECK (char_length(body) <= 200000),
    CONSTRAINT news_article_source_length   CHECK (char_length(source) BETWEEN 1 AND 200),
    CONSTRAINT news_article_author_length   CHECK (char_length(author) <= 200),
    CONSTRAINT news_article_language_format CHECK (language ~ '^[a-z]{2}$'),
    CONSTRAINT news_article_lineage_valid   CHECK (source_partition >= 0 AND source_offset >= 0)
);
COMMENT ON TABLE news_article IS 'News articles (topic news_article); article_id = UUIDv5(URL namespace, normalized url).';
-- a source's latest articles ("WHERE source = $1 ORDER BY published_at DESC").
CREATE INDEX news_article_source_published_idx ON news_article (source, published_at DESC);
-- latest headlines overall and time ranges; a btree (not BRIN) because backfilled articles arrive
-- out of published_at order and the volume is low enough to afford it.
CREATE INDEX news_article_published_idx ON news_article (published_at DESC);

-- news_entity: entities of an article; rows come from news_article records.
CREATE TABLE news_entity (
    article_id        uuid        NOT NULL,
    name              text        NOT NULL,
    entity_type       text        NOT NULL,
    symbol            text,
    salience          float8,
    sentiment         float8,
    source_topic      text        NOT NULL,
    source_partition  int         NOT NULL,
    source_offset     bigint      NOT NULL,
    ingested_at       timestamptz NOT NULL DEFAULT now(),
    -- starts with article_id, so it also serves the foreign key (cascade deletes, "entities of an
    -- article"); no separate FK index is needed.
    CONSTRAINT news_entity_pkey PRIMARY KEY (article_id, entity_type, name),
    CONSTRAINT news_entity_article_fk FOREIGN KEY (article_id)
        REFERENCES news_article (article_id) ON DELETE CASCADE,
    CONSTRAINT news_entity_name_length    CHECK (char_length(name) BETWEEN 1 AND 200),
    CONSTRAINT news_entity_type_valid     CHECK (entity_type IN
        ('person', 'organization', 'location', 'ticker', 'product', 'event', 'other')),
    CONSTRAINT news_entity_symbol_format  CHECK (symbol ~ '^[A-Z0-9./^=_-]{1,32}$'),
    CONSTRAINT news_entity_salience_range CHECK (salience BETWEEN 0 AND 1),
    CONSTRAINT news_entity_sentiment_range CHECK (sentiment BETWEEN -1 AND 1),
    CONSTRAINT news_entity_lineage_valid  CHECK (source_partition >= 0 AND source_offset >= 0)
);
COMMENT ON TABLE news_entity IS 'Entities mentioned in news articles (from news_article records).';
-- "articles mentioning AAPL"; partial because most entities have no symbol.
CREATE INDEX news_entity_symbol_idx ON news_entity (symbol) WHERE symbol IS NOT NULL;

-- ---------------------------------------------------------------------------------------------
-- social_post: one row per (platform, post_id); entities in social_entity.
CREATE TABLE social_post (
    post_uid          uuid        NOT NULL,
    platform          text        NOT NULL,
    post_id           text        NOT NULL,
    author            text        NOT NULL,
    body              text        NOT NULL,
    url               text,
    posted_at         timestamptz NOT NULL,
    likes             bigint,
    shares            bigint,
    language          text,
    source_topic      text        NOT NULL,
    source_partition  int         NOT NULL,
    source_offset     bigint      NOT NULL,
    ingested_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT social_post_pkey PRIMARY KEY (post_uid),
    CONSTRAINT social_post_platform_post_id_key UNIQUE (platform, post_id),
    CONSTRAINT social_post_platform_valid    CHECK (platform IN
        ('twitter', 'reddit', 'stocktwits', 'mastodon', 'bluesky', 'other')),
    CONSTRAINT social_post_post_id_length    CHECK (char_length(post_id) BETWEEN 1 AND 128),
    CONSTRAINT social_post_author_length     CHECK (char_length(author) BETWEEN 1 AND 200),
    CONSTRAINT social_post_body_length       CHECK (char_length(body) BETWEEN 1 AND 40000),
    CONSTRAINT social_post_url_valid         CHECK (url ~* '^https?://' AND char_length(url) <= 2048),
    CONSTRAINT social_post_likes_nonneg      CHECK (likes >= 0),
    CONSTRAINT social_post_shares_nonneg     CHECK (shares >= 0),
    CONSTRAINT social_post_language_format   CHECK (language ~ '^[a-z]{2}$'),
    CONSTRAINT social_post_lineage_valid     CHECK (source_partition >= 0 AND source_offset >= 0)
);
COMMENT ON TABLE social_post IS 'Social media posts (topic social_post); post_uid = UUIDv5(OID namespace, platform:post_id); body is the wire field text.';
-- a platform's latest posts ("WHERE platform = $1 ORDER BY posted_at DESC").
CREATE INDEX social_post_platform_posted_idx ON social_post (platform, posted_at DESC);
-- time ranges over all platforms; high volume and nearly append-ordered, so BRIN.
CREATE INDEX social_post_posted_brin ON social_post USING brin (posted_at);

-- social_entity: entities of a post; rows come from social_post records.
CREATE TABLE social_entity (
    post_uid          uuid        NOT NULL,
    name              text        NOT NULL,
    entity_type       text        NOT NULL,
    symbol            text,
    salience          float8,
    sentiment         float8,
    source_topic      text        NOT NULL,
    source_partition  int         NOT NULL,
    source_offset     bigint      NOT NULL,
    ingested_at       timestamptz NOT NULL DEFAULT now(),
    -- starts with post_uid, so it also serves the foreign key; no separate FK index.
    CONSTRAINT social_entity_pkey PRIMARY KEY (post_uid, entity_type, name),
    CONSTRAINT social_entity_post_fk FOREIGN KEY (post_uid)
        REFERENCES social_post (post_uid) ON DELETE CASCADE,
    CONSTRAINT social_entity_name_length    CHECK (char_length(name) BETWEEN 1 AND 200),
    CONSTRAINT social_entity_type_valid     CHECK (entity_type IN
        ('person', 'organization', 'location', 'ticker', 'product', 'event', 'other')),
    CONSTRAINT social_entity_symbol_format  CHECK (symbol ~ '^[A-Z0-9./^=_-]{1,32}$'),
    CONSTRAINT social_entity_salience_range CHECK (salience BETWEEN 0 AND 1),
    CONSTRAINT social_entity_sentiment_range CHECK (sentiment BETWEEN -1 AND 1),
    CONSTRAINT social_entity_lineage_valid  CHECK (source_partition >= 0 AND source_offset >= 0)
);
COMMENT ON TABLE social_entity IS 'Entities mentioned in social posts (from social_post records).';
-- "posts mentioning AAPL"; partial because most entities have no symbol.
CREATE INDEX social_entity_symbol_idx ON social_entity (symbol) WHERE symbol IS NOT NULL;

-- ---------------------------------------------------------------------------------------------
-- economic_indicator: releases of macro series; a revision is a new row (released_at in the key).
CREATE TABLE economic_indicator (
    indicator         text        NOT NULL,
    country           char(2)     NOT NULL,
    frequency         text        NOT NULL,
    period_start      date        NOT NULL,
    value             float8      NOT NULL,
    unit              text        NOT NULL,
    released_at       timestamptz NOT NULL,
    source            text        NOT NULL,
    source_topic      text        NOT NULL,
    source_partition  int         NOT NULL,
    source_offset     bigint      NOT NULL,
    ingested_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT economic_indicator_pkey
        PRIMARY KEY (source, indicator, country, frequency, period_start, released_at),
    CONSTRAINT economic_indicator_indicator_format CHECK (indicator ~ '^[A-Z0-9_.-]{1,64}$'),
    CONSTRAINT economic_indicator_country_format   CHECK (country ~ '^[A-Z]{2}$'),
    CONSTRAINT economic_indicator_frequency_valid  CHECK (frequency IN
        ('daily', 'weekly', 'monthly', 'quarterly', 'annual')),
    CONSTRAINT economic_indicator_period_start_range
        CHECK (period_start >= DATE '1900-01-01' AND period_start < DATE '2201-01-01'),
    CONSTRAINT economic_indicator_value_finite     CHECK (value > '-Infinity' AND value < 'Infinity'),
    CONSTRAINT economic_indicator_unit_length      CHECK (char_length(unit) BETWEEN 1 AND 32),
    CONSTRAINT economic_indicator_source_length    CHECK (char_length(source) BETWEEN 1 AND 200),
    CONSTRAINT economic_indicator_lineage_valid    CHECK (source_partition >= 0 AND source_offset >= 0)
);
COMMENT ON TABLE economic_indicator IS 'Macroeconomic series releases (topic economic_indicator); revisions are new rows.';
-- a series regardless of source ("CPI for US, latest periods/vintages"); the key starts with source.
CREATE INDEX economic_indicator_series_idx
    ON economic_indicator (indicator, country, period_start DESC, released_at DESC);
-- "what was released between X and Y"; releases arrive out of order (backfills), low volume: btree.
CREATE INDEX economic_indicator_released_idx ON economic_indicator (released_at);

-- ---------------------------------------------------------------------------------------------
-- supply_chain_metric
CREATE TABLE supply_chain_metric (
    metric            text        NOT NULL,
    location          text        NOT NULL,
    observed_at       timestamptz NOT NULL,
    value             float8      NOT NULL,
    unit              text        NOT NULL,
    source            text        NOT NULL,
    source_topic      text        NOT NULL,
    source_partition  int         NOT NULL,
    source_offset     bigint      NOT NULL,
    ingested_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT supply_chain_metric_pkey PRIMARY KEY (source, metric, location, observed_at),
    CONSTRAINT supply_chain_metric_metric_valid CHECK (metric IN
        ('freight_rate', 'port_congestion', 'inventory_level', 'lead_time', 'shipping_volume',
         'container_price')),
    CONSTRAINT supply_chain_metric_location_length CHECK (char_length(location) BETWEEN 1 AND 128),
    CONSTRAINT supply_chain_metric_value_nonneg    CHECK (value >= 0 AND value < 'Infinity'),
    CONSTRAINT supply_chain_metric_unit_length     CHECK (char_length(unit) BETWEEN 1 AND 32),
    CONSTRAINT supply_chain_metric_source_length   CHECK (char_length(source) BETWEEN 1 AND 200),
    CONSTRAINT supply_chain_metric_lineage_valid   CHECK (source_partition >= 0 AND source_offset >= 0)
);
COMMENT ON TABLE supply_chain_metric IS 'Supply-chain observations (topic supply_chain_metric).';
-- a metric's series at a location regardless of source; the key starts with source.
CREATE INDEX supply_chain_metric_series_idx
    ON supply_chain_metric (metric, location, observed_at DESC);
-- time ranges over all metrics; append-mostly, so BRIN.
CREATE INDEX supply_chain_metric_observed_brin ON supply_chain_metric USING brin (observed_at);

-- ---------------------------------------------------------------------------------------------
-- earnings_event
CREATE TABLE earnings_event (
    symbol            text        NOT NULL,
    fiscal_year       int         NOT NULL,
    fiscal_quarter    smallint    NOT NULL,
    reported_at       timestamptz NOT NULL,
    eps_estimate      float8,
    eps_actual        float8,
    revenue_estimate  float8,
    revenue_actual    float8,
    currency          char(3)     NOT NULL,
    source_topic      text        NOT NULL,
    source_partition  int         NOT NULL,
    source_offset     bigint      NOT NULL,
    ingested_at       timestamptz NOT NULL DEFAULT now(),
    -- also serves "earnings history of a symbol".
    CONSTRAINT earnings_event_pkey PRIMARY KEY (symbol, fiscal_year, fiscal_quarter),
    CONSTRAINT earnings_event_symbol_format         CHECK (symbol ~ '^[A-Z0-9./^=_-]{1,32}$'),
    CONSTRAINT earnings_event_fiscal_year_range     CHECK (fiscal_year BETWEEN 1900 AND 2200),
    CONSTRAINT earnings_event_fiscal_quarter_range  CHECK (fiscal_quarter BETWEEN 1 AND 4),
    CONSTRAINT earnings_event_eps_estimate_finite
        CHECK (eps_estimate > '-Infinity' AND eps_estimate < 'Infinity'),
    CONSTRAINT earnings_event_eps_actual_finite
        CHECK (eps_actual > '-Infinity' AND eps_actual < 'Infinity'),
    CONSTRAINT earnings_event_revenue_estimate_nonneg
        CHECK (revenue_estimate >= 0 AND revenue_estimate < 'Infinity'),
    CONSTRAINT earnings_event_revenue_actual_nonneg
        CHECK (revenue_actual >= 0 AND revenue_actual < 'Infinity'),
    CONSTRAINT earnings_event_currency_format       CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT earnings_event_lineage_valid         CHECK (source_partition >= 0 AND source_offset >= 0)
);
COMMENT ON TABLE earnings_event IS 'Quarterly earnings reports (topic earnings_event).';
-- earnings calendar ("reports between X and Y"); low volume, out of order: btree.
CREATE INDEX earnings_event_reported_idx ON earnings_event (reported_at);

-- ---------------------------------------------------------------------------------------------
-- sec_filing
CREATE TABLE sec_filing (
    accession_number  text        NOT NULL,
    cik               text        NOT NULL,
    company_name      text        NOT NULL,
    form_type         text        NOT NULL,
    filed_at          timestamptz NOT NULL,
    url               text        NOT NULL,
    symbol            text,
    source_topic      text        NOT NULL,
    source_partition  int         NOT NULL,
    source_offset     bigint      NOT NULL,
    ingested_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sec_filing_pkey PRIMARY KEY (accession_number),
    CONSTRAINT sec_filing_accession_number_format
        CHECK (accession_number ~ '^[0-9]{10}-[0-9]{2}-[0-9]{6}$'),
    CONSTRAINT sec_filing_cik_format          CHECK (cik ~ '^[0-9]{10}$'),
    CONSTRAINT sec_filing_company_name_length CHECK (char_length(company_name) BETWEEN 1 AND 300),
    CONSTRAINT sec_filing_form_type_valid     CHECK (form_type IN
        ('10-K', '10-Q', '8-K', 'S-1', '4', '13F-HR', 'DEF 14A', '6-K', '20-F', 'SC 13D', 'SC 13G')),
    CONSTRAINT sec_filing_url_valid           CHECK (url ~* '^https?://' AND char_length(url) <= 2048),
    CONSTRAINT sec_filing_symbol_format       CHECK (symbol ~ '^[A-Z0-9./^=_-]{1,32}$'),
    CONSTRAINT sec_filing_lineage_valid       CHECK (source_partition >= 0 AND source_offset >= 0)
);
COMMENT ON TABLE sec_filing IS 'SEC EDGAR filings (topic sec_filing); cik zero-padded to 10 digits.';
-- a filer's latest filings ("WHERE cik = $1 ORDER BY filed_at DESC").
CREATE INDEX sec_filing_cik_filed_idx ON sec_filing (cik, filed_at DESC);
-- latest filings for a ticker; partial because many filers have no symbol.
CREATE INDEX sec_filing_symbol_filed_idx ON sec_filing (symbol, filed_at DESC) WHERE symbol IS NOT NULL;
-- time ranges / "today's filings"; append-mostly, so BRIN.
CREATE INDEX sec_filing_filed_brin ON sec_filing USING brin (filed_at);

-- ---------------------------------------------------------------------------------------------
-- feature: values written back by ML services.
CREATE TABLE feature (
    entity            text        NOT NULL,
    name              text        NOT NULL,
    ts                timestamptz NOT NULL,
    value             float8      NOT NULL,
    model_version     text        NOT NULL,
    source_topic      text        NOT NULL,
    source_partition  int         NOT NULL,
    source_offset     bigint      NOT NULL,
    ingested_at       timestamptz NOT NULL DEFAULT now(),
    -- also serves "latest value of a feature" (WHERE entity = $1 AND name = $2 ORDER BY ts DESC):
    -- a backward scan of this index, so no separate (entity, name, ts DESC) index is created.
    CONSTRAINT feature_pkey PRIMARY KEY (entity, name, ts, model_version),
    CONSTRAINT feature_entity_format        CHECK (entity ~ '^[A-Z0-9./^=_-]{1,32}$'),
    CONSTRAINT feature_name_format          CHECK (name ~ '^[a-z0-9_.]{1,128}$'),
    CONSTRAINT feature_value_finite         CHECK (value > '-Infinity' AND value < 'Infinity'),
    CONSTRAINT feature_model_version_length CHECK (char_length(model_version) BETWEEN 1 AND 64),
    CONSTRAINT feature_lineage_valid        CHECK (source_partition >= 0 AND source_offset >= 0)
);
COMMENT ON TABLE feature IS 'Feature values written back by ML services (topic feature).';
-- time ranges over all entities/features (e.g. exports); append-mostly, so BRIN.
CREATE INDEX feature_ts_brin ON feature USING brin (ts);

-- ---------------------------------------------------------------------------------------------
-- insight
CREATE TABLE insight (
    insight_id        text        NOT NULL,
    symbol            text,
    kind              text        NOT NULL,
    title             text        NOT NULL,
    body              text,
    confidence        float8      NOT NULL,
    generated_at      timestamptz NOT NULL,
    model             text        NOT NULL,
    source_topic      text        NOT NULL,
    source_partition  int         NOT NULL,
    source_offset     bigint      NOT NULL,
    ingested_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT insight_pkey PRIMARY KEY (insight_id),
    CONSTRAINT insight_insight_id_length CHECK (char_length(insight_id) BETWEEN 1 AND 128),
    CONSTRAINT insight_symbol_format     CHECK (symbol ~ '^[A-Z0-9./^=_-]{1,32}$'),
    CONSTRAINT insight_kind_valid        CHECK (kind IN
        ('anomaly', 'trend', 'sentiment_shift', 'correlation', 'event')),
    CONSTRAINT insight_title_length      CHECK (char_length(title) BETWEEN 1 AND 500),
    CONSTRAINT insight_body_length       CHECK (char_length(body) <= 20000),
    CONSTRAINT insight_confidence_range  CHECK (confidence BETWEEN 0 AND 1),
    CONSTRAINT insight_model_length      CHECK (char_length(model) BETWEEN 1 AND 64),
    CONSTRAINT insight_lineage_valid     CHECK (source_partition >= 0 AND source_offset >= 0)
);
COMMENT ON TABLE insight IS 'Generated insights (topic insight).';
-- latest insights for a symbol; partial because market-wide insights have no symbol.
CREATE INDEX insight_symbol_generated_idx ON insight (symbol, generated_at DESC) WHERE symbol IS NOT NULL;
-- latest insights overall / time ranges; low volume: btree.
CREATE INDEX insight_generated_idx ON insight (generated_at DESC);

-- ---------------------------------------------------------------------------------------------
-- strategy: versions of strategy definitions (small table; the key is the only index).
CREATE TABLE strategy (
    strategy_id       text        NOT NULL,
    version           int         NOT NULL,
    name              text        NOT NULL,
    description       text,
    parameters        jsonb       NOT NULL,
    created_at        timestamptz NOT NULL,
    source_topic      text        NOT NULL,
    source_partition  int         NOT NULL,
    source_offset     bigint      NOT NULL,
    ingested_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT strategy_pkey PRIMARY KEY (strategy_id, version),
    CONSTRAINT strategy_strategy_id_length CHECK (char_length(strategy_id) BETWEEN 1 AND 128),
    CONSTRAINT strategy_version_positive   CHECK (version >= 1),
    CONSTRAINT strategy_name_length        CHECK (char_length(name) BETWEEN 1 AND 200),
    CONSTRAINT strategy_description_length CHECK (char_length(description) <= 20000),
    CONSTRAINT strategy_parameters_object  CHECK (jsonb_typeof(parameters) = 'object'),
    CONSTRAINT strategy_lineage_valid      CHECK (source_partition >= 0 AND source_offset >= 0)
);
COMMENT ON TABLE strategy IS 'Strategy definitions, one row per version (topic strategy).';

-- ---------------------------------------------------------------------------------------------
-- signal
CREATE TABLE signal (
    strategy_id       text        NOT NULL,
    strategy_version  int         NOT NULL,
    symbol            text        NOT NULL,
    ts                timestamptz NOT NULL,
    direction         text        NOT NULL,
    strength          float8      NOT NULL,
    confidence        float8,
    horizon_seconds   bigint,
    source_topic      text        NOT NULL,
    source_partition  int         NOT NULL,
    source_offset     bigint      NOT NULL,
    ingested_at       timestamptz NOT NULL DEFAULT now(),
    -- also serves "signals of a strategy version".
    CONSTRAINT signal_pkey PRIMARY KEY (strategy_id, strategy_version, symbol, ts),
    CONSTRAINT signal_strategy_id_length     CHECK (char_length(strategy_id) BETWEEN 1 AND 128),
    CONSTRAINT signal_strategy_version_positive CHECK (strategy_version >= 1),
    CONSTRAINT signal_symbol_format          CHECK (symbol ~ '^[A-Z0-9./^=_-]{1,32}$'),
    CONSTRAINT signal_direction_valid        CHECK (direction IN ('long', 'short', 'flat')),
    CONSTRAINT signal_strength_range         CHECK (strength BETWEEN 0 AND 1),
    CONSTRAINT signal_confidence_range       CHECK (confidence BETWEEN 0 AND 1),
    CONSTRAINT signal_horizon_seconds_positive CHECK (horizon_seconds > 0),
    CONSTRAINT signal_lineage_valid          CHECK (source_partition >= 0 AND source_offset >= 0)
);
COMMENT ON TABLE signal IS 'Trading signals (topic signal).';
-- latest signals for a symbol across strategies (the key starts with strategy_id).
CREATE INDEX signal_symbol_ts_idx ON signal (symbol, ts DESC);
-- time ranges over all symbols; append-mostly, so BRIN.
CREATE INDEX signal_ts_brin ON signal USING brin (ts);
