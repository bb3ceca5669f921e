-- Move the staged sec_filing rows with source_offset in [$1, $2] (bigint) into sec_filing.
-- Rows whose natural key already exists, or repeats within the range, are skipped; ORDER BY makes
-- the lowest offset win a repeat. ingested_at takes its default (now()).
INSERT INTO sec_filing (
    accession_number, cik, company_name, form_type, filed_at, url, symbol,
    source_topic, source_partition, source_offset)
SELECT
    accession_number, cik, company_name, form_type, filed_at, url, symbol,
    source_topic, source_partition, source_offset
FROM pg_temp.stage_sec_filing
WHERE source_offset BETWEEN $1 AND $2
ORDER BY source_offset
ON CONFLICT DO NOTHING
