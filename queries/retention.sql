-- Retention (internal/retention): event_log by whole monthly partitions, the other
-- growing tables in batches of their oldest expired rows. Every batch is one
-- statement over an index range (migrations/00020) and skips rows another pass
-- holds (SKIP LOCKED), so passes in several processes share the work.

-- name: RetentionEnsurePartitions :one
-- Creates event_log's monthly partitions from this month to @months_ahead months
-- ahead; 0 when they all exist or another pass is making them.
SELECT labelq_event_log_ensure_partitions(@months_ahead::integer)::integer AS created;

-- name: RetentionDropPartitions :one
-- Detaches and drops the event_log partitions whose month ended by @older_than.
SELECT labelq_event_log_drop_partitions(@older_than::timestamptz)::integer AS dropped;

-- name: RetentionEventLogPartitions :many
-- event_log's partitions, oldest first, with the first instant after each.
SELECT c.relname::text AS name,
       ((to_date(right(c.relname, 6), 'YYYYMM') + interval '1 month') AT TIME ZONE 'UTC')::timestamptz AS ends
FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'event_log'::regclass
ORDER BY c.relname;

-- name: RetentionOutboxDelete :execrows
-- Relayed rows enqueued before @before. A row not relayed yet is work still to do
-- and is never deleted, however old.
DELETE FROM outbox WHERE id IN (
    SELECT o.id FROM outbox o
    WHERE o.enqueued_at IS NOT NULL AND o.enqueued_at < @before::timestamptz
    ORDER BY o.enqueued_at
    LIMIT @max_rows
    FOR UPDATE SKIP LOCKED
);

-- name: RetentionIdempotencyKeysDelete :execrows
-- Answers stored before @before: the same key after that is a new request.
DELETE FROM idempotency_keys k
USING (
    SELECT i.org_id, i.key FROM idempotency_keys i
    WHERE i.created_at < @before::timestamptz
    ORDER BY i.created_at
    LIMIT @max_rows
    FOR UPDATE SKIP LOCKED
) old
WHERE k.org_id = old.org_id AND k.key = old.key;

-- name: RetentionLLMRunsDelete :execrows
-- Finished runs last changed before @before, except a run another run's output was
-- copied from (cached_from_id: kept until its copies go) and the runs of a version
-- whose file:preannotate is still in the outbox (the reconciler takes a version
-- with a task and no run for a lost task and queues it again).
DELETE FROM llm_runs WHERE id IN (
    SELECT r.id FROM llm_runs r
    WHERE r.status IN ('succeeded', 'failed', 'skipped') AND r.updated_at < @before::timestamptz
      AND NOT EXISTS (SELECT 1 FROM llm_runs c WHERE c.cached_from_id = r.id)
      AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.task_type = 'file:preannotate' AND o.subject_id = r.file_version_id)
    ORDER BY r.updated_at
    LIMIT @max_rows
    FOR UPDATE SKIP LOCKED
);

-- name: RetentionSyncRunsDelete :execrows
-- Finished sync runs last changed before @before, except each storage's newest run
-- (what its last sync found stays readable).
DELETE FROM sync_runs WHERE id IN (
    SELECT r.id FROM sync_runs r
    WHERE r.status IN ('completed', 'failed', 'cancelled') AND r.updated_at < @before::timestamptz
      AND EXISTS (SELECT 1 FROM sync_runs n WHERE n.storage_id = r.storage_id AND n.id > r.id)
    ORDER BY r.updated_at
    LIMIT @max_rows
    FOR UPDATE SKIP LOCKED
);
