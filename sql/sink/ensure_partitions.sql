-- Creates any missing daily partitions of a day-partitioned table for [$2, $3].
SELECT esurio_ensure_partitions($1::text::regclass, $2::date, $3::date)
