-- Row-level security: the second wall behind the API's own org scoping.
--
-- The API runs each request's transaction as role labelq_api with
-- labelq.org_id set (SET LOCAL ROLE / set_config(..., true)); the policies then hide
-- every other organization's rows even from a query that forgets its WHERE org_id.
-- Workers connect as the owning role, which RLS does not apply to.
--
-- Roles are cluster-wide, so the role is created if missing and never dropped here:
-- other databases on the same server (parallel test databases) may still use it.

-- +goose Up
-- +goose StatementBegin
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'labelq_api') THEN
        CREATE ROLE labelq_api NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL; -- another database's migration created it at the same moment
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION labelq_current_org() RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT NULLIF(current_setting('labelq.org_id', true), '')::bigint
$$;
-- +goose StatementEnd

GRANT USAGE ON SCHEMA public TO labelq_api;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO labelq_api;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO labelq_api;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO labelq_api;
-- Tables later migrations create reach the API role too.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO labelq_api;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO labelq_api;

-- +goose StatementBegin
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['users', 'api_tokens', 'projects', 'files', 'file_versions', 'annotation_jobs',
        'assignments', 'job_previous_annotators', 'reviews', 'llm_runs', 'export_schedules', 'export_logs',
        'exported_files', 'event_log', 'idempotency_keys']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (org_id = labelq_current_org()) '
                       'WITH CHECK (org_id = labelq_current_org())', t);
    END LOOP;
    ALTER TABLE organizations ENABLE ROW LEVEL SECURITY;
    CREATE POLICY tenant_isolation ON organizations USING (id = labelq_current_org());
    -- The outbox is written by API transactions for their own org only.
    ALTER TABLE outbox ENABLE ROW LEVEL SECURITY;
    CREATE POLICY tenant_isolation ON outbox USING (org_id = labelq_current_org())
        WITH CHECK (org_id = labelq_current_org());
END;
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['organizations', 'outbox', 'users', 'api_tokens', 'projects', 'files',
        'file_versions', 'annotation_jobs', 'assignments', 'job_previous_annotators', 'reviews', 'llm_runs',
        'export_schedules', 'export_logs', 'exported_files', 'event_log', 'idempotency_keys']
    LOOP
        EXECUTE format('DROP POLICY tenant_isolation ON %I', t);
        EXECUTE format('ALTER TABLE %I DISABLE ROW LEVEL SECURITY', t);
    END LOOP;
END;
$$;
-- +goose StatementEnd
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM labelq_api;
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM labelq_api;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM labelq_api;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM labelq_api;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM labelq_api;
REVOKE ALL ON SCHEMA public FROM labelq_api;
DROP FUNCTION labelq_current_org();
