-- name: ExportScheduleCreate :one
-- format: the layout of its exports (NULL: labelq's own).
INSERT INTO export_schedules (org_id, project_id, cron_spec, timezone, options, enabled, created_by, storage_id, format)
VALUES (@org_id, @project_id, @cron_spec, @timezone, @options, @enabled, @created_by, sqlc.narg('storage_id'),
        COALESCE(sqlc.narg('format')::text, 'labelq'))
RETURNING *;

-- name: ExportScheduleListByProject :many
SELECT * FROM export_schedules
WHERE project_id = @project_id AND org_id = @org_id AND deleted_at IS NULL
ORDER BY id;

-- name: ExportScheduleUpdate :one
UPDATE export_schedules SET
    cron_spec = COALESCE(sqlc.narg('cron_spec'), cron_spec),
    timezone  = COALESCE(sqlc.narg('timezone'), timezone),
    options   = COALESCE(sqlc.narg('options'), options),
    enabled   = COALESCE(sqlc.narg('enabled'), enabled),
    format    = COALESCE(sqlc.narg('format')::text, format),
    -- set_storage: storage_id was given (NULL: back to labelq's bucket).
    storage_id = CASE WHEN @set_storage::boolean THEN sqlc.narg('storage_id')::bigint ELSE storage_id END
WHERE id = @id AND org_id = @org_id AND deleted_at IS NULL
RETURNING *;

-- name: ExportScheduleDelete :execrows
UPDATE export_schedules SET deleted_at = now(), enabled = false
WHERE id = @id AND org_id = @org_id AND deleted_at IS NULL;

-- name: ExportScheduleListEnabled :many
-- Every enabled schedule, for the scheduler (not tenant-scoped).
SELECT * FROM export_schedules WHERE enabled AND deleted_at IS NULL ORDER BY id;

-- name: ExportScheduleGetByID :one
-- For the scheduler, which is not tenant-scoped.
SELECT * FROM export_schedules WHERE id = @id AND deleted_at IS NULL;

-- name: ExportScheduleSetLastFired :exec
UPDATE export_schedules SET last_fired_at = @fired_at
WHERE id = @id AND (last_fired_at IS NULL OR last_fired_at < @fired_at);

-- name: ExportScheduleLockProject :one
-- Taken before counting a project's schedules, so that concurrent creates wait
-- for each other and the per-project maximum holds. NO KEY UPDATE does not
-- block the inserts that merely reference the project.
SELECT id FROM projects
WHERE id = @project_id AND org_id = @org_id AND deleted_at IS NULL
FOR NO KEY UPDATE;

-- name: ExportScheduleCountByProject :one
SELECT count(*) FROM export_schedules
WHERE project_id = @project_id AND org_id = @org_id AND deleted_at IS NULL;

-- name: ExportScheduleIDsByStorage :many
-- The live schedules whose exports go to an export storage: deleting the storage
-- is refused while there are any.
SELECT id FROM export_schedules
WHERE storage_id = @storage_id AND org_id = @org_id AND deleted_at IS NULL
ORDER BY id;

-- name: DatabaseNow :one
-- The database's clock: which tick a schedule's firing stands for is read from it,
-- the one clock every worker shares, not from the worker's own (which may be off).
SELECT clock_timestamp()::timestamptz AS now;
