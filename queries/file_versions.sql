-- name: FileVersionCreate :one
-- The version number is the next one for the file; the caller holds the file's row lock.
-- job_language, job_priority and job_due_date are what the version's annotation job is
-- born with (FileActivateVersion reads them); NULL takes the job defaults.
INSERT INTO file_versions (
    org_id, project_id, file_id, version_number, storage_path,
    expected_sha256, expected_size, expected_mime_type, uploaded_by,
    job_language, job_priority, job_due_date
) VALUES (
    @org_id, @project_id, @file_id,
    (SELECT COALESCE(MAX(v.version_number), 0) + 1 FROM file_versions v WHERE v.file_id = @file_id),
    @storage_path, @expected_sha256, @expected_size, @expected_mime_type, @uploaded_by,
    sqlc.narg('job_language'), sqlc.narg('job_priority')::job_priority, sqlc.narg('job_due_date')
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
SET validation_status = 'pending', validation_error = NULL, validated_at = NULL, validation_attempts = 0,
    checksum = NULL, size_bytes = NULL, mime_type = NULL, duplicate_of = NULL,
    image_width = NULL, image_height = NULL, image_orientation = NULL
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
SELECT sqlc.embed(v), f.file_type, f.name AS file_name,
       (f.deleted_at IS NOT NULL OR p.deleted_at IS NOT NULL)::boolean AS retired,
       p.llm_enabled, p.allowed_content_types
FROM file_versions v
JOIN files f ON f.id = v.file_id
JOIN projects p ON p.id = v.project_id
WHERE v.id = @id;

-- name: FileVersionIncrementAttempts :one
-- Counts a validation attempt that found no object, only while the version is pending;
-- no row means another run already decided it.
UPDATE file_versions SET validation_attempts = validation_attempts + 1
WHERE id = @id AND validation_status::text = 'pending' -- ::text: see FileVersionMarkValid
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

-- name: FileVersionMarkValid :exec
-- :exec, like MarkFailed: the caller holds the row lock and has seen it pending, and
-- database.Tx sends an :exec with the next statement instead of waiting for it.
-- validation_status::text, not the enum: a plain "= 'pending'" matches
-- file_versions_pending_idx's predicate, and after an ANALYZE taken while nothing
-- was pending the planner read that whole index instead of the key (51 million
-- index entries for 10,000 validations, at half the throughput); the cast keeps
-- the check and leaves the key the only index that fits.
-- image_*: the image's header (stored size, EXIF orientation); NULL for other content.
UPDATE file_versions SET
    validation_status = 'valid', validation_error = NULL,
    checksum = @checksum, size_bytes = @size_bytes, mime_type = @mime_type,
    validated_at = @validated_at, duplicate_of = sqlc.narg('duplicate_of'),
    object_etag = sqlc.narg('object_etag'), object_version_id = sqlc.narg('object_version_id'),
    image_width = sqlc.narg('image_width'), image_height = sqlc.narg('image_height'),
    image_orientation = sqlc.narg('image_orientation')
WHERE id = @id AND validation_status::text = 'pending'; -- ::text: see FileVersionMarkValid

-- name: FileVersionMarkFailed :exec
-- corrupt, rejected or missing, with the reason; whatever was measured is kept (NULL
-- when nothing was). Image facts are only recorded for bytes labelq vouches for.
UPDATE file_versions SET
    validation_status = @validation_status, validation_error = @validation_error,
    checksum = sqlc.narg('checksum'), size_bytes = sqlc.narg('size_bytes'), mime_type = sqlc.narg('mime_type'),
    validated_at = @validated_at, duplicate_of = NULL,
    image_width = NULL, image_height = NULL, image_orientation = NULL
WHERE id = @id AND validation_status::text = 'pending'; -- ::text: see FileVersionMarkValid

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

-- name: FileVersionListForExport :many
-- What an export may pack, by kind: 'annotations' are the approved jobs' result
-- versions; 'consensus' are the consensus results (consensus_results) of the
-- project's live jobs, whatever their review; 'files' are raw dataset versions: the
-- approved jobs' own versions when annotations are included (results travel with the
-- bytes they describe), else the active version of every dataset file, and with
-- consensus the versions the consensus results describe too; 'llm' are the model
-- outputs made from those raw versions, the latest valid one per llm_output file.
-- Rows come back whatever their validation status: the caller packs the valid ones
-- and counts the rest.
WITH approved AS (
    SELECT j.file_version_id, j.result_version_id
    FROM annotation_jobs j
    WHERE j.project_id = @project_id AND j.org_id = @org_id AND j.deleted_at IS NULL
      AND j.review_status = 'approved' AND j.result_version_id IS NOT NULL
), consensus AS (
    SELECT j.file_version_id, c.version_id
    FROM consensus_results c
    JOIN annotation_jobs j ON j.id = c.job_id AND j.org_id = c.org_id
    WHERE @include_consensus::boolean
      AND c.project_id = @project_id AND c.org_id = @org_id
      AND j.project_id = @project_id AND j.deleted_at IS NULL
), raw AS (
    SELECT a.file_version_id AS id FROM approved a WHERE @include_annotations::boolean
    UNION
    SELECT c.file_version_id AS id FROM consensus c
    UNION
    SELECT f.active_version_id AS id FROM files f
    WHERE NOT @include_annotations::boolean
      AND f.project_id = @project_id AND f.org_id = @org_id AND f.deleted_at IS NULL
      AND f.file_type = 'dataset' AND f.active_version_id IS NOT NULL
), llm AS (
    SELECT DISTINCT ON (v.file_id) v.id
    FROM file_versions v
    JOIN files f ON f.id = v.file_id
    WHERE @include_llm::boolean
      AND v.project_id = @project_id AND v.org_id = @org_id
      AND f.file_type = 'llm_output' AND f.deleted_at IS NULL
      AND v.validation_status = 'valid'
      AND v.source_file_version_id IN (SELECT r.id FROM raw r)
    ORDER BY v.file_id, v.version_number DESC
), picked AS (
    SELECT 'annotations'::text AS kind, a.result_version_id AS id FROM approved a WHERE @include_annotations::boolean
    UNION
    SELECT 'consensus'::text AS kind, c.version_id AS id FROM consensus c
    UNION
    SELECT 'files'::text AS kind, r.id FROM raw r WHERE @include_files::boolean
    UNION
    SELECT 'llm'::text AS kind, l.id FROM llm l
)
SELECT p.kind::text AS kind, v.id, v.file_id, v.version_number, v.storage_id, v.storage_path, v.checksum, v.size_bytes,
       v.mime_type, v.validation_status, f.name AS file_name
FROM picked p
JOIN file_versions v ON v.id = p.id
JOIN files f ON f.id = v.file_id
WHERE v.project_id = @project_id AND v.org_id = @org_id AND f.deleted_at IS NULL
ORDER BY p.kind, v.id;

-- name: FileVersionListPreannotationLost :many
-- Versions whose pre-annotation was requested (an outbox row exists) but never
-- started (no llm_runs row): the task was lost before its first run.
-- The version id is read out of the task id (file:preannotate:<id>[:<nonce>]) so the
-- outbox is read once and joined by hash: a LIKE built from each version's id can use
-- no index, and made this quadratic (seconds at 50,000 versions).
SELECT v.id, v.org_id FROM file_versions v
WHERE v.validation_status = 'valid' AND v.updated_at < @older_than
  AND v.id IN (SELECT split_part(o.task_id, ':', 3)::bigint FROM outbox o
               WHERE o.task_type = 'file:preannotate' AND o.task_id ~ '^file:preannotate:[0-9]{1,18}(:|$)')
  AND NOT EXISTS (SELECT 1 FROM llm_runs r WHERE r.file_version_id = v.id)
ORDER BY v.id
LIMIT @max_rows;

-- name: FileVersionRevalidate :one
-- Sends a valid version back to pending when its object is no longer the one
-- file:validate measured (overwritten after validation, e.g. through a still-valid
-- presigned URL: another ETag, or bytes that no longer hash to the checksum): what
-- was measured is forgotten, and the caller queues file:validate through the outbox
-- in the same transaction. No row when the version is no longer valid with that
-- checksum (another run got there first).
UPDATE file_versions SET
    validation_status = 'pending', validation_error = NULL, validation_attempts = 0,
    checksum = NULL, size_bytes = NULL, mime_type = NULL, validated_at = NULL, duplicate_of = NULL,
    object_etag = NULL, object_version_id = NULL,
    image_width = NULL, image_height = NULL, image_orientation = NULL
WHERE id = @id AND validation_status = 'valid' AND checksum = @checksum::text
RETURNING *;
