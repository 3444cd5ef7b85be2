-- name: AssignmentListByProject :many
SELECT * FROM assignments
WHERE project_id = @project_id AND org_id = @org_id AND id > @after_id
ORDER BY id
LIMIT @max_rows;

-- name: AssignmentGetForUpdate :one
SELECT * FROM assignments WHERE id = @id AND org_id = @org_id FOR UPDATE;

-- name: AssignmentRevoke :one
UPDATE assignments SET status = 'revoked', revoked_at = now()
WHERE id = @id AND org_id = @org_id AND status IN ('assigned', 'accepted', 'in_progress')
RETURNING *;

-- name: AssignmentLockProjectForMatching :exec
-- A transaction-scoped advisory lock per project: two project:match runs of one
-- project never overlap. The key is a 64-bit hash of a namespaced name, so meeting
-- another feature's advisory lock is vanishingly unlikely, and a collision between
-- two projects would only make them take turns.
SELECT pg_advisory_xact_lock(hashtextextended('labelq:project:match:' || @project_id::bigint, 0));

-- name: AssignmentCreateBatch :many
-- The assignments one matching run makes, in one statement (the arrays are zipped:
-- equal lengths, one element per assignment). The live-assignment
-- unique index makes a pair someone else already filled a no-op; RETURNING says which
-- rows were really written.
INSERT INTO assignments (org_id, project_id, job_id, user_id, role, status, score)
SELECT @org_id, @project_id, unnest(@job_ids::bigint[]), unnest(@user_ids::bigint[]),
       @role::assignment_role, 'assigned', unnest(@scores::double precision[])
ON CONFLICT (job_id, role) WHERE status IN ('assigned', 'accepted', 'in_progress') DO NOTHING
RETURNING id, job_id, user_id, score;

-- name: AssignmentTryLockProjectForMatching :one
-- The non-waiting form for tasks: a run that finds the project busy gives its worker
-- slot back and retries shortly, instead of holding the slot while it waits.
SELECT pg_try_advisory_xact_lock(hashtextextended('labelq:project:match:' || @project_id::bigint, 0));
