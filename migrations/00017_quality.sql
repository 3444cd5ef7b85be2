-- Quality (issue 16): gold answers, overlap, submissions scored by job:score, and
-- the project settings that turn scores into the annotators' qa_approval_rate and
-- skill_score, which matching ranks by.
--
-- A gold answer is write-only through the API: gold_answers has no grant to
-- labelq_api at all (not even SELECT), so no query the API can run reads it, however
-- it is written. The API sets and removes one through two SECURITY DEFINER
-- functions that check the job belongs to the request's organization and return
-- nothing of the answer. Only workers (labelq_worker) read it: the scoring worker.

-- +goose Up
ALTER TYPE entity_type ADD VALUE IF NOT EXISTS 'submission';

ALTER TABLE projects
    -- Each job goes to this many distinct annotators.
    ADD COLUMN overlap integer NOT NULL DEFAULT 1 CONSTRAINT projects_overlap_check CHECK (overlap BETWEEN 1 AND 10),
    -- Share of each annotator's assignments that are gold jobs (honeypots).
    ADD COLUMN gold_rate double precision NOT NULL DEFAULT 0 CONSTRAINT projects_gold_rate_check CHECK (gold_rate BETWEEN 0 AND 1),
    -- Boxes and polygons match when their IoU is at least this.
    ADD COLUMN quality_iou_threshold double precision NOT NULL DEFAULT 0.5
        CONSTRAINT projects_quality_iou_threshold_check CHECK (quality_iou_threshold > 0 AND quality_iou_threshold <= 1),
    -- A gold submission passes when its score is at least this.
    ADD COLUMN quality_pass_threshold double precision NOT NULL DEFAULT 0.8
        CONSTRAINT projects_quality_pass_threshold_check CHECK (quality_pass_threshold BETWEEN 0 AND 1),
    -- The Beta prior of an annotator's QA rate: Beta(alpha, beta), default Beta(2, 2).
    ADD COLUMN quality_prior_alpha double precision NOT NULL DEFAULT 2 CONSTRAINT projects_quality_prior_alpha_check CHECK (quality_prior_alpha > 0),
    ADD COLUMN quality_prior_beta double precision NOT NULL DEFAULT 2 CONSTRAINT projects_quality_prior_beta_check CHECK (quality_prior_beta > 0);

-- Whether a job has a gold answer: the platform set it, so it may know; the
-- answer itself stays in gold_answers.
ALTER TABLE annotation_jobs ADD COLUMN gold boolean NOT NULL DEFAULT false;
CREATE INDEX annotation_jobs_gold_idx ON annotation_jobs (project_id) WHERE gold AND deleted_at IS NULL;

-- Under overlap a job has several live annotator assignments (one per copy), each
-- with its own result; a person still holds at most one live copy of a job.
ALTER TABLE assignments
    ADD COLUMN result_version_id bigint REFERENCES file_versions (id),
    ADD COLUMN submitted_at timestamptz;
DROP INDEX assignments_live_job_role_key;
CREATE UNIQUE INDEX assignments_live_job_role_user_key ON assignments (job_id, role, user_id)
    WHERE status IN ('assigned', 'accepted', 'in_progress');
-- Reviewers and QC stay one per job.
CREATE UNIQUE INDEX assignments_live_job_reviewer_key ON assignments (job_id, role)
    WHERE status IN ('assigned', 'accepted', 'in_progress') AND role <> 'annotator';
CREATE INDEX assignments_result_version_idx ON assignments (result_version_id) WHERE result_version_id IS NOT NULL;

CREATE TABLE gold_answers (
    job_id     bigint PRIMARY KEY,
    org_id     bigint NOT NULL,
    project_id bigint NOT NULL,
    -- Label Studio result JSON (a list of regions), checked against the
    -- project's label config when it was set.
    result     jsonb NOT NULL CONSTRAINT gold_answers_result_is_list CHECK (jsonb_typeof(result) = 'array'),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT gold_answers_job_fk FOREIGN KEY (job_id, org_id) REFERENCES annotation_jobs (id, org_id) ON DELETE CASCADE,
    CONSTRAINT gold_answers_project_fk FOREIGN KEY (project_id, org_id) REFERENCES projects (id, org_id) ON DELETE CASCADE
);

CREATE TYPE submission_status AS ENUM ('queued', 'processing', 'completed', 'failed');
CREATE TYPE submission_kind AS ENUM ('gold', 'peer');

-- One scoring of one annotator's result for a job: against the job's gold answer
-- (kind gold) or against the other annotators' results once every copy of the job
-- is in (kind peer).
CREATE TABLE submissions (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id            bigint NOT NULL,
    project_id        bigint NOT NULL,
    job_id            bigint NOT NULL,
    user_id           bigint NOT NULL,
    assignment_id     bigint REFERENCES assignments (id) ON DELETE SET NULL,
    result_version_id bigint NOT NULL REFERENCES file_versions (id),
    kind              submission_kind NOT NULL,
    status            submission_status NOT NULL DEFAULT 'queued',
    score             double precision CONSTRAINT submissions_score_check CHECK (score BETWEEN 0 AND 1),
    passed            boolean,
    metric            text,
    detail            jsonb,
    rank              integer CONSTRAINT submissions_rank_check CHECK (rank >= 1),
    reason            text,
    attempts          integer NOT NULL DEFAULT 0,
    scored_at         timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT submissions_once UNIQUE (job_id, user_id, result_version_id, kind),
    CONSTRAINT submissions_job_fk FOREIGN KEY (job_id, org_id) REFERENCES annotation_jobs (id, org_id) ON DELETE CASCADE,
    CONSTRAINT submissions_user_fk FOREIGN KEY (user_id, org_id) REFERENCES users (id, org_id),
    CONSTRAINT submissions_project_fk FOREIGN KEY (project_id, org_id) REFERENCES projects (id, org_id) ON DELETE CASCADE,
    CONSTRAINT submissions_completed_scored CHECK (status <> 'completed' OR (score IS NOT NULL AND scored_at IS NOT NULL)),
    CONSTRAINT submissions_failed_reason CHECK (status <> 'failed' OR reason IS NOT NULL)
);
CREATE INDEX submissions_project_user_idx ON submissions (project_id, user_id, kind) WHERE status = 'completed';
CREATE INDEX submissions_pending_idx ON submissions (updated_at) WHERE status IN ('queued', 'processing');
CREATE INDEX submissions_job_idx ON submissions (job_id);

-- +goose StatementBegin
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['gold_answers', 'submissions']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (org_id = labelq_current_org()) '
                       'WITH CHECK (org_id = labelq_current_org())', t);
    END LOOP;
END;
$$;
-- +goose StatementEnd

-- The default privileges granted the API role everything on the new table: take
-- it all back. The worker role keeps its grants.
REVOKE ALL ON gold_answers FROM labelq_api;
REVOKE ALL ON gold_answers FROM PUBLIC;

-- labelq_gold_put sets (or replaces) the gold answer of a job of the request's
-- organization and marks the job gold; false when there is no such job. It reads
-- nothing back.
-- +goose StatementBegin
CREATE FUNCTION labelq_gold_put(p_job_id bigint, p_result jsonb) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    j record;
BEGIN
    SELECT id, org_id, project_id INTO j FROM annotation_jobs
    WHERE id = p_job_id AND org_id = labelq_current_org() AND deleted_at IS NULL
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO gold_answers (job_id, org_id, project_id, result)
    VALUES (j.id, j.org_id, j.project_id, p_result)
    ON CONFLICT (job_id) DO UPDATE SET result = EXCLUDED.result, updated_at = now();
    UPDATE annotation_jobs SET gold = true, updated_at = now() WHERE id = j.id AND NOT gold;
    RETURN true;
END;
$$;
-- +goose StatementEnd

-- labelq_gold_delete removes a job's gold answer; false when the job is not the
-- organization's or had none.
-- +goose StatementBegin
CREATE FUNCTION labelq_gold_delete(p_job_id bigint) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    DELETE FROM gold_answers WHERE job_id = p_job_id AND org_id = labelq_current_org();
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE annotation_jobs SET gold = false, updated_at = now() WHERE id = p_job_id AND org_id = labelq_current_org();
    RETURN true;
END;
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION labelq_gold_put(bigint, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION labelq_gold_delete(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION labelq_gold_put(bigint, jsonb) TO labelq_api;
GRANT EXECUTE ON FUNCTION labelq_gold_delete(bigint) TO labelq_api;

-- +goose Down
DROP FUNCTION labelq_gold_delete(bigint);
DROP FUNCTION labelq_gold_put(bigint, jsonb);
DROP TABLE submissions;
DROP TYPE submission_kind;
DROP TYPE submission_status;
DROP TABLE gold_answers;
DROP INDEX assignments_result_version_idx;
DROP INDEX assignments_live_job_reviewer_key;
DROP INDEX assignments_live_job_role_user_key;
CREATE UNIQUE INDEX assignments_live_job_role_key ON assignments (job_id, role)
    WHERE status IN ('assigned', 'accepted', 'in_progress');
ALTER TABLE assignments DROP COLUMN submitted_at, DROP COLUMN result_version_id;
DROP INDEX annotation_jobs_gold_idx;
ALTER TABLE annotation_jobs DROP COLUMN gold;
ALTER TABLE projects
    DROP COLUMN quality_prior_beta, DROP COLUMN quality_prior_alpha, DROP COLUMN quality_pass_threshold,
    DROP COLUMN quality_iou_threshold, DROP COLUMN gold_rate, DROP COLUMN overlap;
