-- Users belong to one organization, and nothing of another organization's people
-- can be reached or probed through them (issue 13, item 6):
--
--   projects.our_pm_id referenced users (id) alone, so a project could name another
--   organization's user, and the error for a missing id told which ids exist. It now
--   references users (id, org_id), like client_pm_id, through the existing
--   users_id_org_key.
--   users.email was unique across all organizations, so creating a user told whether
--   another tenant employs that address, and took it from them. It is now unique
--   per organization (same comparison as before: the exact text).
--
-- Existing rows: a project whose our_pm_id names a user of another organization
-- (possible until now) loses that reference (our_pm_id becomes NULL) and gets an
-- event_log entry 'our_pm_cleared' with the old id, so the change is visible in
-- the project's history. A global unique key implies a per-organization one, so no
-- user row can violate the new key.

-- +goose Up
WITH cleared AS (
    UPDATE projects p SET our_pm_id = NULL
    FROM projects old
    WHERE old.id = p.id
      AND p.our_pm_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = p.our_pm_id AND u.org_id = p.org_id)
    RETURNING p.id, p.org_id, old.our_pm_id AS old_pm_id
)
INSERT INTO event_log (org_id, entity_type, entity_id, event_type, metadata)
SELECT org_id, 'project', id, 'our_pm_cleared',
       jsonb_build_object('our_pm_id', old_pm_id, 'reason', 'the user belongs to another organization')
FROM cleared;

ALTER TABLE projects DROP CONSTRAINT projects_our_pm_fk;
ALTER TABLE projects ADD CONSTRAINT projects_our_pm_fk
    FOREIGN KEY (our_pm_id, org_id) REFERENCES users (id, org_id);

ALTER TABLE users DROP CONSTRAINT users_email_key;
ALTER TABLE users ADD CONSTRAINT users_org_email_key UNIQUE (org_id, email);

-- +goose Down
-- Going back to one address per deployment fails, naming the address, when two
-- organizations now have a user with the same email: resolve that first.
-- +goose StatementBegin
DO $$
DECLARE
    dup text;
BEGIN
    SELECT email INTO dup FROM users GROUP BY email HAVING count(*) > 1 LIMIT 1;
    IF dup IS NOT NULL THEN
        RAISE EXCEPTION 'cannot restore users_email_key: % is the email of users in more than one organization; change or delete all but one first', dup;
    END IF;
END
$$;
-- +goose StatementEnd
ALTER TABLE users DROP CONSTRAINT users_org_email_key;
ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);

ALTER TABLE projects DROP CONSTRAINT projects_our_pm_fk;
ALTER TABLE projects ADD CONSTRAINT projects_our_pm_fk FOREIGN KEY (our_pm_id) REFERENCES users (id);
