-- name: OutboxInsert :exec
-- created_at is the transaction's start, so commit→enqueue latency measured from it errs high.
-- :exec (no RETURNING): nobody needs the id, and database.Tx sends an :exec with the
-- transaction's next statement or its COMMIT instead of waiting for it.
INSERT INTO outbox (task_id, task_type, queue, payload, options, org_id, subject_id, available_at)
VALUES (@task_id, @task_type, @queue, @payload, @options, @org_id, @subject_id, @available_at);

-- name: OutboxClaimBatch :many
-- SKIP LOCKED lets any number of relays run side by side: each row is held by one.
SELECT * FROM outbox
WHERE enqueued_at IS NULL AND available_at <= now()
ORDER BY available_at, id
LIMIT @max_rows
FOR UPDATE SKIP LOCKED;

-- name: OutboxMarkEnqueued :exec
UPDATE outbox SET enqueued_at = clock_timestamp(), attempts = attempts + 1, last_error = NULL
WHERE id = ANY(@ids::bigint[]);

-- name: OutboxMarkFailed :exec
UPDATE outbox
SET attempts = attempts + 1, last_error = @last_error, available_at = @available_at
WHERE id = @id;

-- name: OutboxCountUnsent :one
SELECT count(*) FROM outbox WHERE enqueued_at IS NULL;

-- name: OutboxDeleteEnqueuedBefore :execrows
DELETE FROM outbox WHERE enqueued_at IS NOT NULL AND enqueued_at < @before::timestamptz;

-- name: OutboxLatestForSubject :one
-- The newest task of a kind queued for a row (tasks.Queued.SubjectID).
SELECT * FROM outbox
WHERE task_type = @task_type AND subject_id = @subject_id::bigint
ORDER BY id DESC
LIMIT 1;

-- name: OutboxGetByTaskID :one
SELECT * FROM outbox WHERE task_id = @task_id AND org_id = @org_id ORDER BY id DESC LIMIT 1;
