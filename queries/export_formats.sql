-- name: ExportFormatTotals :one
-- What a converted export (a format other than labelq) will read, for its
-- progress: the tasks and their bytes (results, dataset versions, predictions),
-- and the jobs it leaves out because a version is not valid or was never measured.
-- A task is a job of the project whose dataset version is valid and measured;
-- with @annotations, only an approved job whose result (an annotation_results
-- version: Label Studio result JSON) is valid and measured too, as results travel
-- with approval in labelq's own layout. Without (label_studio carrying
-- predictions only), every such job. The queries below page through the same
-- tasks in job id order (keyset pagination).
WITH t AS (
    SELECT v.id AS version_id, v.size_bytes AS raw_size, r.size_bytes AS result_size,
           (v.validation_status = 'valid' AND v.checksum IS NOT NULL AND v.size_bytes IS NOT NULL
            AND (NOT @annotations::boolean OR (r.validation_status = 'valid' AND r.checksum IS NOT NULL AND r.size_bytes IS NOT NULL))) AS ok
    FROM annotation_jobs j
    JOIN files f ON f.id = j.file_id
    JOIN file_versions v ON v.id = j.file_version_id
    LEFT JOIN file_versions r ON @annotations::boolean AND r.id = j.result_version_id
    WHERE j.project_id = @project_id AND j.org_id = @org_id AND j.deleted_at IS NULL AND f.deleted_at IS NULL
      AND (NOT @annotations::boolean OR (j.review_status = 'approved' AND j.result_version_id IS NOT NULL))
)
SELECT
    count(*) FILTER (WHERE t.ok)::bigint AS tasks,
    count(*) FILTER (WHERE NOT t.ok)::bigint AS skipped,
    COALESCE(sum(t.result_size) FILTER (WHERE t.ok), 0)::bigint AS result_bytes,
    COALESCE(sum(t.raw_size) FILTER (WHERE t.ok), 0)::bigint AS raw_bytes,
    (SELECT COALESCE(sum(p.size_bytes), 0) FROM (
        SELECT DISTINCT ON (pv.file_id) pv.size_bytes
        FROM file_versions pv JOIN files pf ON pf.id = pv.file_id
        WHERE @predictions::boolean AND pv.project_id = @project_id AND pv.org_id = @org_id
          AND pf.file_type = 'llm_output' AND pf.deleted_at IS NULL
          AND pv.validation_status = 'valid' AND pv.checksum IS NOT NULL AND pv.size_bytes IS NOT NULL
          AND pv.source_file_version_id IN (SELECT t2.version_id FROM t t2 WHERE t2.ok)
        ORDER BY pv.file_id, pv.version_number DESC) p)::bigint AS prediction_bytes
FROM t;

-- name: ExportFormatTaskPage :many
-- One page of tasks after @after_id, with what the annotation pass reads: the
-- dataset version (image facts; its bytes for a text), the result version, and the
-- job's annotator (its latest annotator assignment not revoked; 0 when none).
SELECT j.id AS job_id, j.file_id, f.name AS file_name,
       v.id AS version_id, v.version_number, v.storage_id, v.storage_path, v.checksum::text AS checksum,
       v.size_bytes::bigint AS size_bytes, v.mime_type, v.image_width, v.image_height, v.image_orientation,
       r.id AS result_id, r.storage_id AS result_storage_id, r.storage_path AS result_path,
       r.checksum AS result_checksum, r.size_bytes AS result_size, r.created_at AS result_created_at,
       rf.name AS result_file_name,
       COALESCE((SELECT a.user_id FROM assignments a
                 WHERE a.job_id = j.id AND a.role = 'annotator' AND a.status <> 'revoked'
                 ORDER BY a.id DESC LIMIT 1), 0)::bigint AS annotator_id
FROM annotation_jobs j
JOIN files f ON f.id = j.file_id
JOIN file_versions v ON v.id = j.file_version_id
LEFT JOIN file_versions r ON @annotations::boolean AND r.id = j.result_version_id
LEFT JOIN files rf ON rf.id = r.file_id
WHERE j.project_id = @project_id AND j.org_id = @org_id AND j.deleted_at IS NULL AND f.deleted_at IS NULL
  AND j.id > @after_id
  AND v.validation_status = 'valid' AND v.checksum IS NOT NULL AND v.size_bytes IS NOT NULL
  AND (NOT @annotations::boolean OR (j.review_status = 'approved'
       AND r.validation_status = 'valid' AND r.checksum IS NOT NULL AND r.size_bytes IS NOT NULL))
ORDER BY j.id
LIMIT @max_rows;

-- name: ExportFormatFilePage :many
-- The same tasks, with only their dataset version: for COCO's image pass and for
-- packing the images (include_files).
SELECT j.id AS job_id, j.file_id, f.name AS file_name,
       v.id AS version_id, v.version_number, v.storage_id, v.storage_path, v.checksum::text AS checksum,
       v.size_bytes::bigint AS size_bytes, v.mime_type, v.image_width, v.image_height, v.image_orientation
FROM annotation_jobs j
JOIN files f ON f.id = j.file_id
JOIN file_versions v ON v.id = j.file_version_id
LEFT JOIN file_versions r ON @annotations::boolean AND r.id = j.result_version_id
WHERE j.project_id = @project_id AND j.org_id = @org_id AND j.deleted_at IS NULL AND f.deleted_at IS NULL
  AND j.id > @after_id
  AND v.validation_status = 'valid' AND v.checksum IS NOT NULL AND v.size_bytes IS NOT NULL
  AND (NOT @annotations::boolean OR (j.review_status = 'approved'
       AND r.validation_status = 'valid' AND r.checksum IS NOT NULL AND r.size_bytes IS NOT NULL))
ORDER BY j.id
LIMIT @max_rows;

-- name: ExportFormatPredictions :many
-- The predictions of a page's tasks: the model outputs made from its dataset
-- versions, the latest valid version of each llm_output file, oldest file first.
SELECT p.* FROM (
    SELECT DISTINCT ON (v.file_id) v.source_file_version_id::bigint AS source_version_id, v.id, v.file_id,
           f.name AS file_name, v.storage_id, v.storage_path, v.checksum::text AS checksum,
           v.size_bytes::bigint AS size_bytes, v.llm_model
    FROM file_versions v
    JOIN files f ON f.id = v.file_id
    WHERE v.project_id = @project_id AND v.org_id = @org_id
      AND f.file_type = 'llm_output' AND f.deleted_at IS NULL
      AND v.validation_status = 'valid' AND v.checksum IS NOT NULL AND v.size_bytes IS NOT NULL
      AND v.source_file_version_id = ANY(@source_version_ids::bigint[])
    ORDER BY v.file_id, v.version_number DESC
) p
ORDER BY p.source_version_id, p.file_id;
