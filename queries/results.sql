-- Annotation results (annotation_results versions) and what they annotate.

-- name: FileVersionResultSubject :one
-- The dataset version an annotation_results version annotates, for the text its
-- spans are checked against: its source version (an import sets it), else the
-- dataset version of the newest live job that has it as its result. No row: neither
-- is known (results registered before they were set as a job's result).
SELECT v.id, v.storage_id, v.storage_path, v.object_etag
FROM file_versions v
WHERE v.org_id = @org_id AND v.id = COALESCE(
    (SELECT r.source_file_version_id FROM file_versions r WHERE r.id = @result_version_id),
    (SELECT j.file_version_id FROM annotation_jobs j
     WHERE j.result_version_id = @result_version_id AND j.deleted_at IS NULL
     ORDER BY j.id DESC LIMIT 1));
