-- name: ExportLogCreate :one
INSERT INTO export_logs (org_id, project_id, requested_by, schedule_id, scheduled_for, options)
VALUES (@org_id, @project_id, @requested_by, @schedule_id, @scheduled_for, @options)
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
-- One export per schedule tick, however many schedulers fire it.
INSERT INTO export_logs (org_id, project_id, schedule_id, scheduled_for, options)
VALUES (@org_id, @project_id, @schedule_id, @scheduled_for, @options)
ON CONFLICT (schedule_id, scheduled_for) DO NOTHING
RETURNING *;
