-- name: StorageGetByID :one
-- Workers (no RLS) read a storage by id: the resolver, storage:sync.
SELECT * FROM storages WHERE id = @id;

-- name: StorageCreate :one
INSERT INTO storages (
    org_id, project_id, kind, name, endpoint, bucket, prefix, region, use_tls,
    access_key_hint, credentials, credentials_key_id, key_filter, key_filter_kind,
    file_type, rules, archive_gone, sync_cron, sync_timezone, notify_secret_hash, enabled
) VALUES (
    @org_id, @project_id, @kind, @name, @endpoint, @bucket, @prefix, @region, @use_tls,
    @access_key_hint, @credentials, @credentials_key_id, @key_filter, @key_filter_kind,
    @file_type, @rules, @archive_gone, @sync_cron, @sync_timezone, @notify_secret_hash, @enabled
)
RETURNING *;

-- name: StorageGet :one
SELECT * FROM storages WHERE id = @id AND org_id = @org_id AND deleted_at IS NULL;

-- name: StorageGetForUpdate :one
-- PATCH and DELETE hold the row while they read, check and write it back.
SELECT * FROM storages WHERE id = @id AND org_id = @org_id AND deleted_at IS NULL
FOR NO KEY UPDATE;

-- name: StorageGetForShare :one
-- A sync request holds the row against a concurrent DELETE until its run is
-- committed, so that the DELETE (which waits) then sees and cancels that run.
SELECT * FROM storages WHERE id = @id AND org_id = @org_id AND deleted_at IS NULL
FOR SHARE;

-- name: StorageListByProject :many
SELECT * FROM storages
WHERE project_id = @project_id AND org_id = @org_id AND deleted_at IS NULL AND id > @after_id
ORDER BY id
LIMIT @max_rows;

-- name: StorageUpdate :one
-- Writes back every column a PATCH may change: the handler merges the request
-- into the locked row and checks the result as a whole.
UPDATE storages SET
    name               = @name,
    endpoint           = @endpoint,
    bucket             = @bucket,
    prefix             = @prefix,
    region             = @region,
    use_tls            = @use_tls,
    access_key_hint    = @access_key_hint,
    credentials        = @credentials,
    credentials_key_id = @credentials_key_id,
    key_filter         = @key_filter,
    key_filter_kind    = @key_filter_kind,
    file_type          = @file_type,
    rules              = @rules,
    archive_gone       = @archive_gone,
    sync_cron          = @sync_cron,
    sync_timezone      = @sync_timezone,
    enabled            = @enabled
WHERE id = @id AND org_id = @org_id AND deleted_at IS NULL
RETURNING *;

-- name: StorageSetNotifySecret :one
UPDATE storages SET notify_secret_hash = @notify_secret_hash
WHERE id = @id AND org_id = @org_id AND deleted_at IS NULL AND kind = 'import'
RETURNING *;

-- name: StorageDelete :one
-- Soft deletion: versions registered from the storage keep naming it (and read
-- "storage deleted" from the resolver); the name is free again.
UPDATE storages SET deleted_at = now(), enabled = false, notify_secret_hash = NULL
WHERE id = @id AND org_id = @org_id AND deleted_at IS NULL
RETURNING *;

-- name: SyncRunCreate :one
-- A pending run, unless the storage already has a live one (sync_runs_one_live_key)
-- or the schedule tick already has its run (sync_runs_schedule_tick_key): then no
-- row, and the caller joins that run.
INSERT INTO sync_runs (org_id, project_id, storage_id, trigger, scheduled_for)
VALUES (@org_id, @project_id, @storage_id, @trigger, @scheduled_for)
ON CONFLICT DO NOTHING
RETURNING *;

-- name: SyncRunGetLive :one
SELECT * FROM sync_runs WHERE storage_id = @storage_id AND status IN ('pending', 'running');

-- name: SyncRunGetForTick :one
SELECT * FROM sync_runs WHERE storage_id = @storage_id AND scheduled_for = @scheduled_for;

-- name: SyncRunGet :one
SELECT * FROM sync_runs WHERE id = @id AND org_id = @org_id;

-- name: SyncRunListByStorage :many
-- Newest first; ?before= pages back.
SELECT * FROM sync_runs
WHERE storage_id = @storage_id AND org_id = @org_id
  AND (sqlc.narg('before_id')::bigint IS NULL OR id < sqlc.narg('before_id'))
ORDER BY id DESC
LIMIT @max_rows;

-- name: SyncRunRequestCancel :one
-- A pending run is cancelled at once; a running one is asked to stop (its worker
-- checks cancel_requested_at after each page and marks it cancelled). Terminal
-- runs are left alone: no row.
UPDATE sync_runs SET
    status              = CASE WHEN status = 'pending' THEN 'cancelled'::sync_run_status ELSE status END,
    completed_at        = CASE WHEN status = 'pending' THEN now() ELSE completed_at END,
    cancel_requested_at = COALESCE(cancel_requested_at, now())
WHERE id = @id AND org_id = @org_id AND status IN ('pending', 'running')
RETURNING *;

-- name: SyncRunCancelLive :many
-- SyncRunRequestCancel for a storage's live run (a deleted storage's).
UPDATE sync_runs SET
    status              = CASE WHEN status = 'pending' THEN 'cancelled'::sync_run_status ELSE status END,
    completed_at        = CASE WHEN status = 'pending' THEN now() ELSE completed_at END,
    cancel_requested_at = COALESCE(cancel_requested_at, now())
WHERE storage_id = @storage_id AND org_id = @org_id AND status IN ('pending', 'running')
RETURNING *;
