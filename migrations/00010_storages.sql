-- +goose Up
-- Buckets as a project's data source (import storages) and as an export target
-- (export storages); a version knows which storage holds its bytes.
--
--   storages       one bucket + prefix on an S3 endpoint: labelq's own ('' endpoint,
--                  under the organization's namespace, no credentials) or one the
--                  operator allows (LABELQ_STORAGE_ALLOWED_ENDPOINTS), with
--                  credentials encrypted by labelq (AES-GCM, key id for rotation).
--   storage_links  one row per (storage, key) ever registered: the file it became,
--                  the ETag and size last registered, the newest version made from it.
--                  The primary key is what makes "never a file twice" hold for a sync
--                  killed mid-page, a resumed run and a notification racing a sync.
--   sync_runs      one storage:sync run: status, checkpoint (the last key whose page
--                  committed), counts and progress. At most one pending or running
--                  run per storage: a second request joins it.
--
-- Keys compare in byte order (COLLATE "C"), the order ListObjectsV2 returns them
-- in, so "the links between the checkpoint and this page's last key" is a range of
-- the primary key.

CREATE TYPE storage_kind AS ENUM ('import', 'export');
CREATE TYPE sync_run_status AS ENUM ('pending', 'running', 'completed', 'failed', 'cancelled');
ALTER TYPE entity_type ADD VALUE IF NOT EXISTS 'storage';
ALTER TYPE entity_type ADD VALUE IF NOT EXISTS 'sync_run';

CREATE TABLE storages (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id             bigint NOT NULL,
    project_id         bigint NOT NULL,
    kind               storage_kind NOT NULL DEFAULT 'import',
    name               text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    -- host[:port] of the S3 endpoint; '' is labelq's own (LABELQ_S3_ENDPOINT and its
    -- bucket, keys under orgs/<org_id>/).
    endpoint           text NOT NULL DEFAULT '' CHECK (length(endpoint) <= 255 AND endpoint !~ '[[:space:][:cntrl:]/]'),
    bucket             text NOT NULL DEFAULT '' CHECK (length(bucket) <= 63),
    prefix             text NOT NULL DEFAULT '' CHECK (length(prefix) <= 512 AND prefix !~ '[[:cntrl:]]'),
    region             text NOT NULL DEFAULT '' CHECK (length(region) <= 64),
    use_tls            boolean NOT NULL DEFAULT true,
    -- The access key id's first characters and an ellipsis, for error messages a
    -- person can act on; the key itself is only in credentials.
    access_key_hint    text NOT NULL DEFAULT '' CHECK (length(access_key_hint) <= 16),
    -- AES-GCM (nonce || ciphertext) of the credentials JSON, under the key named by
    -- credentials_key_id. NULL for labelq's own storage.
    credentials        bytea,
    credentials_key_id text CHECK (length(credentials_key_id) BETWEEN 1 AND 64),
    -- Which keys become files: '' is every key; glob (path.Match per key relative
    -- to the prefix, ** allowed) or a Go regular expression.
    key_filter         text NOT NULL DEFAULT '' CHECK (length(key_filter) <= 1024),
    key_filter_kind    text NOT NULL DEFAULT 'glob' CHECK (key_filter_kind IN ('glob', 'regex')),
    -- The file type of what the storage finds, unless a rule says otherwise.
    file_type          file_type NOT NULL DEFAULT 'dataset' CHECK (file_type <> 'llm_output'),
    -- [{"match": "*.json", "match_kind": "glob", "file_type": "annotation_results",
    --   "language": "zh", "priority": "high", "due_in": "72h"}]: the first rule whose
    -- pattern matches a key sets its file type and its job's attributes.
    rules              jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(rules) = 'array'),
    -- Keys gone from the bucket are always counted; with archive_gone their files are
    -- archived (soft-deleted) too.
    archive_gone       boolean NOT NULL DEFAULT false,
    -- Scheduled syncs: same rules as export schedules (LABELQ_SCHEDULE_MIN_INTERVAL,
    -- one run per tick).
    sync_cron          text CHECK (length(sync_cron) BETWEEN 1 AND 200),
    sync_timezone      text NOT NULL DEFAULT 'UTC' CHECK (length(sync_timezone) BETWEEN 1 AND 64),
    -- SHA-256 of the bucket-notification secret (shown once at creation).
    notify_secret_hash bytea CHECK (length(notify_secret_hash) = 32),
    enabled            boolean NOT NULL DEFAULT true,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    deleted_at         timestamptz,
    CONSTRAINT storages_id_org_key UNIQUE (id, org_id),
    CONSTRAINT storages_id_project_key UNIQUE (id, project_id),
    CONSTRAINT storages_project_fk FOREIGN KEY (project_id, org_id) REFERENCES projects (id, org_id) ON DELETE CASCADE,
    CONSTRAINT storages_credentials_have_key CHECK ((credentials IS NULL) = (credentials_key_id IS NULL)),
    CONSTRAINT storages_own_has_no_credentials CHECK (endpoint <> '' OR credentials IS NULL),
    CONSTRAINT storages_foreign_has_bucket CHECK (endpoint = '' OR length(bucket) >= 3)
);
CREATE UNIQUE INDEX storages_project_name_key ON storages (project_id, name) WHERE deleted_at IS NULL;
CREATE INDEX storages_scheduled_idx ON storages (id) WHERE sync_cron IS NOT NULL AND enabled AND deleted_at IS NULL;

CREATE TABLE sync_runs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id          bigint NOT NULL,
    project_id      bigint NOT NULL,
    storage_id      bigint NOT NULL,
    trigger         text NOT NULL DEFAULT 'api' CHECK (trigger IN ('api', 'schedule')),
    -- The schedule tick this run was made for: one run per (storage, tick).
    scheduled_for   timestamptz,
    status          sync_run_status NOT NULL DEFAULT 'pending',
    -- The last key whose page committed; a resumed run lists after it.
    checkpoint      text COLLATE "C",
    pages           integer NOT NULL DEFAULT 0 CHECK (pages >= 0),
    keys_listed     bigint NOT NULL DEFAULT 0 CHECK (keys_listed >= 0),
    keys_new        bigint NOT NULL DEFAULT 0 CHECK (keys_new >= 0),
    keys_changed    bigint NOT NULL DEFAULT 0 CHECK (keys_changed >= 0),
    keys_unchanged  bigint NOT NULL DEFAULT 0 CHECK (keys_unchanged >= 0),
    keys_filtered   bigint NOT NULL DEFAULT 0 CHECK (keys_filtered >= 0),
    keys_gone       bigint NOT NULL DEFAULT 0 CHECK (keys_gone >= 0),
    keys_skipped    bigint NOT NULL DEFAULT 0 CHECK (keys_skipped >= 0),
    -- The first skipped keys with their reason ([{"key": ..., "reason": ...}], capped).
    skipped         jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(skipped) = 'array'),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    error           text,
    cancel_requested_at timestamptz,
    requested_at    timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    completed_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sync_runs_id_org_key UNIQUE (id, org_id),
    CONSTRAINT sync_runs_storage_fk FOREIGN KEY (storage_id, org_id) REFERENCES storages (id, org_id) ON DELETE CASCADE,
    CONSTRAINT sync_runs_storage_project_fk FOREIGN KEY (storage_id, project_id) REFERENCES storages (id, project_id),
    CONSTRAINT sync_runs_schedule_tick_key UNIQUE (storage_id, scheduled_for),
    CONSTRAINT sync_runs_failed_has_reason CHECK (status <> 'failed' OR error IS NOT NULL)
);
-- One live run per storage: a second request finds it and joins.
CREATE UNIQUE INDEX sync_runs_one_live_key ON sync_runs (storage_id) WHERE status IN ('pending', 'running');
CREATE INDEX sync_runs_storage_idx ON sync_runs (storage_id, id DESC);
CREATE INDEX sync_runs_live_idx ON sync_runs (updated_at) WHERE status IN ('pending', 'running');

CREATE TABLE storage_links (
    storage_id  bigint NOT NULL,
    key         text COLLATE "C" NOT NULL CHECK (length(key) BETWEEN 1 AND 1024),
    org_id      bigint NOT NULL,
    project_id  bigint NOT NULL,
    file_id     bigint NOT NULL,
    -- The newest version registered from this key, and the object it was registered
    -- for: a listing with another ETag or size makes the next version.
    version_id  bigint NOT NULL,
    etag        text NOT NULL DEFAULT '' CHECK (length(etag) <= 256),
    size_bytes  bigint NOT NULL CHECK (size_bytes >= 0),
    -- Set when a sync or a notification found the key gone; cleared if it returns.
    gone_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (storage_id, key),
    CONSTRAINT storage_links_storage_fk FOREIGN KEY (storage_id, org_id) REFERENCES storages (id, org_id) ON DELETE CASCADE,
    CONSTRAINT storage_links_file_fk FOREIGN KEY (file_id, org_id) REFERENCES files (id, org_id) ON DELETE CASCADE,
    CONSTRAINT storage_links_version_fk FOREIGN KEY (version_id, org_id) REFERENCES file_versions (id, org_id) ON DELETE CASCADE
);
CREATE INDEX storage_links_file_idx ON storage_links (file_id);

-- A version's bytes live in this storage (NULL: labelq's own bucket at storage_path).
ALTER TABLE file_versions ADD COLUMN storage_id bigint;
ALTER TABLE file_versions ADD CONSTRAINT file_versions_storage_fk
    FOREIGN KEY (storage_id, org_id) REFERENCES storages (id, org_id);
CREATE INDEX file_versions_storage_idx ON file_versions (storage_id) WHERE storage_id IS NOT NULL;

-- The attributes the version's annotation job is born with (registration, batch,
-- a storage's rule); NULL takes the defaults (no language, medium, no due date).
ALTER TABLE file_versions ADD COLUMN job_language text CHECK (job_language ~ '^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$');
ALTER TABLE file_versions ADD COLUMN job_priority job_priority;
ALTER TABLE file_versions ADD COLUMN job_due_date timestamptz;

-- An export (and a schedule's exports) may go to an export storage instead of
-- labelq's bucket.
ALTER TABLE export_logs ADD COLUMN storage_id bigint;
ALTER TABLE export_logs ADD CONSTRAINT export_logs_storage_fk
    FOREIGN KEY (storage_id, org_id) REFERENCES storages (id, org_id);
ALTER TABLE export_schedules ADD COLUMN storage_id bigint;
ALTER TABLE export_schedules ADD CONSTRAINT export_schedules_storage_fk
    FOREIGN KEY (storage_id, org_id) REFERENCES storages (id, org_id);

-- +goose StatementBegin
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['storages', 'sync_runs', 'storage_links']
    LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE ON %I FOR EACH ROW EXECUTE FUNCTION labelq_set_updated_at()',
                       t || '_updated_at', t);
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (org_id = labelq_current_org()) '
                       'WITH CHECK (org_id = labelq_current_org())', t);
    END LOOP;
END;
$$;
-- +goose StatementEnd

-- A bucket notification carries no API token: the storage's own secret
-- authenticates it. The API role cannot see a storage before it knows the
-- organization, so this definer function answers "which organization owns this
-- storage, if the secret is its notification secret".
-- +goose StatementBegin
CREATE FUNCTION labelq_storage_notify_authenticate(storage bigint, hash bytea)
RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT s.org_id FROM storages s JOIN organizations o ON o.id = s.org_id
    WHERE s.id = storage AND s.notify_secret_hash = hash
      AND s.kind = 'import' AND s.enabled AND s.deleted_at IS NULL AND o.deleted_at IS NULL
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION labelq_storage_notify_authenticate(bigint, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION labelq_storage_notify_authenticate(bigint, bytea) TO labelq_api;

-- +goose Down
DROP FUNCTION labelq_storage_notify_authenticate(bigint, bytea);
ALTER TABLE export_schedules DROP COLUMN storage_id;
ALTER TABLE export_logs DROP COLUMN storage_id;
ALTER TABLE file_versions DROP COLUMN job_due_date;
ALTER TABLE file_versions DROP COLUMN job_priority;
ALTER TABLE file_versions DROP COLUMN job_language;
ALTER TABLE file_versions DROP COLUMN storage_id;
DROP TABLE storage_links;
DROP TABLE sync_runs;
DROP TABLE storages;
DROP TYPE sync_run_status;
DROP TYPE storage_kind;
