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
