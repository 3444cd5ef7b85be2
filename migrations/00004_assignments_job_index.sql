-- +goose Up
-- project:match looks up every open job's assignments (its annotator, who may not
-- review it) by job_id, in every status. The only index on job_id was the partial
-- one for live assignments, so each lookup scanned the table: with 42,000 jobs and
-- 62,000 assignments (make load), AnnotationJobListNeedingReviewer took 68 s per
-- run; with this index, 0.14 s.
CREATE INDEX assignments_job_idx ON assignments (job_id, role);

-- +goose Down
DROP INDEX assignments_job_idx;
