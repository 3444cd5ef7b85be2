-- name: UserCreate :one
INSERT INTO users (
    org_id, email, name, role, availability, language_expertise,
    skill_score, qa_approval_rate, max_active_jobs, is_active
) VALUES (
    @org_id, @email, @name, @role, @availability, @language_expertise,
    @skill_score, @qa_approval_rate, @max_active_jobs, @is_active
)
RETURNING *;

-- name: UserGet :one
SELECT * FROM users WHERE id = @id AND org_id = @org_id AND deleted_at IS NULL;

-- name: UserListByOrg :many
SELECT * FROM users
WHERE org_id = @org_id AND deleted_at IS NULL AND id > @after_id
ORDER BY id
LIMIT @max_rows;

-- name: UserUpdate :one
UPDATE users SET
    name               = COALESCE(sqlc.narg('name'), name),
    role               = COALESCE(sqlc.narg('role')::user_role, role),
    availability       = COALESCE(sqlc.narg('availability'), availability),
    language_expertise = COALESCE(sqlc.narg('language_expertise'), language_expertise),
    skill_score        = COALESCE(sqlc.narg('skill_score'), skill_score),
    qa_approval_rate   = COALESCE(sqlc.narg('qa_approval_rate'), qa_approval_rate),
    max_active_jobs    = COALESCE(sqlc.narg('max_active_jobs'), max_active_jobs),
    is_active          = COALESCE(sqlc.narg('is_active'), is_active)
WHERE id = @id AND org_id = @org_id AND deleted_at IS NULL
RETURNING *;

-- name: UserListCandidates :many
-- project:match's candidates of one role in the project's organization, with their
-- live assignments across all projects (capacity and load) and which side of this
-- project they already work on, live or past (role conflicts).
SELECT u.id, u.role, u.availability, u.language_expertise, u.skill_score, u.qa_approval_rate,
       u.max_active_jobs,
       (SELECT count(*) FROM assignments a
        WHERE a.user_id = u.id AND a.status IN ('assigned', 'accepted', 'in_progress'))::integer AS live_assignments,
       EXISTS (SELECT 1 FROM assignments a
               WHERE a.project_id = @project_id AND a.user_id = u.id AND a.role = 'annotator') AS annotates_in_project,
       EXISTS (SELECT 1 FROM assignments a
               WHERE a.project_id = @project_id AND a.user_id = u.id AND a.role IN ('reviewer', 'qc')) AS reviews_in_project,
       -- The person's annotator copies in this project (live or done), and how
       -- many of them are of gold jobs: the honeypot side keeps that share at
       -- the project's gold_rate.
       (SELECT count(*) FROM assignments a
        WHERE a.project_id = @project_id AND a.user_id = u.id AND a.role = 'annotator' AND a.status <> 'revoked')::integer AS project_copies,
       (SELECT count(*) FROM assignments a JOIN annotation_jobs j ON j.id = a.job_id
        WHERE a.project_id = @project_id AND a.user_id = u.id AND a.role = 'annotator' AND a.status <> 'revoked'
          AND j.gold)::integer AS project_gold_copies
FROM users u
WHERE u.org_id = @org_id AND u.role = @role AND u.is_active AND u.deleted_at IS NULL
ORDER BY u.id;

-- name: UserLockForAssignment :exec
-- Serialises everyone about to give these users work (project:match runs of different
-- projects share people); ordered by id so two lockers cannot deadlock.
SELECT u.id FROM users u WHERE u.id = ANY(@ids::bigint[]) ORDER BY u.id FOR NO KEY UPDATE;

-- name: UserCapacityList :many
-- Fresh capacity of users whose rows the caller has locked (UserLockForAssignment).
SELECT u.id, u.max_active_jobs,
       (SELECT count(*) FROM assignments a
        WHERE a.user_id = u.id AND a.status IN ('assigned', 'accepted', 'in_progress'))::integer AS live_assignments
FROM users u
WHERE u.id = ANY(@ids::bigint[])
ORDER BY u.id;
