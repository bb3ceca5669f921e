-- 0002_partitions.sql: daily range partitions for market_data, crypto_data and order_book.
--
-- Design choices
-- * One partition per UTC day, named <parent>_pYYYYMMDD, bounds [day 00:00+00, next day 00:00+00).
--   The bounds are timestamptz literals with an explicit +00, so the server and session TimeZone
--   never change which instants a partition holds. Daily partitions keep each partition's indexes
--   small while ingesting, make time-range reads prune to the days they touch, and make retention a
--   cheap DETACH/DROP of whole days instead of a DELETE.
-- * There is deliberately no DEFAULT partition: a row for a day without a partition fails (SQLSTATE
--   23514, "no partition of relation ... found for row") instead of landing in a catch-all that
--   would later block creating that day's partition. The worker calls esurio_ensure_partitions for
--   the days a batch touches before writing it, and at start for [today-1, today+7].
-- * The function is safe to call concurrently from several workers: creation is serialized by a
--   transaction-scoped advisory lock, and after taking it the function re-checks the catalog, so a
--   partition created by another worker meanwhile is skipped rather than failing. A table that has
--   a partition's name but is not a partition of the parent is reported as an error, not skipped.
-- * Call it in its own short transaction, NOT inside a batch transaction that already wrote to the
--   parent: CREATE TABLE ... PARTITION OF takes an ACCESS EXCLUSIVE lock on the parent, so two
--   ingesting transactions each creating a partition could deadlock. When every requested
--   partition already exists it takes no lock at all (fast path), so calling it per batch is cheap.

CREATE FUNCTION esurio_ensure_partitions(parent regclass, from_day date, to_day date)
RETURNS int
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    parent_schema text;
    parent_name   text;
    part_day      date;
    part_name     text;
    existing      regclass;
    missing       date[];
    created       int := 0;
BEGIN
    IF parent IS NULL OR from_day IS NULL OR to_day IS NULL THEN
        RAISE EXCEPTION 'esurio_ensure_partitions: arguments must not be NULL';
    END IF;
    IF to_day < from_day THEN
        RETURN 0;
    END IF;

    SELECT n.nspname, c.relname
      INTO parent_schema, parent_name
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = parent AND c.relkind = 'p';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'esurio_ensure_partitions: % is not a partitioned table', parent;
    END IF;

    -- Fast path, no lock: which days lack a partition of parent? to_regclass and pg_partition_root
    -- read the catalogs with a fresh catalog snapshot (not the transaction's MVCC snapshot), so they
    -- also see partitions another worker committed after this transaction started.
    SELECT array_agg(d::date ORDER BY d)
      INTO missing
      FROM generate_series(from_day::timestamp, to_day::timestamp, interval '1 day') AS d
     WHERE pg_partition_root(to_regclass(format('%I.%I', parent_schema,
                 parent_name || '_p' || to_char(d, 'YYYYMMDD')))) IS DISTINCT FROM parent;
    IF missing IS NULL THEN
        RETURN 0;
    END IF;

    -- Slow path: serialize creators (held until this transaction ends), then re-check each day.
    PERFORM pg_advisory_xact_lock(hashtext('esurio_partitions'));

    FOREACH part_day IN ARRAY missing LOOP
        part_name := parent_name || '_p' || to_char(part_day, 'YYYYMMDD');
        existing := to_regclass(format('%I.%I', parent_schema, part_name));
        IF existing IS NOT NULL THEN
            -- created meanwhile by another worker, or a stray table squatting on the name.
            IF pg_partition_root(existing) IS DISTINCT FROM parent THEN
                RAISE EXCEPTION 'esurio_ensure_partitions: %.% exists but is not a partition of %',
                    parent_schema, part_name, parent;
            END IF;
            CONTINUE;
        END IF;
        EXECUTE format('CREATE TABLE %I.%I PARTITION OF %I.%I FOR VALUES FROM (%L) TO (%L)',
                       parent_schema, part_name, parent_schema, parent_name,
                       to_char(part_day, 'YYYY-MM-DD') || ' 00:00:00+00',
                       to_char(part_day + 1, 'YYYY-MM-DD') || ' 00:00:00+00');
        created := created + 1;
    END LOOP;
    RETURN created;
END
$fn$;

COMMENT ON FUNCTION esurio_ensure_partitions(regclass, date, date) IS
    'Creates the missing daily partitions <parent>_pYYYYMMDD for the UTC days from_day..to_day (inclusive); returns how many it created. Concurrency-safe; call outside batch transactions.';

-- Initial partitions: yesterday .. a week ahead, in UTC days (not current_date, which follows the
-- session TimeZone).
SELECT esurio_ensure_partitions(t::regclass,
                                (now() AT TIME ZONE 'UTC')::date - 1,
                                (now() AT TIME ZONE 'UTC')::date + 7)
  FROM unnest(ARRAY['market_data', 'crypto_data', 'order_book']) AS t;
