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
