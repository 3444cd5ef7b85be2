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
-- equal lengths, one element per assignment). The live-assignment unique indexes
-- (one live copy of a job per person, one reviewer per job) make a pair someone else
-- already filled a no-op; RETURNING says which rows were really written, with each
-- job's file (for the assignment.created webhook).
INSERT INTO assignments (org_id, project_id, job_id, user_id, role, status, score)
SELECT @org_id, @project_id, unnest(@job_ids::bigint[]), unnest(@user_ids::bigint[]),
       @role::assignment_role, 'assigned', unnest(@scores::double precision[])
ON CONFLICT DO NOTHING
RETURNING id, job_id, user_id, score, (SELECT j.file_id FROM annotation_jobs j WHERE j.id = assignments.job_id)::bigint AS file_id;

-- name: AssignmentTryLockProjectForMatching :one
-- The non-waiting form for tasks: a run that finds the project busy gives its worker
-- slot back and retries shortly, instead of holding the slot while it waits.
SELECT pg_try_advisory_xact_lock(hashtextextended('labelq:project:match:' || @project_id::bigint, 0));

-- name: AssignmentListLiveForRules :many
-- A job's live assignments with what the hard rules on the job's attributes read about
-- each holder (their language_expertise), for PATCH /v1/jobs/{id} to re-check them
-- after a change. Locked: a holder's concurrent accept or revoke waits for the
-- re-check's decision.
SELECT a.id, a.user_id, a.role, a.status, u.language_expertise
FROM assignments a
JOIN users u ON u.id = a.user_id
WHERE a.job_id = @job_id AND a.org_id = @org_id AND a.status IN ('assigned', 'accepted', 'in_progress')
ORDER BY a.id
FOR UPDATE OF a;

-- name: AssignmentRevokeForRule :one
-- Revokes a live assignment whose holder now breaks a hard matching rule (the rule's
-- name in revoked_rule). Unlike a person's revoke it adds nobody to
-- job_previous_annotators: the holder may get the job again once the rule allows it.
UPDATE assignments SET status = 'revoked', revoked_at = now(), revoked_rule = @rule
WHERE id = @id AND org_id = @org_id AND status IN ('assigned', 'accepted', 'in_progress')
RETURNING *;

-- name: AssignmentSetLockTimeout :exec
-- Bounds, until the transaction ends, how long its statements wait for a lock (the
-- project's matching lock a PATCH takes): lock_timeout, as SET LOCAL.
SELECT set_config('lock_timeout', @timeout::text, true);
