-- +goose Up
-- Why an assignment was revoked, when labelq revoked it and not a person: the hard
-- matching rule the holder broke after the job's attributes changed (PATCH
-- /v1/jobs/{id} set a language they are below the project's minimum in). A person's
-- revoke (POST /v1/assignments/{id}/revoke) leaves it NULL and bars the holder from
-- the job for good (job_previous_annotators for annotators, the revoked row itself
-- for reviewers); a rule's revoke bars nobody: once the rule allows the person
-- again (the language changes back), matching may choose them again.
ALTER TABLE assignments ADD COLUMN revoked_rule text
    CHECK (revoked_rule IN ('language'));
ALTER TABLE assignments ADD CONSTRAINT assignments_revoked_rule_is_revoked
    CHECK (revoked_rule IS NULL OR status = 'revoked');

-- +goose Down
ALTER TABLE assignments DROP CONSTRAINT assignments_revoked_rule_is_revoked;
ALTER TABLE assignments DROP COLUMN revoked_rule;
