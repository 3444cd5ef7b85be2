-- name: FileVersionCreate :one
-- The version number is the next one for the file; the caller holds the file's row lock.
INSERT INTO file_versions (
    org_id, project_id, file_id, version_number, storage_path,
    expected_sha256, expected_size, expected_mime_type, uploaded_by
) VALUES (
    @org_id, @project_id, @file_id,
    (SELECT COALESCE(MAX(v.version_number), 0) + 1 FROM file_versions v WHERE v.file_id = @file_id),
    @storage_path, @expected_sha256, @expected_size, @expected_mime_type, @uploaded_by
)
RETURNING *;

-- name: FileVersionGet :one
SELECT * FROM file_versions WHERE id = @id AND org_id = @org_id;

-- name: FileVersionGetByID :one
SELECT * FROM file_versions WHERE id = @id;

-- name: FileVersionGetForUpdate :one
SELECT * FROM file_versions WHERE id = @id FOR UPDATE;

-- name: FileVersionListByFile :many
SELECT * FROM file_versions WHERE file_id = @file_id AND org_id = @org_id ORDER BY version_number;

-- name: FileVersionResetForRevalidation :one
UPDATE file_versions
SET validation_status = 'pending', validation_error = NULL, validated_at = NULL, validation_attempts = 0
WHERE id = @id AND org_id = @org_id
RETURNING *;

-- name: FileVersionListStuckPending :many
-- Versions pending validation for longer than the threshold: the reconciler checks
-- each has a live task.
SELECT id, org_id FROM file_versions
WHERE validation_status = 'pending' AND updated_at < @older_than
ORDER BY id
LIMIT @max_rows;
