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

-- name: FileActivateVersion :one
-- Makes a valid version the file's active one, unless a newer version already is
-- (versions can finish validating out of order); mark_ready also moves a pending file
-- to ready_for_annotation. When the version became active and want_job is set, its
-- annotation job is created in the same round trip (AnnotationJobCreate's insert), born
-- with the language, priority and due date registered on the version (job_language,
-- job_priority, job_due_date: single and batch registration, a storage's rule); a
-- version without them gets no language, medium and no due date. Reading them here
-- rather than taking them as arguments means every path that validates a version
-- (one by one, a batch, a sync) creates the job the registration asked for.
-- active: the version is now the file's active one; job_id: the job created now, 0
-- when none was (not active, not wanted, or a live job for the version exists from
-- an earlier validation).
WITH act AS (
    UPDATE files f SET
        active_version_id = @version_id::bigint,
        status = CASE WHEN @mark_ready::boolean AND f.status = 'pending'
                      THEN 'ready_for_annotation'::file_status ELSE f.status END
    WHERE f.id = @file_id AND f.deleted_at IS NULL
      AND (f.active_version_id IS NULL
           OR f.active_version_id = @version_id::bigint
           OR (SELECT a.version_number FROM file_versions a WHERE a.id = f.active_version_id) < @version_number::integer)
    RETURNING f.id, f.org_id, f.project_id
), job AS (
    INSERT INTO annotation_jobs (org_id, project_id, file_id, file_version_id, language, priority, due_date)
    SELECT act.org_id, act.project_id, act.id, v.id, v.job_language, COALESCE(v.job_priority, 'medium'), v.job_due_date
    FROM act JOIN file_versions v ON v.id = @version_id::bigint AND v.file_id = act.id
    WHERE @want_job::boolean
    ON CONFLICT (file_version_id) WHERE deleted_at IS NULL DO NOTHING
    RETURNING id
)
SELECT EXISTS (SELECT 1 FROM act) AS active, COALESCE((SELECT id FROM job), 0)::bigint AS job_id;

-- name: FileStepBackFromVersion :exec
-- A version decided not valid stops being its file's active version, if it was (a
-- re-validation found the bytes changed or gone): the newest other valid version
-- takes its place, or none, and a file left without one is pending again. Nothing
-- that reads the active version (matching, exports, annotators) then gets bytes
-- that failed their check.
UPDATE files f SET
    active_version_id = n.id,
    status = CASE WHEN n.id IS NULL AND f.status = 'ready_for_annotation'
                  THEN 'pending'::file_status ELSE f.status END
FROM (SELECT (SELECT v.id FROM file_versions v
              WHERE v.file_id = @file_id AND v.validation_status = 'valid' AND v.id <> @version_id::bigint
              ORDER BY v.version_number DESC LIMIT 1) AS id) n
WHERE f.id = @file_id AND f.active_version_id = @version_id::bigint;

-- name: FileCreateLLMOutput :exec
-- The llm_output file that holds a source file's model outputs; a no-op when a file of
-- that name exists (the caller then reads it with FileGetByNameForUpdate).
INSERT INTO files (org_id, project_id, name, description, file_type)
VALUES (@org_id, @project_id, @name, @description, 'llm_output')
ON CONFLICT (project_id, name) WHERE deleted_at IS NULL DO NOTHING;

-- name: FileGetByNameForUpdate :one
SELECT * FROM files WHERE project_id = @project_id AND name = @name AND deleted_at IS NULL FOR UPDATE;
