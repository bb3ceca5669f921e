-- `esurio lineage`: the row a natural key names, current or kept in history (the walk's root, and a
-- signal's strategy). Ordered so the current row comes first, then the newest history version.
--
-- Placeholders, filled by src/admin/lineage.rs with quoted identifiers of a known table only:
--   {table}  the table (its row type also types the key: jsonb_populate_record parses each key
--            value as its column's type, so '2026-01-02T03:04:05Z' becomes a timestamptz and a
--            malformed uuid is an error, not a miss)
--   {key_match}  t.k = k.k for every key column (the primary key's index serves it)
-- $1: the key as a JSON object of the key columns.
SELECT to_jsonb(t) AS row, NULL::text AS history_reason, NULL::timestamptz AS superseded_at
  FROM {table} t, jsonb_populate_record(NULL::{table}, $1::jsonb) k
 WHERE {key_match}
