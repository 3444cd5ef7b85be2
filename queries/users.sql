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
