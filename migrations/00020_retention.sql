-- Table growth (issue 17): every table that grows with use gets a retention whose
-- cost stays bounded however large the table is (internal/retention runs it).
--
-- event_log is partitioned by month on occurred_at (native RANGE partitioning):
-- a month past retention is one DETACH and one DROP, never millions of DELETEs.
-- Partitions are created ahead by labelq_event_log_ensure_partitions (here, and on
-- every retention pass) and dropped by labelq_event_log_drop_partitions; both are
-- the schema owner's (SECURITY DEFINER), since the worker role has no DDL. There is
-- no default partition: attaching a partition next to one would lock it (and every
-- read of event_log) while it is scanned; partitions made months ahead do instead.
--
-- Columns, check and foreign keys (named as before: the old table still holds the
-- generated names while its rows are copied), the entity index, the grants, row-level security
-- and the updated_at trigger are those of 00001/00002/00008. Two things cannot stay:
--
--   * the primary key must contain the partition key: (id, occurred_at). id is still
--     an identity column and unique (one sequence), and every query by id still
--     finds its row through the key's index on each partition.
--   * a UNIQUE (dedup_key) spanning partitions is impossible. The dedup keys move to
--     event_log_dedup, itself partitioned by month, and a BEFORE INSERT trigger
--     drops a repeated event, as ON CONFLICT (dedup_key) DO NOTHING did (the insert
--     reports no row, RETURNING returns none). Each key is written to the bucket of
--     its event's month and to the next month's, so two events with one key at
--     most a calendar month apart always meet in a bucket, where the unique index
--     decides (and waits for a concurrent writer, like the old constraint); keys
--     further apart than that are no longer compared. A repeat comes from a
--     redelivered task or a schedule tick fired twice, seconds to days apart.
--
-- The other tables are deleted in batches (internal/retention, queries/retention.sql);
-- each gets the index that finds its oldest expired rows without a scan:
-- idempotency_keys and webhook_events had one already (created_at).

-- +goose Up
ALTER TABLE event_log RENAME TO event_log_unpartitioned;
ALTER INDEX event_log_pkey RENAME TO event_log_unpartitioned_pkey;
ALTER INDEX event_log_dedup_key RENAME TO event_log_unpartitioned_dedup_key;
ALTER INDEX event_log_entity_idx RENAME TO event_log_unpartitioned_entity_idx;
ALTER SEQUENCE event_log_id_seq RENAME TO event_log_unpartitioned_id_seq;

CREATE TABLE event_log (
    id          bigint GENERATED ALWAYS AS IDENTITY,
    org_id      bigint NOT NULL CONSTRAINT event_log_org_id_fkey REFERENCES organizations (id),
    entity_type entity_type NOT NULL,
    entity_id   bigint NOT NULL,
    event_type  text NOT NULL CONSTRAINT event_log_event_type_check CHECK (event_type ~ '^[a-z][a-z_]{1,62}$'),
    user_id     bigint CONSTRAINT event_log_user_id_fkey REFERENCES users (id),
    -- Makes "the same event again" (a redelivered task) a no-op: event_log_dedup.
    dedup_key   text CONSTRAINT event_log_dedup_key_check CHECK (length(dedup_key) <= 300),
    metadata    jsonb NOT NULL DEFAULT '{}' CONSTRAINT event_log_metadata_check CHECK (jsonb_typeof(metadata) = 'object'),
    occurred_at timestamptz NOT NULL DEFAULT now(),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT event_log_pkey PRIMARY KEY (id, occurred_at)
) PARTITION BY RANGE (occurred_at);
CREATE INDEX event_log_entity_idx ON event_log (entity_type, entity_id, id);

-- bucket is the first day of a month (UTC); see the trigger below.
CREATE TABLE event_log_dedup (
    bucket    date NOT NULL,
    dedup_key text NOT NULL,
    PRIMARY KEY (dedup_key, bucket)
) PARTITION BY RANGE (bucket);

-- Makes parent's partition named part for [lo, hi) if it is missing: created
-- alone, then attached, which locks the parent only in SHARE UPDATE EXCLUSIVE mode
-- (reads and writes go on; CREATE TABLE … PARTITION OF would stop them). The API
-- role reaches partitions only through the parent, whose policy binds it: it gets no
-- grant on the partition itself, and row-level security binds the partition too.
-- The worker role reads and writes every organization's rows anyway (00008).
-- +goose StatementBegin
CREATE FUNCTION labelq_partition_create(parent text, part text, lo text, hi text) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
    IF to_regclass('public.' || quote_ident(part)) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE public.%I (LIKE public.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part, parent);
    EXECUTE format('ALTER TABLE public.%I ATTACH PARTITION public.%I FOR VALUES FROM (%L) TO (%L)', parent, part, lo, hi);
    EXECUTE format('REVOKE ALL ON public.%I FROM labelq_api', part);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON public.%I TO labelq_worker', part);
    EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY', part);
    EXECUTE format('ALTER TABLE public.%I FORCE ROW LEVEL SECURITY', part);
    IF parent = 'event_log' THEN
        EXECUTE format('CREATE POLICY tenant_isolation ON public.%I USING (org_id = labelq_current_org()) '
                       'WITH CHECK (org_id = labelq_current_org())', part);
    END IF;
    RETURN true;
END;
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION labelq_partition_create(text, text, text, text) FROM PUBLIC, labelq_api, labelq_worker;

-- Creates the monthly partitions from since's month to months_ahead months after
-- the current one (UTC), with the dedup buckets one month further (an event's key
-- is written to the next month's bucket too). Returns how many event_log
-- partitions it created. A concurrent call finds the lock taken and returns 0;
-- a lock it cannot get within lock_timeout fails the call, and the next pass tries
-- again (the partitions exist months before they are needed).
-- +goose StatementBegin
CREATE FUNCTION labelq_event_log_ensure_partitions(months_ahead integer, since timestamptz DEFAULT now()) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public SET lock_timeout = '2s' AS $$
DECLARE
    m       date := date_trunc('month', least(since, now()) AT TIME ZONE 'UTC')::date;
    last    date := (date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => months_ahead))::date;
    created integer := 0;
BEGIN
    IF months_ahead IS NULL OR months_ahead < 1 OR months_ahead > 120 THEN
        RAISE EXCEPTION 'months_ahead must be between 1 and 120, not %', months_ahead;
    END IF;
    IF NOT pg_try_advisory_xact_lock(hashtextextended('labelq_event_log_partitions', 20)) THEN
        RETURN 0;
    END IF;
    WHILE m <= last LOOP
        IF labelq_partition_create('event_log', 'event_log_p' || to_char(m, 'YYYYMM'),
                                   to_char(m, 'YYYY-MM-DD') || ' 00:00:00+00',
                                   to_char(m + interval '1 month', 'YYYY-MM-DD') || ' 00:00:00+00') THEN
            created := created + 1;
        END IF;
        PERFORM labelq_partition_create('event_log_dedup', 'event_log_dedup_p' || to_char(m, 'YYYYMM'),
                                        to_char(m, 'YYYY-MM-DD'), to_char(m + interval '1 month', 'YYYY-MM-DD'));
        m := (m + interval '1 month')::date;
    END LOOP;
    PERFORM labelq_partition_create('event_log_dedup', 'event_log_dedup_p' || to_char(m, 'YYYYMM'),
                                    to_char(m, 'YYYY-MM-DD'), to_char(m + interval '1 month', 'YYYY-MM-DD'));
    RETURN created;
END;
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION labelq_event_log_ensure_partitions(integer, timestamptz) FROM PUBLIC, labelq_api;
GRANT EXECUTE ON FUNCTION labelq_event_log_ensure_partitions(integer, timestamptz) TO labelq_worker;

-- Detaches and drops every event_log partition (and dedup bucket) whose whole month
-- ends at or before older_than: the rows of a month go together, so an event is
-- kept between the retention and the retention plus a month. Returns how many
-- event_log partitions it dropped; a concurrent call returns 0.
-- +goose StatementBegin
CREATE FUNCTION labelq_event_log_drop_partitions(older_than timestamptz) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public SET lock_timeout = '2s' AS $$
DECLARE
    p       record;
    dropped integer := 0;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtextextended('labelq_event_log_partitions', 20)) THEN
        RETURN 0;
    END IF;
    FOR p IN
        SELECT parent.relname AS parent, c.relname AS part
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class parent ON parent.oid = i.inhparent
        WHERE i.inhparent IN ('event_log'::regclass, 'event_log_dedup'::regclass)
          AND c.relname ~ '_p[0-9]{6}$'
          AND (to_date(right(c.relname, 6), 'YYYYMM') + interval '1 month') AT TIME ZONE 'UTC' <= older_than
        ORDER BY c.relname
    LOOP
        EXECUTE format('ALTER TABLE public.%I DETACH PARTITION public.%I', p.parent, p.part);
        EXECUTE format('DROP TABLE public.%I', p.part);
        IF p.parent = 'event_log' THEN
            dropped := dropped + 1;
        END IF;
    END LOOP;
    RETURN dropped;
END;
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION labelq_event_log_drop_partitions(timestamptz) FROM PUBLIC, labelq_api;
GRANT EXECUTE ON FUNCTION labelq_event_log_drop_partitions(timestamptz) TO labelq_worker;

-- The months the existing rows need, then the rows (ids kept), then their keys.
SELECT labelq_event_log_ensure_partitions(3, coalesce((SELECT min(occurred_at) FROM event_log_unpartitioned), now()));
INSERT INTO event_log (id, org_id, entity_type, entity_id, event_type, user_id, dedup_key, metadata, occurred_at, created_at, updated_at)
OVERRIDING SYSTEM VALUE
SELECT id, org_id, entity_type, entity_id, event_type, user_id, dedup_key, metadata, occurred_at, created_at, updated_at
FROM event_log_unpartitioned;
INSERT INTO event_log_dedup (bucket, dedup_key)
SELECT b.bucket, e.dedup_key
FROM event_log_unpartitioned e,
     LATERAL (VALUES (date_trunc('month', e.occurred_at AT TIME ZONE 'UTC')::date),
                     ((date_trunc('month', e.occurred_at AT TIME ZONE 'UTC') + interval '1 month')::date)) AS b (bucket)
WHERE e.dedup_key IS NOT NULL
ON CONFLICT DO NOTHING;
SELECT setval(pg_get_serial_sequence('event_log', 'id'),
              coalesce((SELECT max(id) FROM event_log_unpartitioned), 0) + 1, false);
DROP TABLE event_log_unpartitioned;

-- Drops an event whose dedup key is taken, as ON CONFLICT DO NOTHING would. It runs
-- as the owner: the API role has no grant on event_log_dedup (another
-- organization's keys are none of a tenant's business).
-- +goose StatementBegin
CREATE FUNCTION labelq_event_log_dedup() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    bucket date;
    n      integer;
BEGIN
    IF NEW.dedup_key IS NULL THEN
        RETURN NEW;
    END IF;
    bucket := date_trunc('month', NEW.occurred_at AT TIME ZONE 'UTC')::date;
    INSERT INTO event_log_dedup (bucket, dedup_key)
    VALUES (bucket, NEW.dedup_key), ((bucket + interval '1 month')::date, NEW.dedup_key)
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n < 2 THEN
        RETURN NULL; -- seen already (a key left in one bucket only widens the window)
    END IF;
    RETURN NEW;
END;
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION labelq_event_log_dedup() FROM PUBLIC, labelq_api, labelq_worker;
CREATE TRIGGER event_log_dedup BEFORE INSERT ON event_log FOR EACH ROW EXECUTE FUNCTION labelq_event_log_dedup();
CREATE TRIGGER event_log_updated_at BEFORE UPDATE ON event_log FOR EACH ROW EXECUTE FUNCTION labelq_set_updated_at();

GRANT SELECT, INSERT, UPDATE, DELETE ON event_log TO labelq_api, labelq_worker;
GRANT USAGE, SELECT ON SEQUENCE event_log_id_seq TO labelq_api, labelq_worker;
REVOKE ALL ON event_log_dedup FROM labelq_api;
GRANT SELECT, INSERT, UPDATE, DELETE ON event_log_dedup TO labelq_worker;
ALTER TABLE event_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE event_log FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON event_log USING (org_id = labelq_current_org())
    WITH CHECK (org_id = labelq_current_org());

-- Batched deletes of the oldest expired rows, each an index range scan.
CREATE INDEX outbox_relayed_idx ON outbox (enqueued_at) WHERE enqueued_at IS NOT NULL;
CREATE INDEX llm_runs_finished_idx ON llm_runs (updated_at) WHERE status IN ('succeeded', 'failed', 'skipped');
-- A run another run's output was copied from is kept while the copy is
-- (cached_from_id has no ON DELETE): this finds the copies.
CREATE INDEX llm_runs_cached_from_idx ON llm_runs (cached_from_id) WHERE cached_from_id IS NOT NULL;
CREATE INDEX sync_runs_finished_idx ON sync_runs (updated_at) WHERE status IN ('completed', 'failed', 'cancelled');

-- +goose Down
DROP INDEX sync_runs_finished_idx;
DROP INDEX llm_runs_cached_from_idx;
DROP INDEX llm_runs_finished_idx;
DROP INDEX outbox_relayed_idx;

ALTER TABLE event_log RENAME TO event_log_partitioned;
ALTER INDEX event_log_pkey RENAME TO event_log_partitioned_pkey;
ALTER INDEX event_log_entity_idx RENAME TO event_log_partitioned_entity_idx;
ALTER SEQUENCE event_log_id_seq RENAME TO event_log_partitioned_id_seq;

CREATE TABLE event_log (
    id          bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT event_log_pkey PRIMARY KEY,
    org_id      bigint NOT NULL CONSTRAINT event_log_org_id_fkey REFERENCES organizations (id),
    entity_type entity_type NOT NULL,
    entity_id   bigint NOT NULL,
    event_type  text NOT NULL CONSTRAINT event_log_event_type_check CHECK (event_type ~ '^[a-z][a-z_]{1,62}$'),
    user_id     bigint CONSTRAINT event_log_user_id_fkey REFERENCES users (id),
    -- Makes "the same event again" (a redelivered task) a no-op.
    dedup_key   text CONSTRAINT event_log_dedup_key_check CHECK (length(dedup_key) <= 300),
    metadata    jsonb NOT NULL DEFAULT '{}' CONSTRAINT event_log_metadata_check CHECK (jsonb_typeof(metadata) = 'object'),
    occurred_at timestamptz NOT NULL DEFAULT now(),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT event_log_dedup_key UNIQUE (dedup_key)
);
CREATE INDEX event_log_entity_idx ON event_log (entity_type, entity_id, id);
-- Keys further apart than the partitioned table compared may repeat: the oldest
-- event keeps its key.
INSERT INTO event_log (id, org_id, entity_type, entity_id, event_type, user_id, dedup_key, metadata, occurred_at, created_at, updated_at)
OVERRIDING SYSTEM VALUE
SELECT id, org_id, entity_type, entity_id, event_type, user_id,
       CASE WHEN dedup_key IS NULL OR row_number() OVER (PARTITION BY dedup_key ORDER BY id) = 1 THEN dedup_key END,
       metadata, occurred_at, created_at, updated_at
FROM event_log_partitioned;
SELECT setval(pg_get_serial_sequence('event_log', 'id'),
              coalesce((SELECT max(id) FROM event_log_partitioned), 0) + 1, false);
DROP TABLE event_log_partitioned;
DROP TABLE event_log_dedup;
DROP FUNCTION labelq_event_log_dedup();
DROP FUNCTION labelq_event_log_drop_partitions(timestamptz);
DROP FUNCTION labelq_event_log_ensure_partitions(integer, timestamptz);
DROP FUNCTION labelq_partition_create(text, text, text, text);

CREATE TRIGGER event_log_updated_at BEFORE UPDATE ON event_log FOR EACH ROW EXECUTE FUNCTION labelq_set_updated_at();
GRANT SELECT, INSERT, UPDATE, DELETE ON event_log TO labelq_api, labelq_worker;
GRANT USAGE, SELECT ON SEQUENCE event_log_id_seq TO labelq_api, labelq_worker;
ALTER TABLE event_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE event_log FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON event_log USING (org_id = labelq_current_org())
    WITH CHECK (org_id = labelq_current_org());
