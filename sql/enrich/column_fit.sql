-- How the server fits text into a column of a handed-over family's table (src/enrich/handover.rs):
-- the type's name and its declared length (char(n), varchar(n); -1 when it has none).
SELECT t.typname::text, CASE WHEN a.atttypmod > 4 THEN a.atttypmod - 4 ELSE -1 END
  FROM pg_attribute a
  JOIN pg_type t ON t.oid = a.atttypid
 WHERE a.attrelid = $1::text::regclass AND a.attname = $2 AND NOT a.attisdropped
