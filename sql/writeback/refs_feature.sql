-- Staged feature records of the offset range $1..$2 whose entity is not a symbol the database
-- knows (esurio_known_symbol, 0008): quarantined as unknown_entity.
SELECT s.source_offset,
       'unknown_entity' AS reason,
       format('entity %s is not a known symbol (no row of market_data, crypto_data, order_book, earnings_event, sec_filing, news_entity or social_entity names it)', s.entity) AS message
  FROM pg_temp.stage_feature s
 WHERE s.source_offset BETWEEN $1 AND $2
   AND NOT esurio_known_symbol(s.entity)
 ORDER BY s.source_offset
