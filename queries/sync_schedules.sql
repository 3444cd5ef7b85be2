-- name: StorageListScheduled :many
-- Every import storage with a sync schedule, for the scheduler (not tenant-scoped).
SELECT id, sync_cron::text AS sync_cron, sync_timezone FROM storages
WHERE sync_cron IS NOT NULL AND kind = 'import' AND enabled AND deleted_at IS NULL
ORDER BY id;

-- name: SyncTickClaim :one
-- A storage's schedule tick is handled once, however many schedulers fire it: the
-- first firing's event takes the tick's dedup key, and a second firing finds it
-- taken (no row: the event_log_dedup trigger drops it) and does nothing. The event
-- says which run serves the tick.
INSERT INTO event_log (org_id, entity_type, entity_id, event_type, dedup_key, metadata)
VALUES (@org_id, 'storage', @storage_id, 'sync_scheduled', @dedup_key::text, @metadata)
RETURNING id;

-- name: SyncTickRecordRun :exec
-- The run the claimed tick made or joined, in the same transaction as the claim.
UPDATE event_log SET metadata = metadata || @run::jsonb WHERE id = @id;

-- name: SyncRunListStuck :many
-- Sync runs pending or running with no progress (no page committed, no status
-- change) for longer than the threshold: the reconciler asks asynq about their
-- storage:sync tasks.
SELECT id, org_id FROM sync_runs
WHERE status IN ('pending', 'running') AND updated_at < @older_than
ORDER BY id
LIMIT @max_rows;
