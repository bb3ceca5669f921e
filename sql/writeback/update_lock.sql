-- sentiment_update, step 1: lock the {target} rows the staged updates of the offset range $1..$2
-- target, so that what step 2 reads stays true until commit (another partition may update them).
SELECT 1
  FROM {target} t
 WHERE t.{key} IN (SELECT s.key FROM pg_temp.stage_sentiment_update s
                    WHERE s.target = '{target}' AND s.source_offset BETWEEN $1 AND $2)
   FOR UPDATE
