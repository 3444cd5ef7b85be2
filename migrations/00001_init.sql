-- The whole labelq data model (shared/DESIGN.md, "Data model").
--
-- Conventions:
--   * bigint identity keys; created_at/updated_at on every table, kept by trigger;
--   * deleted_at (soft delete) where a user can delete;
--   * every tenant row carries org_id, and child tables reference their parent by
--     (id, org_id) so a row can never point into another organization;
--   * partial indexes for the "pending" states the workers and the reconciler scan.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION labelq_set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;
-- +goose StatementEnd

-- Proficiencies are a JSON object of language code -> number in 0..5.
-- +goose StatementBegin
CREATE FUNCTION labelq_language_expertise_ok(doc jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_typeof(doc) = 'object'
       AND NOT EXISTS (
           SELECT 1 FROM jsonb_each(doc) AS e(k, v)
           WHERE k !~ '^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$'
              OR jsonb_typeof(v) <> 'number'
              OR (v #>> '{}')::numeric < 0
              OR (v #>> '{}')::numeric > 5)
$$;
-- +goose StatementEnd

-- Availability is {"timezone": "Europe/Paris", "monday": ["09:00-12:00"], ...}.
-- +goose StatementBegin
CREATE FUNCTION labelq_availability_ok(doc jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_typeof(doc) = 'object'
       AND NOT EXISTS (
           SELECT 1 FROM jsonb_each(doc) AS e(k, v)
           WHERE NOT (
                 (k = 'timezone' AND jsonb_typeof(v) = 'string')
              OR (k IN ('monday','tuesday','wednesday','thursday','friday','saturday','sunday')
                  AND jsonb_typeof(v) = 'array'
                  AND NOT EXISTS (
                      SELECT 1 FROM jsonb_array_elements(v) AS w(win)
                      WHERE jsonb_typeof(win) <> 'string'
                         OR (win #>> '{}') !~ '^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-4]):[0-5][0-9]$'))))
$$;
-- +goose StatementEnd

CREATE TYPE user_role AS ENUM ('org_admin', 'org_pm', 'our_pm', 'annotator', 'qc');
CREATE TYPE project_status AS ENUM ('draft', 'ready_for_annotation', 'in_progress', 'completed', 'archived');
CREATE TYPE file_type AS ENUM ('dataset', 'requirement', 'annotation_results', 'llm_output');
CREATE TYPE file_status AS ENUM ('pending', 'ready_for_annotation', 'in_progress', 'completed', 'archived');
CREATE TYPE validation_status AS ENUM ('pending', 'valid', 'corrupt', 'missing', 'rejected');
CREATE TYPE generation_method AS ENUM ('upload', 'ocr', 'llm');
CREATE TYPE job_priority AS ENUM ('low', 'medium', 'high');
CREATE TYPE job_status AS ENUM ('not_started', 'in_progress', 'submitted', 'reviewed');
CREATE TYPE review_status AS ENUM ('pending', 'approved', 'rejected');
CREATE TYPE assignment_role AS ENUM ('annotator', 'reviewer', 'qc');
CREATE TYPE assignment_status AS ENUM ('assigned', 'accepted', 'in_progress', 'completed', 'revoked');
CREATE TYPE llm_run_status AS ENUM ('pending', 'running', 'succeeded', 'failed', 'skipped');
CREATE TYPE export_status AS ENUM ('pending', 'running', 'completed', 'failed', 'cancelled');
CREATE TYPE entity_type AS ENUM (
    'organization', 'user', 'api_token', 'project', 'file', 'file_version', 'annotation_job',
    'assignment', 'review', 'llm_run', 'export', 'export_schedule');

CREATE TABLE organizations (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    CONSTRAINT organizations_name_key UNIQUE (name)
);

CREATE TABLE users (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id               bigint NOT NULL REFERENCES organizations (id),
    email                text NOT NULL CHECK (email ~ '^[^@\s]+@[^@\s]+$' AND length(email) <= 320),
    name                 text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    role                 user_role NOT NULL,
    availability         jsonb NOT NULL DEFAULT '{}' CHECK (labelq_availability_ok(availability)),
    language_expertise   jsonb NOT NULL DEFAULT '{}' CHECK (labelq_language_expertise_ok(language_expertise)),
    skill_score          double precision CHECK (skill_score BETWEEN 0 AND 1),
    qa_approval_rate     double precision CHECK (qa_approval_rate BETWEEN 0 AND 1),
    max_active_jobs      integer NOT NULL DEFAULT 5 CHECK (max_active_jobs BETWEEN 0 AND 10000),
    completed_task_count integer NOT NULL DEFAULT 0 CHECK (completed_task_count >= 0),
    is_active            boolean NOT NULL DEFAULT true,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    deleted_at           timestamptz,
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_id_org_key UNIQUE (id, org_id)
);
CREATE INDEX users_org_role_idx ON users (org_id, role) WHERE deleted_at IS NULL AND is_active;

CREATE TABLE api_tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id       bigint NOT NULL REFERENCES organizations (id),
    name         text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    -- SHA-256 of the secret; the secret itself is shown once and never stored.
    token_hash   bytea NOT NULL CHECK (length(token_hash) = 32),
    scopes       text[] NOT NULL DEFAULT '{}',
    last_used_at timestamptz,
    revoked_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT api_tokens_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX api_tokens_org_idx ON api_tokens (org_id);

CREATE TABLE projects (
    id                       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id                   bigint NOT NULL REFERENCES organizations (id),
    name                     text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    description              text NOT NULL DEFAULT '',
    requirements_text        text NOT NULL DEFAULT '',
    status                   project_status NOT NULL DEFAULT 'draft',
    client_pm_id             bigint,
    our_pm_id                bigint,
    llm_enabled              boolean NOT NULL DEFAULT false,
    llm_model                text NOT NULL DEFAULT '',
    llm_temperature          double precision NOT NULL DEFAULT 0 CHECK (llm_temperature BETWEEN 0 AND 2),
    llm_max_tokens           integer NOT NULL DEFAULT 1024 CHECK (llm_max_tokens BETWEEN 1 AND 1000000),
    llm_system_prompt        text NOT NULL DEFAULT '',
    llm_daily_token_budget   bigint CHECK (llm_daily_token_budget > 0),
    annotation_schema        jsonb CHECK (annotation_schema IS NULL OR jsonb_typeof(annotation_schema) = 'object'),
    min_language_proficiency double precision NOT NULL DEFAULT 3.0 CHECK (min_language_proficiency BETWEEN 0 AND 5),
    assign_reviewers         boolean NOT NULL DEFAULT false,
    -- Per file type allow-lists of content types, {"dataset": ["image/png", ...]};
    -- NULL means labelq's defaults.
    allowed_content_types    jsonb CHECK (allowed_content_types IS NULL OR jsonb_typeof(allowed_content_types) = 'object'),
    completed_at             timestamptz,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    deleted_at               timestamptz,
    CONSTRAINT projects_id_org_key UNIQUE (id, org_id),
    CONSTRAINT projects_client_pm_fk FOREIGN KEY (client_pm_id, org_id) REFERENCES users (id, org_id),
    CONSTRAINT projects_our_pm_fk FOREIGN KEY (our_pm_id) REFERENCES users (id),
    CONSTRAINT projects_llm_model_when_enabled CHECK (NOT llm_enabled OR llm_model <> '')
);
CREATE UNIQUE INDEX projects_org_name_key ON projects (org_id, name) WHERE deleted_at IS NULL;

CREATE TABLE files (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id            bigint NOT NULL,
    project_id        bigint NOT NULL,
    name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 1024 AND name !~ '[[:cntrl:]]'),
    description       text NOT NULL DEFAULT '',
    file_type         file_type NOT NULL DEFAULT 'dataset',
    status            file_status NOT NULL DEFAULT 'pending',
    active_version_id bigint,
    uploaded_by       bigint REFERENCES users (id),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    deleted_at        timestamptz,
    CONSTRAINT files_id_org_key UNIQUE (id, org_id),
    CONSTRAINT files_id_project_key UNIQUE (id, project_id),
    CONSTRAINT files_project_fk FOREIGN KEY (project_id, org_id) REFERENCES projects (id, org_id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX files_project_name_key ON files (project_id, name) WHERE deleted_at IS NULL;
CREATE INDEX files_project_type_idx ON files (project_id, file_type) WHERE deleted_at IS NULL;

CREATE TABLE file_versions (
    id                     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id                 bigint NOT NULL,
    project_id             bigint NOT NULL,
    file_id                bigint NOT NULL,
    version_number         integer NOT NULL CHECK (version_number >= 1),
    storage_path           text NOT NULL CHECK (length(storage_path) BETWEEN 1 AND 1024),
    -- What the uploader declared at registration.
    expected_sha256        text CHECK (expected_sha256 ~ '^[0-9a-f]{64}$'),
    expected_size          bigint CHECK (expected_size >= 0),
    expected_mime_type     text CHECK (length(expected_mime_type) <= 255),
    -- What the validator measured.
    checksum               text CHECK (checksum ~ '^[0-9a-f]{64}$'),
    size_bytes             bigint CHECK (size_bytes >= 0),
    mime_type              text CHECK (length(mime_type) <= 255),
    validation_status      validation_status NOT NULL DEFAULT 'pending',
    validation_error       text,
    validation_attempts    integer NOT NULL DEFAULT 0 CHECK (validation_attempts >= 0),
    validated_at           timestamptz,
    duplicate_of           bigint REFERENCES file_versions (id),
    generation_method      generation_method NOT NULL DEFAULT 'upload',
    source_file_version_id bigint REFERENCES file_versions (id),
    llm_model              text,
    llm_params             jsonb,
    uploaded_by            bigint REFERENCES users (id),
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT file_versions_file_number_key UNIQUE (file_id, version_number),
    CONSTRAINT file_versions_id_org_key UNIQUE (id, org_id),
    CONSTRAINT file_versions_file_fk FOREIGN KEY (file_id, org_id) REFERENCES files (id, org_id) ON DELETE CASCADE,
    CONSTRAINT file_versions_file_project_fk FOREIGN KEY (file_id, project_id) REFERENCES files (id, project_id),
    CONSTRAINT file_versions_not_own_duplicate CHECK (duplicate_of IS NULL OR duplicate_of <> id),
    CONSTRAINT file_versions_valid_measured CHECK (
        validation_status <> 'valid' OR (checksum IS NOT NULL AND size_bytes IS NOT NULL AND validated_at IS NOT NULL)),
    CONSTRAINT file_versions_failed_has_reason CHECK (
        validation_status NOT IN ('corrupt', 'missing', 'rejected') OR (validation_error IS NOT NULL AND validated_at IS NOT NULL)),
    CONSTRAINT file_versions_llm_has_source CHECK (
        generation_method <> 'llm' OR (source_file_version_id IS NOT NULL AND llm_model IS NOT NULL))
);
CREATE INDEX file_versions_pending_idx ON file_versions (created_at) WHERE validation_status = 'pending';
CREATE INDEX file_versions_project_checksum_idx ON file_versions (project_id, checksum, id) WHERE validation_status = 'valid';
CREATE INDEX file_versions_file_idx ON file_versions (file_id);

ALTER TABLE files ADD CONSTRAINT files_active_version_fk
    FOREIGN KEY (active_version_id) REFERENCES file_versions (id) DEFERRABLE INITIALLY DEFERRED;

CREATE TABLE annotation_jobs (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id            bigint NOT NULL,
    project_id        bigint NOT NULL,
    file_id           bigint NOT NULL,
    file_version_id   bigint NOT NULL,
    language          text CHECK (language ~ '^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$'),
    priority          job_priority NOT NULL DEFAULT 'medium',
    status            job_status NOT NULL DEFAULT 'not_started',
    review_status     review_status NOT NULL DEFAULT 'pending',
    -- The approved annotation results, once there are some.
    result_version_id bigint REFERENCES file_versions (id),
    due_date          timestamptz,
    completed_at      timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    deleted_at        timestamptz,
    CONSTRAINT annotation_jobs_id_org_key UNIQUE (id, org_id),
    CONSTRAINT annotation_jobs_file_fk FOREIGN KEY (file_id, project_id) REFERENCES files (id, project_id) ON DELETE CASCADE,
    CONSTRAINT annotation_jobs_project_fk FOREIGN KEY (project_id, org_id) REFERENCES projects (id, org_id) ON DELETE CASCADE,
    CONSTRAINT annotation_jobs_version_fk FOREIGN KEY (file_version_id, org_id) REFERENCES file_versions (id, org_id)
);
-- One job per validated version: validation can run twice and still make one job.
CREATE UNIQUE INDEX annotation_jobs_version_key ON annotation_jobs (file_version_id) WHERE deleted_at IS NULL;
CREATE INDEX annotation_jobs_open_idx ON annotation_jobs (project_id, id)
    WHERE deleted_at IS NULL AND status IN ('not_started', 'in_progress');
CREATE INDEX annotation_jobs_approved_idx ON annotation_jobs (project_id)
    WHERE deleted_at IS NULL AND review_status = 'approved';

CREATE TABLE assignments (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id     bigint NOT NULL,
    project_id bigint NOT NULL,
    job_id     bigint NOT NULL,
    user_id    bigint NOT NULL,
    role       assignment_role NOT NULL,
    status     assignment_status NOT NULL DEFAULT 'assigned',
    score      double precision NOT NULL DEFAULT 0 CHECK (score >= 0),
    revoked_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT assignments_job_fk FOREIGN KEY (job_id, org_id) REFERENCES annotation_jobs (id, org_id) ON DELETE CASCADE,
    CONSTRAINT assignments_user_fk FOREIGN KEY (user_id, org_id) REFERENCES users (id, org_id),
    CONSTRAINT assignments_project_fk FOREIGN KEY (project_id, org_id) REFERENCES projects (id, org_id) ON DELETE CASCADE,
    CONSTRAINT assignments_revoked_has_time CHECK (status <> 'revoked' OR revoked_at IS NOT NULL)
);
-- At most one live assignment per job and role.
CREATE UNIQUE INDEX assignments_live_job_role_key ON assignments (job_id, role)
    WHERE status IN ('assigned', 'accepted', 'in_progress');
CREATE INDEX assignments_live_user_idx ON assignments (user_id)
    WHERE status IN ('assigned', 'accepted', 'in_progress');
CREATE INDEX assignments_project_user_idx ON assignments (project_id, user_id, role);

CREATE TABLE job_previous_annotators (
    job_id      bigint NOT NULL,
    user_id     bigint NOT NULL,
    org_id      bigint NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, user_id),
    CONSTRAINT job_previous_annotators_job_fk FOREIGN KEY (job_id, org_id) REFERENCES annotation_jobs (id, org_id) ON DELETE CASCADE,
    CONSTRAINT job_previous_annotators_user_fk FOREIGN KEY (user_id, org_id) REFERENCES users (id, org_id)
);

CREATE TABLE reviews (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id      bigint NOT NULL,
    job_id      bigint NOT NULL,
    reviewer_id bigint NOT NULL,
    status      review_status NOT NULL DEFAULT 'pending',
    feedback    text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT reviews_job_fk FOREIGN KEY (job_id, org_id) REFERENCES annotation_jobs (id, org_id) ON DELETE CASCADE,
    CONSTRAINT reviews_reviewer_fk FOREIGN KEY (reviewer_id, org_id) REFERENCES users (id, org_id)
);
CREATE INDEX reviews_job_idx ON reviews (job_id);

CREATE TABLE llm_runs (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id            bigint NOT NULL,
    project_id        bigint NOT NULL,
    file_version_id   bigint NOT NULL,
    model             text NOT NULL CHECK (length(model) BETWEEN 1 AND 200),
    prompt_hash       text NOT NULL CHECK (prompt_hash ~ '^[0-9a-f]{64}$'),
    schema_hash       text NOT NULL DEFAULT '' CHECK (schema_hash = '' OR schema_hash ~ '^[0-9a-f]{64}$'),
    input_sha256      text NOT NULL CHECK (input_sha256 ~ '^[0-9a-f]{64}$'),
    -- The cache key is (input SHA-256, model, prompt hash, schema hash), kept as one column.
    cache_key         text GENERATED ALWAYS AS (input_sha256 || ':' || model || ':' || prompt_hash || ':' || schema_hash) STORED,
    status            llm_run_status NOT NULL DEFAULT 'pending',
    error             text,
    attempts          integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    prompt_tokens     integer NOT NULL DEFAULT 0 CHECK (prompt_tokens >= 0),
    completion_tokens integer NOT NULL DEFAULT 0 CHECK (completion_tokens >= 0),
    latency_ms        integer NOT NULL DEFAULT 0 CHECK (latency_ms >= 0),
    cost_usd          numeric(14, 6) NOT NULL DEFAULT 0 CHECK (cost_usd >= 0),
    -- Set when this run reused another run's output instead of calling the model.
    cached_from_id    bigint REFERENCES llm_runs (id),
    output_version_id bigint REFERENCES file_versions (id),
    raw_output        text,
    started_at        timestamptz,
    finished_at       timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT llm_runs_version_fk FOREIGN KEY (file_version_id, org_id) REFERENCES file_versions (id, org_id) ON DELETE CASCADE,
    CONSTRAINT llm_runs_project_fk FOREIGN KEY (project_id, org_id) REFERENCES projects (id, org_id) ON DELETE CASCADE,
    CONSTRAINT llm_runs_version_settings_key UNIQUE (file_version_id, model, prompt_hash, schema_hash),
    CONSTRAINT llm_runs_succeeded_has_output CHECK (status <> 'succeeded' OR output_version_id IS NOT NULL),
    CONSTRAINT llm_runs_failed_has_reason CHECK (status NOT IN ('failed', 'skipped') OR error IS NOT NULL)
);
-- A cache key is paid for at most once.
CREATE UNIQUE INDEX llm_runs_paid_cache_key ON llm_runs (cache_key) WHERE status = 'succeeded' AND cached_from_id IS NULL;
CREATE INDEX llm_runs_pending_idx ON llm_runs (created_at) WHERE status IN ('pending', 'running');
CREATE INDEX llm_runs_project_day_idx ON llm_runs (project_id, created_at);

CREATE TABLE export_schedules (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id        bigint NOT NULL,
    project_id    bigint NOT NULL,
    cron_spec     text NOT NULL CHECK (length(cron_spec) BETWEEN 1 AND 200),
    timezone      text NOT NULL DEFAULT 'UTC' CHECK (length(timezone) BETWEEN 1 AND 64),
    options       jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(options) = 'object'),
    enabled       boolean NOT NULL DEFAULT true,
    last_fired_at timestamptz,
    created_by    bigint REFERENCES users (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    deleted_at    timestamptz,
    CONSTRAINT export_schedules_id_org_key UNIQUE (id, org_id),
    CONSTRAINT export_schedules_project_fk FOREIGN KEY (project_id, org_id) REFERENCES projects (id, org_id) ON DELETE CASCADE
);
CREATE INDEX export_schedules_enabled_idx ON export_schedules (id) WHERE enabled AND deleted_at IS NULL;

CREATE TABLE export_logs (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id         bigint NOT NULL,
    project_id     bigint NOT NULL,
    requested_by   bigint REFERENCES users (id),
    schedule_id    bigint,
    -- The schedule tick this export was made for: one export per (schedule, tick).
    scheduled_for  timestamptz,
    options        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(options) = 'object'),
    status         export_status NOT NULL DEFAULT 'pending',
    storage_path   text,
    archive_sha256 text CHECK (archive_sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes     bigint CHECK (size_bytes >= 0),
    file_count     integer CHECK (file_count >= 0),
    files_done     integer NOT NULL DEFAULT 0 CHECK (files_done >= 0),
    files_total    integer NOT NULL DEFAULT 0 CHECK (files_total >= 0),
    bytes_done     bigint NOT NULL DEFAULT 0 CHECK (bytes_done >= 0),
    bytes_total    bigint NOT NULL DEFAULT 0 CHECK (bytes_total >= 0),
    attempts       integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    error          text,
    requested_at   timestamptz NOT NULL DEFAULT now(),
    started_at     timestamptz,
    completed_at   timestamptz,
    -- Set when retention removed the archive.
    purged_at      timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT export_logs_id_org_key UNIQUE (id, org_id),
    CONSTRAINT export_logs_project_fk FOREIGN KEY (project_id, org_id) REFERENCES projects (id, org_id) ON DELETE CASCADE,
    CONSTRAINT export_logs_schedule_fk FOREIGN KEY (schedule_id, org_id) REFERENCES export_schedules (id, org_id) ON DELETE SET NULL (schedule_id),
    CONSTRAINT export_logs_schedule_tick_key UNIQUE (schedule_id, scheduled_for),
    CONSTRAINT export_logs_tick_with_schedule CHECK (schedule_id IS NULL OR scheduled_for IS NOT NULL),
    CONSTRAINT export_logs_progress_bounded CHECK (files_done <= files_total AND bytes_done <= bytes_total),
    CONSTRAINT export_logs_completed_has_archive CHECK (
        status <> 'completed' OR (storage_path IS NOT NULL AND archive_sha256 IS NOT NULL
                                  AND size_bytes IS NOT NULL AND completed_at IS NOT NULL)),
    CONSTRAINT export_logs_failed_has_reason CHECK (status <> 'failed' OR error IS NOT NULL)
);
CREATE INDEX export_logs_project_idx ON export_logs (project_id, id DESC);
CREATE INDEX export_logs_unfinished_idx ON export_logs (updated_at) WHERE status IN ('pending', 'running');
CREATE INDEX export_logs_retention_idx ON export_logs (completed_at) WHERE status = 'completed' AND purged_at IS NULL;

CREATE TABLE exported_files (
    export_id       bigint NOT NULL,
    file_version_id bigint NOT NULL,
    org_id          bigint NOT NULL,
    archive_path    text NOT NULL CHECK (length(archive_path) BETWEEN 1 AND 2048),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (export_id, file_version_id),
    CONSTRAINT exported_files_path_key UNIQUE (export_id, archive_path),
    CONSTRAINT exported_files_export_fk FOREIGN KEY (export_id, org_id) REFERENCES export_logs (id, org_id) ON DELETE CASCADE,
    CONSTRAINT exported_files_version_fk FOREIGN KEY (file_version_id, org_id) REFERENCES file_versions (id, org_id) ON DELETE CASCADE
);

CREATE TABLE event_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id      bigint NOT NULL REFERENCES organizations (id),
    entity_type entity_type NOT NULL,
    entity_id   bigint NOT NULL,
    event_type  text NOT NULL CHECK (event_type ~ '^[a-z][a-z_]{1,62}$'),
    user_id     bigint REFERENCES users (id),
    -- Makes "the same event again" (a redelivered task) a no-op.
    dedup_key   text CHECK (length(dedup_key) <= 300),
    metadata    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    occurred_at timestamptz NOT NULL DEFAULT now(),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT event_log_dedup_key UNIQUE (dedup_key)
);
CREATE INDEX event_log_entity_idx ON event_log (entity_type, entity_id, id);

CREATE TABLE outbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Deterministic asynq task id: re-enqueueing the same row can never make a second task.
    task_id      text NOT NULL CHECK (length(task_id) BETWEEN 1 AND 200),
    task_type    text NOT NULL CHECK (task_type ~ '^[a-z]+:[a-z_]+$'),
    queue        text NOT NULL DEFAULT 'default' CHECK (queue ~ '^[a-z_]{1,50}$'),
    payload      jsonb NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
    -- max_retry, timeout_seconds, process_at, group, retention_seconds.
    options      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(options) = 'object'),
    org_id       bigint REFERENCES organizations (id),
    attempts     integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error   text,
    available_at timestamptz NOT NULL DEFAULT now(),
    enqueued_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_unsent_idx ON outbox (available_at, id) WHERE enqueued_at IS NULL;
CREATE INDEX outbox_task_id_idx ON outbox (task_id text_pattern_ops);

-- +goose StatementBegin
CREATE FUNCTION labelq_outbox_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('labelq_outbox', '');
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION labelq_outbox_notify();

-- What a POST with an Idempotency-Key answered, so the same key gets the same answer.
CREATE TABLE idempotency_keys (
    org_id        bigint NOT NULL REFERENCES organizations (id),
    key           text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    method        text NOT NULL,
    path          text NOT NULL,
    request_hash  bytea NOT NULL CHECK (length(request_hash) = 32),
    status_code   integer NOT NULL CHECK (status_code BETWEEN 100 AND 599),
    response_body bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- +goose StatementBegin
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['organizations', 'users', 'api_tokens', 'projects', 'files', 'file_versions',
        'annotation_jobs', 'assignments', 'job_previous_annotators', 'reviews', 'llm_runs', 'export_schedules',
        'export_logs', 'exported_files', 'event_log', 'outbox', 'idempotency_keys']
    LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE ON %I FOR EACH ROW EXECUTE FUNCTION labelq_set_updated_at()',
                       t || '_updated_at', t);
    END LOOP;
END;
$$;
-- +goose StatementEnd

-- +goose Down
DROP TABLE idempotency_keys;
DROP TABLE outbox;
DROP FUNCTION labelq_outbox_notify();
DROP TABLE event_log;
DROP TABLE exported_files;
DROP TABLE export_logs;
DROP TABLE export_schedules;
DROP TABLE llm_runs;
DROP TABLE reviews;
DROP TABLE job_previous_annotators;
DROP TABLE assignments;
DROP TABLE annotation_jobs;
ALTER TABLE files DROP CONSTRAINT files_active_version_fk;
DROP TABLE file_versions;
DROP TABLE files;
DROP TABLE projects;
DROP TABLE api_tokens;
DROP TABLE users;
DROP TABLE organizations;
DROP TYPE entity_type;
DROP TYPE export_status;
DROP TYPE llm_run_status;
DROP TYPE assignment_status;
DROP TYPE assignment_role;
DROP TYPE review_status;
DROP TYPE job_status;
DROP TYPE job_priority;
DROP TYPE generation_method;
DROP TYPE validation_status;
DROP TYPE file_status;
DROP TYPE file_type;
DROP TYPE project_status;
DROP TYPE user_role;
DROP FUNCTION labelq_availability_ok(jsonb);
DROP FUNCTION labelq_language_expertise_ok(jsonb);
DROP FUNCTION labelq_set_updated_at();
