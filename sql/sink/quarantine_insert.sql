-- A batch's rejected records, in one round trip. ON CONFLICT: a record (its position and its bytes,
-- see 0006) is quarantined once.
INSERT INTO quarantine
       (source_topic, source_partition, source_offset, record_key, payload, stage, reason, message,
        record_ts)
SELECT $1, $2, q.source_offset, q.record_key, q.payload, q.stage, q.reason, q.message, q.record_ts
  FROM unnest($3::bigint[], $4::bytea[], $5::bytea[], $6::text[], $7::text[], $8::text[],
              $9::timestamptz[])
       AS q(source_offset, record_key, payload, stage, reason, message, record_ts)
ON CONFLICT (source_topic, source_partition, source_offset,
             md5(coalesce(record_key, '\x'::bytea)), md5(coalesce(payload, '\x'::bytea)))
DO NOTHING
