-- Least-privilege login roles, and API tokens with scopes and an expiry.
--
-- Until now every process logged in as the migrating role (a superuser in
-- development), and row-level security rested on SET LOCAL ROLE labelq_api: one
-- RESET ROLE in a future bug and a request ran as superuser. Now:
--
--   labelq_api_login  the API process's login: a member of labelq_api, NOSUPERUSER
--                     NOBYPASSRLS, so after any RESET ROLE it is still under the
--                     tenant policies; a short statement and lock timeout.
--   labelq_worker     workers, scheduler, relay and reconciler: they work across
--                     organizations by design (no labelq.org_id is set), so the role
--                     has BYPASSRLS, but it is no superuser and owns nothing: row
--                     reads and writes on the tables, no DDL, no TRUNCATE, no access
--                     to goose's version table.
--
-- The migrating role keeps owning the schema. FORCE ROW LEVEL SECURITY makes the
-- policies bind a non-superuser owner too.
--
-- Roles are cluster-wide: they are created when missing, changed only when they
-- differ (parallel migrations of other databases on the same server may be doing the
-- same), and never dropped by Down, since other databases may still use them. The
-- roles have no password: set one with ALTER ROLE … PASSWORD where Postgres asks
-- for one.

-- +goose Up
-- +goose StatementBegin
DO $$
BEGIN
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'labelq_api_login') THEN
            CREATE ROLE labelq_api_login LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION INHERIT;
        END IF;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL; -- another database's migration created it at the same moment
    END;
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'labelq_worker') THEN
            CREATE ROLE labelq_worker LOGIN NOSUPERUSER BYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION;
        END IF;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL;
    END;
    BEGIN
        IF NOT pg_has_role('labelq_api_login', 'labelq_api', 'MEMBER') THEN
            GRANT labelq_api TO labelq_api_login;
        END IF;
    EXCEPTION WHEN unique_violation THEN
        NULL;
    END;
END;
$$;
-- +goose StatementEnd

-- Per-role timeouts: an API request never waits long on a lock or runs a long
-- statement; workers (exports, matching) may, but not forever.
-- +goose StatementBegin
DO $$
DECLARE
    s record;
BEGIN
    FOR s IN SELECT * FROM (VALUES
        ('labelq_api_login', 'statement_timeout', '30s'),
        ('labelq_api_login', 'lock_timeout', '5s'),
        ('labelq_api_login', 'idle_in_transaction_session_timeout', '60s'),
        ('labelq_worker', 'statement_timeout', '15min'),
        ('labelq_worker', 'lock_timeout', '30s'),
        ('labelq_worker', 'idle_in_transaction_session_timeout', '15min')) AS v (role, name, value)
    LOOP
        IF NOT EXISTS (
            SELECT 1 FROM pg_db_role_setting d JOIN pg_roles r ON r.oid = d.setrole
            WHERE r.rolname = s.role AND d.setdatabase = 0 AND s.name || '=' || s.value = ANY (d.setconfig)
        ) THEN
            EXECUTE format('ALTER ROLE %I SET %I = %L', s.role, s.name, s.value);
        END IF;
    END LOOP;
END;
$$;
-- +goose StatementEnd

-- The promise the API's isolation rests on: fail the migration, not the tenant.
-- +goose StatementBegin
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT rolname, rolsuper, rolbypassrls FROM pg_roles
             WHERE rolname IN ('labelq_api', 'labelq_api_login', 'labelq_worker')
    LOOP
        IF r.rolsuper THEN
            RAISE EXCEPTION 'role % is a superuser; labelq needs it NOSUPERUSER (ALTER ROLE % NOSUPERUSER)', r.rolname, r.rolname;
        END IF;
        IF r.rolbypassrls AND r.rolname <> 'labelq_worker' THEN
            RAISE EXCEPTION 'role % bypasses row-level security; labelq needs it NOBYPASSRLS (ALTER ROLE % NOBYPASSRLS)', r.rolname, r.rolname;
        END IF;
    END LOOP;
END;
$$;
-- +goose StatementEnd

GRANT USAGE ON SCHEMA public TO labelq_worker;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO labelq_worker;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO labelq_worker;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO labelq_worker;
-- Later migrations' tables reach both roles (labelq_api has had this since 00002).
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO labelq_worker;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO labelq_worker;
-- Only migrations touch goose's bookkeeping.
REVOKE ALL ON goose_db_version FROM labelq_api, labelq_worker;

-- Every table with row-level security (00002's and any later migration's so far)
-- binds its owner too, unless the owner is a superuser.
-- +goose StatementBegin
DO $$
DECLARE
    t text;
BEGIN
    FOR t IN SELECT relname FROM pg_class
             WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' AND relrowsecurity AND NOT relforcerowsecurity
    LOOP
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    END LOOP;
END;
$$;
-- +goose StatementEnd

-- Tokens: scopes are enforced and tokens may expire. Scopes are independent
-- (read: GET routes; upload: files and versions; manage: projects, people, matching,
-- exports), so an upload endpoint's token need not read anything. Tokens made before
-- scopes existed were all-powerful; they keep every scope rather than stop working.
ALTER TABLE api_tokens ADD COLUMN expires_at timestamptz;
UPDATE api_tokens SET scopes = '{read,upload,manage}' WHERE scopes = '{}';
ALTER TABLE api_tokens ALTER COLUMN scopes SET DEFAULT '{read,upload,manage}';
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_scopes_known
    CHECK (cardinality(scopes) > 0 AND scopes <@ '{read,upload,manage}');

-- Authentication happens before the caller's organization is known, so under RLS
-- the API role cannot see api_tokens at all: this function (owned by the migrating
-- role, called by the API) finds the one live token with the hash, refusing revoked
-- and expired tokens and those of a deleted organization, and touches last_used_at
-- at most once a minute.
-- +goose StatementBegin
CREATE FUNCTION labelq_token_authenticate(hash bytea)
RETURNS TABLE (id bigint, org_id bigint, scopes text[])
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    WITH t AS (
        SELECT api_tokens.id, api_tokens.org_id, api_tokens.scopes, api_tokens.last_used_at
        FROM api_tokens JOIN organizations o ON o.id = api_tokens.org_id
        WHERE api_tokens.token_hash = hash AND api_tokens.revoked_at IS NULL
          AND (api_tokens.expires_at IS NULL OR api_tokens.expires_at > now())
          AND o.deleted_at IS NULL
    ), touched AS (
        UPDATE api_tokens a SET last_used_at = now()
        FROM t
        WHERE a.id = t.id AND (t.last_used_at IS NULL OR t.last_used_at < now() - interval '1 minute')
    )
    SELECT t.id, t.org_id, t.scopes FROM t
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION labelq_token_authenticate(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION labelq_token_authenticate(bytea) TO labelq_api;

-- +goose Down
DROP FUNCTION labelq_token_authenticate(bytea);
ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_scopes_known;
ALTER TABLE api_tokens ALTER COLUMN scopes SET DEFAULT '{}';
UPDATE api_tokens SET scopes = '{}' WHERE scopes = '{read,upload,manage}';
ALTER TABLE api_tokens DROP COLUMN expires_at;

-- +goose StatementBegin
DO $$
DECLARE
    t text;
BEGIN
    FOR t IN SELECT relname FROM pg_class
             WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' AND relforcerowsecurity
    LOOP
        EXECUTE format('ALTER TABLE %I NO FORCE ROW LEVEL SECURITY', t);
    END LOOP;
END;
$$;
-- +goose StatementEnd

GRANT SELECT, INSERT, UPDATE, DELETE ON goose_db_version TO labelq_api;
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM labelq_worker;
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM labelq_worker;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM labelq_worker;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM labelq_worker;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM labelq_worker;
REVOKE ALL ON SCHEMA public FROM labelq_worker;
