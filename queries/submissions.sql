-- name: SubmissionCreate :one
-- A submitted result to score, written in the transaction that submits it. The
-- same result of the same person for the same job and kind is one submission:
-- submitting it again (a retried request) writes nothing and answers no row.
INSERT INTO submissions (org_id, project_id, job_id, user_id, assignment_id, result_version_id, kind)
VALUES (@org_id, @project_id, @job_id, @user_id, @assignment_id, @result_version_id, @kind)
ON CONFLICT ON CONSTRAINT submissions_once DO NOTHING
RETURNING id;

-- name: SubmissionStart :one
-- job:score takes a submission: queued (or processing, a run that died) →
-- processing, one more attempt. No row: already completed or failed.
UPDATE submissions SET status = 'processing', attempts = attempts + 1, updated_at = now()
WHERE id = @id AND status IN ('queued', 'processing')
RETURNING *;

-- name: SubmissionComplete :one
UPDATE submissions SET status = 'completed', score = @score, passed = @passed, metric = @metric,
    detail = @detail, reason = NULL, scored_at = now(), updated_at = now()
WHERE id = @id AND status = 'processing'
RETURNING *;

-- name: SubmissionSetRank :exec
UPDATE submissions SET rank = @rank WHERE id = @id;

-- name: SubmissionFail :one
UPDATE submissions SET status = 'failed', reason = @reason, updated_at = now()
WHERE id = @id AND status IN ('queued', 'processing')
RETURNING *;

-- name: SubmissionGet :one
SELECT * FROM submissions WHERE id = @id AND org_id = @org_id;

-- name: SubmissionListStuck :many
-- Submissions waiting on a job:score task that may be gone (Redis flushed, a
-- worker killed on its last retry), for the reconciler.
SELECT id, org_id FROM submissions
WHERE status IN ('queued', 'processing') AND updated_at < @older_than
ORDER BY updated_at
LIMIT @max_rows;

-- name: ScoreTallyAdd :one
-- Adds a completed submission's score to its annotator's tally in the project and
-- returns their rank: 1 + how many annotators of the project have a higher mean.
WITH t AS (
    INSERT INTO score_tallies (project_id, user_id, org_id, scored, total)
    VALUES (@project_id, @user_id, @org_id, 1, @score)
    ON CONFLICT (project_id, user_id) DO UPDATE
        SET scored = score_tallies.scored + 1, total = score_tallies.total + EXCLUDED.total
    RETURNING total / scored AS mean
)
SELECT (1 + (SELECT count(*) FROM score_tallies o
             WHERE o.project_id = @project_id AND o.user_id <> @user_id
               AND o.total / o.scored > (SELECT mean FROM t)))::integer AS rank;

-- name: SubmissionGoldStats :one
-- A person's completed gold submissions in a project: passes, failures and the
-- mean score.
SELECT count(*) FILTER (WHERE passed)::integer AS passed,
       count(*) FILTER (WHERE NOT passed)::integer AS failed,
       COALESCE(avg(score), 0)::double precision AS mean_score
FROM submissions
WHERE project_id = @project_id AND user_id = @user_id AND kind = 'gold' AND status = 'completed';

-- name: SubmissionScoringInputs :one
-- What job:score needs about a submission's job and project, and the result
-- version it scores, and the job's gold answer when it has one (the scoring
-- worker's read of gold_answers; the API role has no grant on the table).
SELECT j.file_id, j.gold, g.result AS gold_result, p.label_config, p.overlap, p.quality_iou_threshold, p.quality_pass_threshold,
       p.quality_prior_alpha, p.quality_prior_beta,
       fv.storage_id, fv.storage_path, fv.checksum, fv.size_bytes, fv.validation_status
FROM submissions s
JOIN annotation_jobs j ON j.id = s.job_id
JOIN projects p ON p.id = s.project_id
JOIN file_versions fv ON fv.id = s.result_version_id
LEFT JOIN gold_answers g ON g.job_id = s.job_id
WHERE s.id = @id;

-- name: SubmissionPeerResults :many
-- The other annotators' submitted copies of a job, for peer scoring.
SELECT a.user_id, a.result_version_id::bigint AS result_version_id,
       fv.storage_id, fv.storage_path, fv.checksum, fv.size_bytes
FROM assignments a
JOIN file_versions fv ON fv.id = a.result_version_id
WHERE a.job_id = @job_id AND a.role = 'annotator' AND a.status = 'completed'
  AND a.result_version_id IS NOT NULL AND a.user_id <> @user_id
ORDER BY a.user_id;

-- name: UserSetQuality :one
-- job:score's update of a person's QA rate and skill score.
UPDATE users SET qa_approval_rate = @qa_approval_rate, skill_score = @skill_score, updated_at = now()
WHERE id = @id
RETURNING id, org_id, qa_approval_rate, skill_score;

-- name: AssignmentSubmit :one
-- One annotator's copy of a job is submitted with its result.
UPDATE assignments SET status = 'completed', result_version_id = @result_version_id, submitted_at = now(), updated_at = now()
WHERE id = @id AND org_id = @org_id AND role = 'annotator' AND status IN ('assigned', 'accepted', 'in_progress')
RETURNING *;

-- name: AssignmentSetResult :exec
-- A job's result submitted through PATCH /v1/jobs/{id} is its live annotator's
-- copy's result.
UPDATE assignments SET result_version_id = @result_version_id, submitted_at = now(), updated_at = now()
WHERE id = @id AND org_id = @org_id;

-- name: AssignmentSubmittedCopies :many
-- A job's submitted copies, in the order they were assigned.
SELECT id, user_id, result_version_id::bigint AS result_version_id FROM assignments
WHERE job_id = @job_id AND org_id = @org_id AND role = 'annotator' AND status = 'completed' AND result_version_id IS NOT NULL
ORDER BY id;

-- name: AssignmentAnnotatorOfJob :one
-- Whose result a job's submitted result is: its live annotator, else the one who
-- completed it last.
SELECT id, user_id FROM assignments
WHERE job_id = @job_id AND org_id = @org_id AND role = 'annotator' AND status IN ('assigned', 'accepted', 'in_progress', 'completed')
ORDER BY (status = 'completed'), id DESC
LIMIT 1;

-- name: QualityByAnnotator :many
-- The project's quality report, one row per annotator with a submission.
SELECT s.user_id,
       count(*) FILTER (WHERE s.kind = 'gold' AND s.status = 'completed')::integer AS gold_seen,
       count(*) FILTER (WHERE s.kind = 'gold' AND s.status = 'completed' AND s.passed)::integer AS gold_passed,
       COALESCE(avg(s.score) FILTER (WHERE s.kind = 'gold' AND s.status = 'completed'), 0)::double precision AS gold_mean_score,
       count(*) FILTER (WHERE s.kind = 'peer' AND s.status = 'completed')::integer AS peer_scored,
       COALESCE(avg(s.score) FILTER (WHERE s.kind = 'peer' AND s.status = 'completed'), 0)::double precision AS peer_agreement,
       count(*) FILTER (WHERE s.status IN ('queued', 'processing'))::integer AS pending,
       count(*) FILTER (WHERE s.status = 'failed')::integer AS failed,
       u.qa_approval_rate, u.skill_score
FROM submissions s
JOIN users u ON u.id = s.user_id
WHERE s.project_id = @project_id AND s.org_id = @org_id
GROUP BY s.user_id, u.qa_approval_rate, u.skill_score
ORDER BY s.user_id;

-- name: QualityLeaderboard :many
-- Annotators by mean score over their completed submissions, best first
-- (score_tallies, kept as submissions complete).
SELECT user_id, rank() OVER (ORDER BY total / scored DESC)::integer AS rank,
       (total / scored)::double precision AS mean_score, scored
FROM score_tallies
WHERE project_id = @project_id AND org_id = @org_id AND scored > 0
ORDER BY rank, user_id
LIMIT @max_rows;

-- name: GoldAnswerPut :one
-- Sets a job's gold answer through labelq_gold_put (SECURITY DEFINER: the API
-- role cannot touch gold_answers itself); false when the job is not the
-- organization's.
SELECT labelq_gold_put(@job_id::bigint, @result::jsonb)::boolean AS found;

-- name: GoldAnswerDelete :one
-- Removes a job's gold answer through labelq_gold_delete; false when it had none.
SELECT labelq_gold_delete(@job_id::bigint)::boolean AS found;
