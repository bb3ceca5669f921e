-- A tombstone: the current {table} row of the key $1 (a JSON object of the key columns) leaves the
-- table and is kept in {history} as 'deleted' (with its own lineage; superseded_at says when).
WITH gone AS (
    DELETE FROM {table} t
     WHERE {key_json}
 RETURNING t.*
)
INSERT INTO {history} ({columns}, ingested_at, history_reason)
SELECT {columns}, ingested_at, 'deleted' FROM gone
