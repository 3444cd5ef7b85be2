-- name: AnnotationJobCreate :one
-- Idempotent: a version has at most one live job.
INSERT INTO annotation_jobs (org_id, project_id, file_id, file_version_id, language, priority, due_date)
VALUES (@org_id, @project_id, @file_id, @file_version_id, @language, @priority, @due_date)
ON CONFLICT (file_version_id) WHERE deleted_at IS NULL DO NOTHING
RETURNING *;

-- name: AnnotationJobGet :one
SELECT * FROM annotation_jobs WHERE id = @id AND org_id = @org_id AND deleted_at IS NULL;

-- name: AnnotationJobListByProject :many
SELECT * FROM annotation_jobs
WHERE project_id = @project_id AND org_id = @org_id AND deleted_at IS NULL AND id > @after_id
ORDER BY id
LIMIT @max_rows;

-- name: AnnotationJobUpdate :one
UPDATE annotation_jobs SET
    language          = COALESCE(sqlc.narg('language'), language),
    priority          = COALESCE(sqlc.narg('priority')::job_priority, priority),
    status            = COALESCE(sqlc.narg('status')::job_status, status),
    review_status     = COALESCE(sqlc.narg('review_status')::review_status, review_status),
    result_version_id = COALESCE(sqlc.narg('result_version_id'), result_version_id),
    due_date          = COALESCE(sqlc.narg('due_date'), due_date),
    completed_at      = CASE WHEN sqlc.narg('status')::job_status = 'reviewed' AND completed_at IS NULL THEN now() ELSE completed_at END
WHERE id = @id AND org_id = @org_id AND deleted_at IS NULL
RETURNING *;
