-- revise policy: staged records $1 are the first version of their keys. DO NOTHING only when a
-- concurrent writer stored the key meanwhile; the caller counts and retries the batch then.
INSERT INTO {table} ({columns})
SELECT {columns} FROM {stage} WHERE source_offset = ANY($1::bigint[])
ON CONFLICT DO NOTHING
