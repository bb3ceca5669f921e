-- A tombstone whose key has no current row: was the row deleted before (a replayed tombstone,
-- a duplicate) or did it never exist (unknown_target)?
SELECT EXISTS (SELECT 1 FROM {history} t WHERE {key_json} AND t.history_reason = 'deleted')
