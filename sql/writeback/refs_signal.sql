-- Staged signal records of the offset range $1..$2 whose strategy version is not stored
-- (unknown_strategy, checked first) or whose symbol the database does not know (unknown_entity).
SELECT s.source_offset,
       CASE WHEN g.strategy_id IS NULL THEN 'unknown_strategy' ELSE 'unknown_entity' END AS reason,
       CASE WHEN g.strategy_id IS NULL
            THEN format('strategy %s version %s is not stored (it must be written to the strategy topic first)', s.strategy_id, s.strategy_version)
            ELSE format('symbol %s is not a known symbol (no row of market_data, crypto_data, order_book, earnings_event, sec_filing, news_entity or social_entity names it)', s.symbol)
       END AS message
  FROM pg_temp.stage_signal s
  LEFT JOIN strategy g ON g.strategy_id = s.strategy_id AND g.version = s.strategy_version
 WHERE s.source_offset BETWEEN $1 AND $2
   AND (g.strategy_id IS NULL OR NOT esurio_known_symbol(s.symbol))
 ORDER BY s.source_offset
