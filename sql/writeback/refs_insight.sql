-- Staged insight records of the offset range $1..$2 about a symbol the database does not know
-- (esurio_known_symbol, 0008): quarantined as unknown_entity. Market-wide insights (no symbol) pass.
SELECT s.source_offset,
       'unknown_entity' AS reason,
       format('symbol %s is not a known symbol (no row of market_data, crypto_data, order_book, earnings_event, sec_filing, news_entity or social_entity names it)', s.symbol) AS message
  FROM pg_temp.stage_insight s
 WHERE s.source_offset BETWEEN $1 AND $2
   AND s.symbol IS NOT NULL
   AND NOT esurio_known_symbol(s.symbol)
 ORDER BY s.source_offset
