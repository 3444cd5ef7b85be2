-- name: FileCreate :one
INSERT INTO files (org_id, project_id, name, description, file_type, uploaded_by)
VALUES (@org_id, @project_id, @name, @description, @file_type, @uploaded_by)
RETURNING *;

-- name: FileGet :one
SELECT * FROM files WHERE id = @id AND org_id = @org_id AND deleted_at IS NULL;

-- name: FileGetForUpdate :one
SELECT * FROM files WHERE id = @id AND deleted_at IS NULL FOR UPDATE;

-- name: FileGetForUpdateInOrg :one
SELECT * FROM files WHERE id = @id AND org_id = @org_id AND deleted_at IS NULL FOR UPDATE;

-- name: FileListByProject :many
SELECT * FROM files
WHERE project_id = @project_id AND org_id = @org_id AND deleted_at IS NULL AND id > @after_id
ORDER BY id
LIMIT @max_rows;
