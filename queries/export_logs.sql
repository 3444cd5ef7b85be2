-- name: ExportLogCreate :one
-- storage_id: the export storage the archive goes to (NULL: labelq's bucket);
-- format: the archive's layout (NULL: labelq's own).
INSERT INTO export_logs (org_id, project_id, requested_by, schedule_id, scheduled_for, options, storage_id, format)
VALUES (@org_id, @project_id, @requested_by, @schedule_id, @scheduled_for, @options, sqlc.narg('storage_id'),
        COALESCE(sqlc.narg('format')::text, 'labelq'))
RETURNING *;

-- name: ExportLogGet :one
SELECT * FROM export_logs WHERE id = @id AND org_id = @org_id;

-- name: ExportLogListByProject :many
SELECT * FROM export_logs
WHERE project_id = @project_id AND org_id = @org_id AND (sqlc.narg('before_id')::bigint IS NULL OR id < sqlc.narg('before_id'))
ORDER BY id DESC
LIMIT @max_rows;

-- name: ExportLogCancel :one
UPDATE export_logs SET status = 'cancelled', completed_at = now()
WHERE id = @id AND org_id = @org_id AND status IN ('pending', 'running')
RETURNING *;

-- name: ExportLogListStuck :many
-- Exports pending or running with no progress for longer than the threshold.
SELECT id, org_id FROM export_logs
WHERE status IN ('pending', 'running') AND updated_at < @older_than
ORDER BY id
LIMIT @max_rows;

-- name: ExportLogCreateForTick :one
-- One export per schedule tick, however many schedulers fire it. The export goes
-- where the schedule says, in its format (its storage_id and format, read here so
-- the scheduler need not carry them).
INSERT INTO export_logs (org_id, project_id, schedule_id, scheduled_for, options, storage_id, format)
VALUES (@org_id, @project_id, @schedule_id, @scheduled_for, @options,
        (SELECT s.storage_id FROM export_schedules s WHERE s.id = @schedule_id),
        COALESCE((SELECT s.format FROM export_schedules s WHERE s.id = @schedule_id), 'labelq'))
ON CONFLICT (schedule_id, scheduled_for) DO NOTHING
RETURNING *;

-- name: ExportLogGetForUpdate :one
-- project:export holds this lock while it starts a run or records its failure (a
-- few statements, never across a call to the bucket), so a second delivery of the
-- same export waits and then sees the outcome.
SELECT * FROM export_logs WHERE id = @id FOR UPDATE;

-- name: ExportLogStart :one
-- A run takes the export over: running from zero with the totals it is about to
-- pack. The incremented attempts is the run's identity; the updates below match
-- only the newest run, so a superseded one (a redelivery overtook it) stops.
-- error is kept: it says why the previous attempt did not finish.
UPDATE export_logs SET
    status      = 'running',
    started_at  = @started_at,
    attempts    = attempts + 1,
    files_done  = 0,
    bytes_done  = 0,
    files_total = @files_total,
    bytes_total = @bytes_total,
    -- The database's clock, not now(): the transaction may have spent a while
    -- planning under the row lock.
    heartbeat_at = clock_timestamp()
WHERE id = @id AND status IN ('pending', 'running')
RETURNING *;

-- name: ExportLogSetProgress :execrows
-- Progress of the run holding @attempt, and its heartbeat (heartbeat_at and
-- updated_at). No row: the export was cancelled or a newer run took it over,
-- and this run stops.
UPDATE export_logs SET
    files_done = LEAST(@files_done::integer, files_total),
    bytes_done = LEAST(@bytes_done::bigint, bytes_total),
    heartbeat_at = clock_timestamp()
WHERE id = @id AND attempts = @attempt AND status = 'running';

-- name: ExportLogHeartbeat :execrows
-- The run holding @attempt is alive (internal/heartbeat, every
-- LABELQ_HEARTBEAT_INTERVAL, whatever the run is doing: planning, packing,
-- completing the upload). No row: the run no longer owns the export.
UPDATE export_logs SET heartbeat_at = clock_timestamp()
WHERE id = @id AND attempts = @attempt AND status = 'running';

-- name: ExportLogNoteError :execrows
-- Why the run holding @attempt did not finish this time (it will be retried).
UPDATE export_logs SET error = @error
WHERE id = @id AND attempts = @attempt AND status = 'running';

-- name: ExportLogComplete :one
-- The archive is in the bucket: the run holding @attempt records it, with its note
-- (why it packed no file; NULL when there is nothing to say).
UPDATE export_logs SET
    status         = 'completed',
    storage_path   = @storage_path,
    archive_sha256 = @archive_sha256,
    size_bytes     = @size_bytes,
    file_count     = @file_count,
    files_done     = files_total,
    bytes_done     = bytes_total,
    error          = NULL,
    note           = sqlc.narg('note'),
    completed_at   = @completed_at
WHERE id = @id AND attempts = @attempt AND status = 'running'
RETURNING *;

-- name: ExportLogEmptyFacts :one
-- What explains an export that selected no file to pack, read only then: the
-- project's jobs and approved jobs (results, and with include_annotations their raw
-- files, travel with approval), its dataset files and those with a valid active
-- version, the dataset versions still waiting for validation, and its valid model
-- outputs.
SELECT
    (SELECT count(*) FROM annotation_jobs j
     WHERE j.project_id = @project_id AND j.org_id = @org_id AND j.deleted_at IS NULL)::bigint AS jobs,
    (SELECT count(*) FROM annotation_jobs j
     WHERE j.project_id = @project_id AND j.org_id = @org_id AND j.deleted_at IS NULL
       AND j.review_status = 'approved' AND j.result_version_id IS NOT NULL)::bigint AS approved_jobs,
    (SELECT count(*) FROM files f
     WHERE f.project_id = @project_id AND f.org_id = @org_id AND f.deleted_at IS NULL
       AND f.file_type = 'dataset')::bigint AS dataset_files,
    (SELECT count(*) FROM files f
     WHERE f.project_id = @project_id AND f.org_id = @org_id AND f.deleted_at IS NULL
       AND f.file_type = 'dataset' AND f.active_version_id IS NOT NULL)::bigint AS active_dataset_files,
    (SELECT count(*) FROM file_versions v JOIN files f ON f.id = v.file_id
     WHERE v.project_id = @project_id AND v.org_id = @org_id AND f.deleted_at IS NULL
       AND f.file_type = 'dataset' AND v.validation_status = 'pending')::bigint AS pending_dataset_versions,
    (SELECT count(*) FROM file_versions v JOIN files f ON f.id = v.file_id
     WHERE v.project_id = @project_id AND v.org_id = @org_id AND f.deleted_at IS NULL
       AND f.file_type = 'llm_output' AND v.validation_status = 'valid')::bigint AS llm_outputs;

-- name: ExportLogFail :execrows
-- A failure that retrying cannot fix (corrupt stored bytes, deleted project).
UPDATE export_logs SET status = 'failed', error = @error, completed_at = @completed_at
WHERE id = @id AND attempts = @attempt AND status IN ('pending', 'running');

-- name: ExportLogListExpired :many
-- Completed exports whose archive is older than the retention and still stored.
SELECT id, org_id, project_id, storage_id, storage_path, completed_at FROM export_logs
WHERE status = 'completed' AND purged_at IS NULL AND completed_at < @completed_before
ORDER BY completed_at, id
LIMIT @max_rows;

-- name: ExportLogMarkPurged :execrows
-- Retention removed the archive; the row stays as the record of the export.
UPDATE export_logs SET purged_at = @purged_at
WHERE id = @id AND status = 'completed' AND purged_at IS NULL;

-- name: ExportLogSetLockTimeout :exec
-- Bounds, for the rest of the caller's transaction, how long it waits for a row
-- lock (an export row a worker holds): lock_timeout, as SET LOCAL.
SELECT set_config('lock_timeout', @timeout::text, true);

-- name: ExportLogKeptPaths :many
-- Of @paths (objects under one project's exports/), those that are the archive of
-- a completed, unpurged export: retention's orphan sweep deletes the others.
SELECT storage_path::text FROM export_logs
WHERE project_id = @project_id AND org_id = @org_id AND status = 'completed' AND purged_at IS NULL
  AND storage_path = ANY(@paths::text[]);

-- name: ExportLogGetStorage :one
-- The storage an export's archive goes to (NULL: labelq's bucket), read before
-- the run takes the row: it never changes after the export is created.
SELECT storage_id FROM export_logs WHERE id = @id;

-- name: StorageGetForExport :one
-- A storage of the project, for the export API to check a requested target
-- (the caller checks its kind, to say why an import storage does not do).
SELECT * FROM storages
WHERE id = @id AND org_id = @org_id AND project_id = @project_id AND deleted_at IS NULL;
