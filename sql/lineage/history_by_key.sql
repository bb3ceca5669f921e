-- `esurio lineage`: versions of a key kept in <table>_history (revised, superseded or deleted), newest
-- first; used when the key has no current row, and for revise families only (ticks have no history).
-- Placeholders as in row_by_key.sql; {history} is the history table. $1: the key as a JSON object.
SELECT to_jsonb(t) - 'history_reason' - 'superseded_at' AS row, t.history_reason, t.superseded_at
  FROM {history} t, jsonb_populate_record(NULL::{table}, $1::jsonb) k
 WHERE {key_match}
 ORDER BY t.superseded_at DESC
