-- storage:sync's own statements on its run (the API's are in storages.sql).

-- name: SyncRunGetForUpdate :one
SELECT * FROM sync_runs WHERE id = @id FOR UPDATE;

-- name: SyncRunStart :one
-- A run (attempt) takes the run: running, one more attempt; started_at stays the
-- first attempt's.
UPDATE sync_runs SET status = 'running', attempts = attempts + 1, started_at = COALESCE(started_at, @now::timestamptz),
    heartbeat_at = clock_timestamp()
WHERE id = @id AND status IN ('pending', 'running')
RETURNING *;

-- name: SyncRunAddPage :exec
-- One committed page: its counts are added and the checkpoint moves to its last key.
UPDATE sync_runs SET
    checkpoint = COALESCE(sqlc.narg('checkpoint')::text, checkpoint),
    pages = pages + 1,
    keys_listed = keys_listed + @listed::bigint,
    keys_new = keys_new + @new::bigint,
    keys_changed = keys_changed + @changed::bigint,
    keys_unchanged = keys_unchanged + @unchanged::bigint,
    keys_filtered = keys_filtered + @filtered::bigint,
    keys_gone = keys_gone + @gone::bigint,
    keys_skipped = keys_skipped + @skipped_count::bigint,
    skipped = @skipped::jsonb,
    heartbeat_at = clock_timestamp()
WHERE id = @id AND attempts = @attempt::integer AND status = 'running';

-- name: SyncRunFinish :one
-- completed, failed or cancelled, from pending or running; the error is the
-- reason of a failure (NULL otherwise).
UPDATE sync_runs SET status = @status, error = sqlc.narg('error'), completed_at = @now::timestamptz
WHERE id = @id AND status IN ('pending', 'running')
RETURNING *;

-- name: SyncRunNoteError :execrows
-- A transient error of this attempt, kept on the running run for a person to see.
UPDATE sync_runs SET error = @error::text
WHERE id = @id AND attempts = @attempt::integer AND status = 'running';

-- name: SyncRunHeartbeat :execrows
-- The attempt holding @attempt is alive (internal/heartbeat, every
-- LABELQ_HEARTBEAT_INTERVAL). It waits while the attempt's own page
-- transaction holds the row, and that page's SyncRunAddPage beats instead.
-- No row: the attempt no longer owns the run.
UPDATE sync_runs SET heartbeat_at = clock_timestamp()
WHERE id = @id AND attempts = @attempt::integer AND status = 'running';
