-- name: OutboxInsert :exec
-- created_at is the transaction's start, so commit→enqueue latency measured from it errs high.
-- :exec (no RETURNING): nobody needs the id, and database.Tx sends an :exec with the
-- transaction's next statement or its COMMIT instead of waiting for it.
INSERT INTO outbox (task_id, task_type, queue, payload, options, org_id, subject_id, available_at, priority)
VALUES (@task_id, @task_type, @queue, @payload, @options, @org_id, @subject_id, @available_at, @priority);

-- name: OutboxClaimBatch :many
-- Claims up to @max_rows unsent rows for @lease. Run in a transaction of its own
-- and committed before any enqueue, so no row stays locked while Redis is called;
-- SKIP LOCKED lets relays claim side by side, and a row another relay claimed is
-- skipped until its lease ends (that relay died or is too slow: the row is taken
-- again, and the task id keeps the second enqueue from making a second task).
UPDATE outbox SET claimed_by = @claimed_by::text, claimed_until = clock_timestamp() + make_interval(secs => @lease_seconds::double precision)
WHERE id IN (
    SELECT id FROM outbox
    WHERE enqueued_at IS NULL AND available_at <= now()
      AND (claimed_until IS NULL OR claimed_until < clock_timestamp())
    ORDER BY available_at, id
    LIMIT @max_rows
    FOR UPDATE SKIP LOCKED
)
RETURNING *;

-- name: OutboxMarkEnqueued :execrows
-- Only rows this claim still holds: one whose lease ran out and that another relay
-- took is that relay's to mark. A claim is only ever set on an unsent row and
-- marking clears it, so claimed_by = this claim means unsent: no "enqueued_at IS
-- NULL" here, which would let the planner AND outbox_unsent_idx (every waiting
-- row) into the primary-key lookup. Before ANALYZE saw a backlog it did: with
-- 200,000 rows waiting for admission, each batch read all 200,000 index entries.
UPDATE outbox SET enqueued_at = clock_timestamp(), attempts = attempts + 1, last_error = NULL,
    claimed_by = NULL, claimed_until = NULL
WHERE id = ANY(@ids::bigint[]) AND claimed_by = @claimed_by::text;

-- name: OutboxMarkFailed :exec
UPDATE outbox
SET attempts = attempts + 1, last_error = @last_error, available_at = @available_at,
    claimed_by = NULL, claimed_until = NULL
WHERE id = @id AND claimed_by = @claimed_by::text AND enqueued_at IS NULL;

-- name: OutboxReleaseClaims :exec
-- A relay that stops mid-batch gives back the rows it did not get to (unsent, as
-- in OutboxMarkEnqueued, because this claim holds them).
UPDATE outbox SET claimed_by = NULL, claimed_until = NULL
WHERE id = ANY(@ids::bigint[]) AND claimed_by = @claimed_by::text;

-- name: OutboxCountUnsent :one
SELECT count(*) FROM outbox WHERE enqueued_at IS NULL;

-- name: OutboxDeleteEnqueuedBefore :execrows
-- A row still holding an admission slot is kept: its finish frees the slot.
DELETE FROM outbox WHERE enqueued_at IS NOT NULL AND enqueued_at < @before::timestamptz
    AND (admitted_at IS NULL OR finished_at IS NOT NULL);

-- name: OutboxLatestForSubject :one
-- The newest task of a kind queued for a row (tasks.Queued.SubjectID).
SELECT * FROM outbox
WHERE task_type = @task_type AND subject_id = @subject_id::bigint
ORDER BY id DESC
LIMIT 1;

-- name: OutboxGetByTaskID :one
SELECT * FROM outbox WHERE task_id = @task_id AND org_id = @org_id ORDER BY id DESC LIMIT 1;

-- name: OutboxInsertMany :exec
-- Many tasks in one statement (arrays zipped, one element per task), as OutboxInsert.
INSERT INTO outbox (task_id, task_type, queue, payload, options, org_id, subject_id, available_at, priority)
SELECT unnest(@task_ids::text[]), unnest(@task_types::text[]), unnest(@queues::text[]),
       unnest(@payloads::text[])::jsonb, unnest(@options::text[])::jsonb, @org_id::bigint,
       unnest(@subject_ids::bigint[]), unnest(@available_ats::timestamptz[]), @priority::smallint;

-- name: OutboxHasTask :one
-- Whether a task id has an outbox row already: debounced tasks (the automatic
-- project:consensus after peer scoring) are written once per window.
SELECT EXISTS (SELECT 1 FROM outbox WHERE task_id = @task_id) AS queued;
