-- name: AnnotationJobCreate :one
-- Idempotent: a version has at most one live job.
INSERT INTO annotation_jobs (org_id, project_id, file_id, file_version_id, language, priority, due_date)
VALUES (@org_id, @project_id, @file_id, @file_version_id, @language, @priority, @due_date)
ON CONFLICT (file_version_id) WHERE deleted_at IS NULL DO NOTHING
RETURNING *;

-- name: AnnotationJobGet :one
SELECT * FROM annotation_jobs WHERE id = @id AND org_id = @org_id AND deleted_at IS NULL;
