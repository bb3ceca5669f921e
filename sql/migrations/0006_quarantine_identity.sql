-- 0006_quarantine_identity.sql: a quarantined record is its position AND its bytes.
--
-- Design choices
-- * quarantine used to be unique on (source_topic, source_partition, source_offset), so that a
--   replay of the same offset (after a crash, a reset) does not quarantine a record twice. After a
--   topic is deleted and recreated (and the stored offset reset), offsets start again at 0: a new
--   invalid record at an offset an old one was quarantined at would have been dropped by ON CONFLICT
--   DO NOTHING, silently. The key now includes digests of the key and payload bytes: the same
--   record read again is still deduplicated, a different record at a reused position gets its row.
ALTER TABLE quarantine DROP CONSTRAINT quarantine_source_key;
CREATE UNIQUE INDEX quarantine_source_key ON quarantine
    (source_topic, source_partition, source_offset,
     md5(coalesce(record_key, '\x'::bytea)), md5(coalesce(payload, '\x'::bytea)));
