-- name: AnnotationJobCreate :one
-- Idempotent: a version has at most one live job.
INSERT INTO annotation_jobs (org_id, project_id, file_id, file_version_id, language, priority, due_date)
VALUES (@org_id, @project_id, @file_id, @file_version_id, @language, @priority, @due_date)
ON CONFLICT (file_version_id) WHERE deleted_at IS NULL DO NOTHING
RETURNING *;

-- name: AnnotationJobListByProject :many
SELECT * FROM annotation_jobs
WHERE project_id = @project_id AND org_id = @org_id AND deleted_at IS NULL AND id > @after_id
ORDER BY id
LIMIT @max_rows;

-- name: AnnotationJobGetForUpdate :one
-- The job as PATCH /v1/jobs/{id} finds it, locked against other updates until commit.
-- FOR NO KEY UPDATE, not FOR UPDATE: a project:match run inserting an assignment for
-- the job (whose foreign key check takes FOR KEY SHARE) is not blocked by it, so the
-- PATCH can then wait for that run's project lock without the two deadlocking.
SELECT * FROM annotation_jobs
WHERE id = @id AND org_id = @org_id AND deleted_at IS NULL
FOR NO KEY UPDATE;

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

-- name: AnnotationJobListOpenForMatching :many
-- project:match's annotator side: the project's open jobs that still need
-- annotator copies. An ordinary job needs @overlap distinct annotators, counting
-- live and completed copies (a revoked copy does not count, so the next run
-- replaces it); with @honeypots a gold job is left to AnnotationJobListGoldForMatching.
-- current_annotator_ids hold a copy (live or done) and get no other;
-- previous_annotator_ids may never annotate the job again.
SELECT j.id, j.language, j.priority, j.due_date,
       ARRAY(SELECT p.user_id FROM job_previous_annotators p
             WHERE p.job_id = j.id ORDER BY p.user_id)::bigint[] AS previous_annotator_ids,
       ARRAY(SELECT DISTINCT a.user_id FROM assignments a
             WHERE a.job_id = j.id AND a.role = 'annotator' AND a.status <> 'revoked'
             ORDER BY 1)::bigint[] AS current_annotator_ids
FROM annotation_jobs j
WHERE j.project_id = @project_id
  AND j.deleted_at IS NULL
  AND j.status IN ('not_started', 'in_progress')
  AND NOT (j.gold AND @honeypots::boolean)
  AND (SELECT count(*) FROM assignments a
       WHERE a.job_id = j.id AND a.role = 'annotator' AND a.status <> 'revoked') < @overlap::integer
ORDER BY j.id;

-- name: AnnotationJobListGoldForMatching :many
-- project:match's honeypot side (a project with a gold_rate): the project's open
-- gold jobs, each of which may go once to every annotator who has not had it.
SELECT j.id, j.language, j.priority, j.due_date,
       ARRAY(SELECT p.user_id FROM job_previous_annotators p
             WHERE p.job_id = j.id ORDER BY p.user_id)::bigint[] AS previous_annotator_ids,
       ARRAY(SELECT DISTINCT a.user_id FROM assignments a
             WHERE a.job_id = j.id AND a.role = 'annotator' AND a.status <> 'revoked'
             ORDER BY 1)::bigint[] AS current_annotator_ids
FROM annotation_jobs j
WHERE j.project_id = @project_id
  AND j.deleted_at IS NULL
  AND j.gold
  AND j.status IN ('not_started', 'in_progress')
ORDER BY j.id;

-- name: AnnotationJobListNeedingReviewer :many
-- project:match's reviewer side: jobs of the project that have an annotator (live,
-- or done and waiting for review) but no live reviewer. annotator_id is the live
-- annotator, else the latest who completed it; excluded_user_ids are everyone else
-- who may not review it: previous and other annotators of the job and reviewers a
-- person revoked from it (so a revoke is not undone by the run it triggers). A
-- reviewer labelq revoked for a hard rule (revoked_rule, a changed language) is not
-- excluded: the rule itself keeps them off the job for as long as it applies.
SELECT j.id, j.language, j.priority, j.due_date,
       (SELECT a.user_id FROM assignments a
        WHERE a.job_id = j.id AND a.role = 'annotator' AND a.status <> 'revoked'
        ORDER BY (a.status = 'completed'), a.id DESC
        LIMIT 1)::bigint AS annotator_id,
       ARRAY(SELECT p.user_id FROM job_previous_annotators p WHERE p.job_id = j.id
             UNION
             SELECT a.user_id FROM assignments a
             WHERE a.job_id = j.id
               AND ((a.role = 'annotator' AND a.status <> 'revoked')
                    OR (a.role IN ('reviewer', 'qc') AND a.status = 'revoked' AND a.revoked_rule IS NULL))
             ORDER BY 1)::bigint[] AS excluded_user_ids
FROM annotation_jobs j
WHERE j.project_id = @project_id
  AND j.deleted_at IS NULL
  AND j.status IN ('not_started', 'in_progress', 'submitted')
  AND EXISTS (
      SELECT 1 FROM assignments a
      WHERE a.job_id = j.id AND a.role = 'annotator'
        AND a.status IN ('assigned', 'accepted', 'in_progress', 'completed'))
  AND NOT EXISTS (
      SELECT 1 FROM assignments a
      WHERE a.job_id = j.id AND a.role IN ('reviewer', 'qc') AND a.status IN ('assigned', 'accepted', 'in_progress'))
ORDER BY j.id;

-- name: ProjectListWithUnmatchedJobs :many
-- Projects holding open jobs with no live annotator and no matching run since the
-- job appeared: their trigger was lost (Redis flushed) and the reconciler reruns them.
SELECT j.project_id AS id, j.org_id
FROM annotation_jobs j
WHERE j.deleted_at IS NULL AND j.status IN ('not_started', 'in_progress') AND j.created_at < @older_than
  AND NOT EXISTS (SELECT 1 FROM assignments a
                  WHERE a.job_id = j.id AND a.role = 'annotator' AND a.status IN ('assigned', 'accepted', 'in_progress'))
  AND NOT EXISTS (SELECT 1 FROM event_log e
                  WHERE e.entity_type = 'project' AND e.entity_id = j.project_id
                    AND e.event_type = 'match_completed' AND e.occurred_at >= j.created_at)
GROUP BY j.project_id, j.org_id
ORDER BY j.project_id
LIMIT @max_rows;
