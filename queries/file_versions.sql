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

-- name: FileVersionGetForValidation :one
-- Everything file:validate needs to know about a version before reading its bytes, in
-- one round trip. retired is true when the file or the project has been deleted: the
-- version is still judged, but nothing downstream follows.
SELECT sqlc.embed(v), f.file_type, (f.deleted_at IS NOT NULL OR p.deleted_at IS NOT NULL)::boolean AS retired,
       p.llm_enabled, p.allowed_content_types
FROM file_versions v
JOIN files f ON f.id = v.file_id
JOIN projects p ON p.id = v.project_id
WHERE v.id = @id;

-- name: FileVersionIncrementAttempts :one
-- Counts a validation attempt that found no object, only while the version is pending;
-- no row means another run already decided it.
UPDATE file_versions SET validation_attempts = validation_attempts + 1
WHERE id = @id AND validation_status = 'pending'
RETURNING validation_attempts;

-- name: FileVersionLockChecksum :exec
-- Serialises, until commit, the validations of the same bytes in one project, so two
-- copies validated at the same moment still see each other and get linked.
SELECT pg_advisory_xact_lock(hashtextextended(@checksum::text, @project_id::bigint));

-- name: FileVersionFindDuplicate :one
-- The version a newly valid one duplicates: a valid version of the same project with
-- the same bytes, preferring one that is not itself a duplicate (so links point at the
-- original, never along a chain), then the earliest.
SELECT id FROM file_versions
WHERE project_id = @project_id AND checksum = @checksum AND validation_status = 'valid' AND id <> @id
ORDER BY (duplicate_of IS NULL) DESC, id
LIMIT 1;

-- name: FileVersionMarkValid :one
UPDATE file_versions SET
    validation_status = 'valid', validation_error = NULL,
    checksum = @checksum, size_bytes = @size_bytes, mime_type = @mime_type,
    validated_at = @validated_at, duplicate_of = sqlc.narg('duplicate_of')
WHERE id = @id AND validation_status = 'pending'
RETURNING *;

-- name: FileVersionMarkFailed :one
-- corrupt, rejected or missing, with the reason; whatever was measured is kept (NULL
-- when nothing was).
UPDATE file_versions SET
    validation_status = @validation_status, validation_error = @validation_error,
    checksum = sqlc.narg('checksum'), size_bytes = sqlc.narg('size_bytes'), mime_type = sqlc.narg('mime_type'),
    validated_at = @validated_at, duplicate_of = NULL
WHERE id = @id AND validation_status = 'pending'
RETURNING *;

-- name: FileVersionCreateLLMOutput :one
-- A model's output as the next version of an llm_output file; the caller holds the
-- file's row lock. It is valid at birth: labelq wrote and measured the bytes itself,
-- so no file:validate task follows.
INSERT INTO file_versions (
    org_id, project_id, file_id, version_number, storage_path,
    checksum, size_bytes, mime_type, validation_status, validated_at,
    generation_method, source_file_version_id, llm_model, llm_params
) VALUES (
    @org_id, @project_id, @file_id,
    (SELECT COALESCE(MAX(v.version_number), 0) + 1 FROM file_versions v WHERE v.file_id = @file_id),
    @storage_path, @checksum, @size_bytes, @mime_type, 'valid', now(),
    'llm', @source_file_version_id, @llm_model, @llm_params
)
RETURNING *;
