-- name: JobPreviousAnnotatorAdd :exec
INSERT INTO job_previous_annotators (job_id, user_id, org_id)
VALUES (@job_id, @user_id, @org_id)
ON CONFLICT (job_id, user_id) DO NOTHING;
