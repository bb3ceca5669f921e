UPDATE quarantine SET dlq_published_at = now() WHERE id = ANY($1::bigint[])
