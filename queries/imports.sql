-- Imports of Label Studio tasks (POST /v1/projects/{id}/imports): files, versions
-- and links come through internal/ingest; these are what an import adds.

-- name: ImportStorages :many
-- The import storages of a project, which an import's data URLs may point into.
SELECT * FROM storages
WHERE project_id = @project_id AND org_id = @org_id AND kind = 'import' AND deleted_at IS NULL
ORDER BY id;

-- name: FileVersionsSetOrigin :exec
-- What imported versions derive from (arrays zipped, one element per version): the
-- dataset version an annotation or a prediction belongs to (source_file_version_id),
-- and for a prediction (method 'llm') the model_version it names, which may be ''.
UPDATE file_versions v SET
    source_file_version_id = u.source_id,
    generation_method = u.method::generation_method,
    llm_model = CASE WHEN u.method = 'llm' THEN u.model END,
    llm_params = CASE WHEN u.method = 'llm' THEN '{"imported_from": "label_studio"}'::jsonb END
FROM (SELECT unnest(@ids::bigint[]) AS id, unnest(@source_ids::bigint[]) AS source_id,
             unnest(@methods::text[]) AS method, unnest(@models::text[]) AS model) u
WHERE v.id = u.id AND v.org_id = @org_id;

-- name: AnnotationJobsCreateImported :many
-- The jobs of imported annotated tasks, born done with their result (arrays zipped:
-- the dataset version and its result version), with the attributes registered on
-- the dataset version (a storage's rules) like any job. The versions are new, so no
-- job exists for them yet; file:validate keeps this one when it finds it.
INSERT INTO annotation_jobs (org_id, project_id, file_id, file_version_id, language, priority, due_date,
                             status, review_status, result_version_id, completed_at)
SELECT v.org_id, v.project_id, v.file_id, v.id, v.job_language, COALESCE(v.job_priority, 'medium'), v.job_due_date,
       @status::job_status, @review_status::review_status, u.result_id, @completed_at::timestamptz
FROM (SELECT unnest(@file_version_ids::bigint[]) AS version_id, unnest(@result_version_ids::bigint[]) AS result_id) u
JOIN file_versions v ON v.id = u.version_id AND v.org_id = @org_id AND v.project_id = @project_id
RETURNING id, file_version_id;
