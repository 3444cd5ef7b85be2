-- +goose Up
-- Fair admission (issue 18): pending work stays in the outbox, and the relay moves a
-- row of an organization into asynq only while that organization has fewer than
-- LABELQ_ADMIT_PER_ORG tasks of its type admitted and not finished. The count is
-- the rows with admitted_at set and finished_at not: the relay sets admitted_at
-- when it claims a row (under a per (organization, type) lock, so many relays never
-- admit past the limit), and the worker sets finished_at when the task succeeds or
-- is archived; the reconciler repairs a row whose task vanished from Redis.
--
-- priority: 0 interactive (an upload through the API, "pre-annotate now", "match
-- now", an export on demand), 1 bulk (sync pages, versions:batch, scheduled
-- exports, repairs). Within an organization interactive work is admitted first.
-- grouped: asynq aggregates a grouped task (project:match triggers) into a task of
-- another id, so its row can never be told finished; grouped rows are never held
-- back and never hold a slot.
ALTER TABLE outbox
    ADD COLUMN priority    smallint NOT NULL DEFAULT 0 CHECK (priority IN (0, 1)),
    ADD COLUMN admitted_at timestamptz,
    ADD COLUMN finished_at timestamptz,
    ADD COLUMN grouped     boolean NOT NULL GENERATED ALWAYS AS (options ? 'group') STORED;

-- Pending rows per (organization, type, grouped), in admission order: the relay
-- walks the groups with a loose index scan and takes each group's oldest rows.
CREATE INDEX outbox_admission_pending_idx ON outbox ((coalesce(org_id, 0)), task_type, grouped, priority, available_at, id)
    WHERE enqueued_at IS NULL;
-- The slots held: counted per (organization, type) at every admission, and found by
-- task id when the task finishes.
CREATE INDEX outbox_admission_held_idx ON outbox ((coalesce(org_id, 0)), task_type)
    WHERE admitted_at IS NOT NULL AND finished_at IS NULL;
CREATE INDEX outbox_admission_held_task_idx ON outbox (task_id)
    WHERE admitted_at IS NOT NULL AND finished_at IS NULL;

-- An operator's weight for an organization: its admission limits are multiplied by
-- it, and it gets as many rows per round of the relay's round-robin.
ALTER TABLE organizations ADD COLUMN admission_weight integer NOT NULL DEFAULT 1
    CHECK (admission_weight BETWEEN 1 AND 1000);

-- +goose Down
ALTER TABLE organizations DROP COLUMN admission_weight;
DROP INDEX outbox_admission_held_task_idx;
DROP INDEX outbox_admission_held_idx;
DROP INDEX outbox_admission_pending_idx;
ALTER TABLE outbox DROP COLUMN grouped, DROP COLUMN finished_at, DROP COLUMN admitted_at, DROP COLUMN priority;
