-- Each annotator's running total of completed submission scores per project,
-- kept in the transaction that completes a submission, so that a submission's
-- rank (1 + the annotators with a higher mean) reads one small row per
-- annotator instead of every completed submission of the project
-- (BenchmarkScore100k: that aggregate was three quarters of job:score's time,
-- growing with the project).

-- +goose Up
CREATE TABLE score_tallies (
    project_id bigint NOT NULL,
    user_id    bigint NOT NULL,
    org_id     bigint NOT NULL,
    scored     integer NOT NULL CONSTRAINT score_tallies_scored_check CHECK (scored >= 0),
    total      double precision NOT NULL CONSTRAINT score_tallies_total_check CHECK (total >= 0),
    PRIMARY KEY (project_id, user_id),
    CONSTRAINT score_tallies_project_fk FOREIGN KEY (project_id, org_id) REFERENCES projects (id, org_id) ON DELETE CASCADE,
    CONSTRAINT score_tallies_user_fk FOREIGN KEY (user_id, org_id) REFERENCES users (id, org_id)
);
ALTER TABLE score_tallies ENABLE ROW LEVEL SECURITY;
ALTER TABLE score_tallies FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON score_tallies USING (org_id = labelq_current_org())
    WITH CHECK (org_id = labelq_current_org());
INSERT INTO score_tallies (project_id, user_id, org_id, scored, total)
SELECT project_id, user_id, org_id, count(*), sum(score)
FROM submissions WHERE status = 'completed'
GROUP BY project_id, user_id, org_id;

-- +goose Down
DROP TABLE score_tallies;
