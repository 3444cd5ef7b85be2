-- Consensus and agreement (issue 16): a project:consensus run reads every job's
-- submitted copies (two or more annotators under overlap), measures how they
-- agree (per job, per control and per project: Cohen's κ, Fleiss' κ,
-- Krippendorff's α, the annotator × annotator matrix) and writes each job's
-- consensus result as a version of the job's "<name>.consensus.json" file
-- (annotation_results, generation_method 'consensus'), which an export packs
-- with include_consensus.

-- +goose Up
ALTER TYPE generation_method ADD VALUE IF NOT EXISTS 'consensus';

-- The job's latest consensus and how it was reached.
CREATE TABLE consensus_results (
    job_id      bigint PRIMARY KEY,
    org_id      bigint NOT NULL,
    project_id  bigint NOT NULL,
    -- The consensus result (Label Studio JSON) as a version; validation checks
    -- it like any result.
    version_id  bigint NOT NULL REFERENCES file_versions (id),
    copies      integer NOT NULL CONSTRAINT consensus_results_copies_check CHECK (copies >= 2),
    -- Mean score of every two copies against each other (internal/quality.Score), 0..1.
    agreement   double precision NOT NULL CONSTRAINT consensus_results_agreement_check CHECK (agreement BETWEEN 0 AND 1),
    -- Per choices control: the majority label and share, the Dawid–Skene label and
    -- posterior; the copy the other controls were taken from.
    detail      jsonb NOT NULL,
    run_id      text NOT NULL,
    computed_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT consensus_results_job_fk FOREIGN KEY (job_id, org_id) REFERENCES annotation_jobs (id, org_id) ON DELETE CASCADE,
    CONSTRAINT consensus_results_project_fk FOREIGN KEY (project_id, org_id) REFERENCES projects (id, org_id) ON DELETE CASCADE
);
CREATE INDEX consensus_results_project_idx ON consensus_results (project_id, job_id);

-- A project's latest agreement report.
CREATE TABLE project_agreement (
    project_id  bigint PRIMARY KEY,
    org_id      bigint NOT NULL,
    run_id      text NOT NULL,
    jobs        integer NOT NULL,
    report      jsonb NOT NULL,
    computed_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT project_agreement_project_fk FOREIGN KEY (project_id, org_id) REFERENCES projects (id, org_id) ON DELETE CASCADE
);

-- +goose StatementBegin
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['consensus_results', 'project_agreement']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (org_id = labelq_current_org()) '
                       'WITH CHECK (org_id = labelq_current_org())', t);
    END LOOP;
END;
$$;
-- +goose StatementEnd

-- +goose Down
DROP TABLE project_agreement;
DROP TABLE consensus_results;
-- generation_method keeps 'consensus': PostgreSQL cannot drop an enum value.
