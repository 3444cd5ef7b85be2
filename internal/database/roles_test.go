package database_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/testenv"
)

// twoOrgs makes two organizations with a project each, as the owner, and returns
// their ids.
func twoOrgs(t *testing.T, pg *testenv.PG) (a, b int64) {
	t.Helper()
	ctx := context.Background()
	for i, name := range []string{"org-a", "org-b"} {
		var id int64
		require.NoError(t, pg.Pool.QueryRow(ctx, "INSERT INTO organizations (name) VALUES ($1) RETURNING id", name).Scan(&id))
		_, err := pg.Pool.Exec(ctx, "INSERT INTO projects (org_id, name) VALUES ($1, $2)", id, "project-of-"+name)
		require.NoError(t, err)
		if i == 0 {
			a = id
		} else {
			b = id
		}
	}
	return a, b
}

// TestAPIRoleCannotLeaveRowLevelSecurity runs the escapes a bug (or an injected
// statement) could try inside an API request's tenant transaction, as the API's
// login role: none of them shows another organization's rows.
func TestAPIRoleCannotLeaveRowLevelSecurity(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	orgA, orgB := twoOrgs(t, pg)
	ctx := context.Background()
	// On the owner's pool (pg.Pool, what the API used before migrations/00008) every
	// subtest but row_security fails.
	pool := pg.APIPool

	for _, escape := range []string{"RESET ROLE", "SET ROLE postgres", "SET SESSION AUTHORIZATION postgres",
		"SET LOCAL ROLE NONE", "SET row_security = off", "RESET ALL"} {
		t.Run(escape, func(t *testing.T) {
			var seen []int64
			err := database.TenantTx(ctx, pool, orgB, func(_ *db.Queries, tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, "SAVEPOINT escape"); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, escape); err != nil {
					// Refused outright is fine; carry on as the transaction's role.
					if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT escape"); err != nil {
						return err
					}
				}
				rows, err := tx.Query(ctx, "SELECT org_id FROM projects")
				if err != nil {
					return err
				}
				seen, err = pgx.CollectRows(rows, pgx.RowTo[int64])
				return err
			})
			if err != nil {
				// An error is no leak (row_security = off errors once a policy applies).
				require.NotContains(t, seen, orgA)
				return
			}
			require.NotContains(t, seen, orgA, "after %s the API role reads org A's projects", escape)
		})
	}

	t.Run("no organization set", func(t *testing.T) {
		var n int
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM projects").Scan(&n))
		require.Zero(t, n, "without labelq.org_id the API role reads projects")
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM api_tokens").Scan(&n))
		require.Zero(t, n)
	})
}

// TestRoleAttributes checks what the migration promises of its roles.
func TestRoleAttributes(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	ctx := context.Background()
	type attrs struct {
		Super, BypassRLS, CreateDB, CreateRole, Login bool
	}
	get := func(role string) attrs {
		var a attrs
		require.NoError(t, pg.Pool.QueryRow(ctx,
			"SELECT rolsuper, rolbypassrls, rolcreatedb, rolcreaterole, rolcanlogin FROM pg_roles WHERE rolname = $1", role,
		).Scan(&a.Super, &a.BypassRLS, &a.CreateDB, &a.CreateRole, &a.Login), role)
		return a
	}
	require.Equal(t, attrs{}, get("labelq_api"))
	require.Equal(t, attrs{Login: true}, get("labelq_api_login"))
	require.Equal(t, attrs{Login: true, BypassRLS: true}, get("labelq_worker"))

	var member bool
	require.NoError(t, pg.Pool.QueryRow(ctx, "SELECT pg_has_role('labelq_api_login', 'labelq_api', 'MEMBER')").Scan(&member))
	require.True(t, member)

	var who string
	require.NoError(t, pg.APIPool.QueryRow(ctx, "SELECT session_user").Scan(&who))
	require.Equal(t, testenv.APIRole, who, "testenv's API pool logs in as the API role")
}

// TestMigrationRefusesPrivilegedAPIRole runs the migration's assertion with the API
// login role made BYPASSRLS (in a transaction rolled back, so no other database sees
// it): the migration must stop.
func TestMigrationRefusesPrivilegedAPIRole(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	ctx := context.Background()
	raw, err := os.ReadFile("../../migrations/00008_least_privilege_roles.sql")
	require.NoError(t, err)
	_, after, ok := strings.Cut(string(raw), "-- The promise the API's isolation rests on")
	require.True(t, ok)
	_, block, ok := strings.Cut(after, "-- +goose StatementBegin")
	require.True(t, ok)
	block, _, ok = strings.Cut(block, "-- +goose StatementEnd")
	require.True(t, ok)

	for _, change := range []string{"ALTER ROLE labelq_api_login BYPASSRLS", "ALTER ROLE labelq_api SUPERUSER", "ALTER ROLE labelq_api_login SUPERUSER"} {
		t.Run(change, func(t *testing.T) {
			tx, err := pg.Pool.Begin(ctx)
			require.NoError(t, err)
			defer func() { _ = tx.Rollback(ctx) }()
			_, err = tx.Exec(ctx, "SET LOCAL lock_timeout = '10s'")
			require.NoError(t, err)
			_, err = tx.Exec(ctx, block)
			require.NoError(t, err, "the assertion passes on the roles as migrated")
			_, err = tx.Exec(ctx, change)
			require.NoError(t, err)
			_, err = tx.Exec(ctx, block)
			require.Error(t, err)
			require.Regexp(t, "labelq needs it NO(SUPERUSER|BYPASSRLS)", err.Error())
		})
	}
}

func TestRoleTimeouts(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	ctx := context.Background()
	worker, err := pgxpool.New(ctx, testenv.WithUser(pg.URL, "labelq_worker"))
	require.NoError(t, err)
	defer worker.Close()
	for _, c := range []struct {
		pool                *pgxpool.Pool
		name, setting, want string
	}{
		{pg.APIPool, "api", "statement_timeout", "30s"},
		{pg.APIPool, "api", "lock_timeout", "5s"},
		{pg.APIPool, "api", "idle_in_transaction_session_timeout", "1min"},
		{worker, "worker", "statement_timeout", "15min"},
		{worker, "worker", "lock_timeout", "30s"},
	} {
		var got string
		require.NoError(t, c.pool.QueryRow(ctx, "SHOW "+c.setting).Scan(&got))
		require.Equal(t, c.want, got, "%s %s", c.name, c.setting)
	}
	// The API's tenant transactions keep the login role's timeouts.
	var got string
	require.NoError(t, database.TenantTx(ctx, pg.APIPool, 1, func(_ *db.Queries, tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SHOW statement_timeout").Scan(&got)
	}))
	require.Equal(t, "30s", got)
}

// TestWorkerRole shows the workers' role reads and writes every organization's rows
// (they run without an organization) and nothing more: no DDL, no TRUNCATE, no
// migration bookkeeping.
func TestWorkerRole(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	orgA, orgB := twoOrgs(t, pg)
	ctx := context.Background()
	worker, err := pgxpool.New(ctx, testenv.WithUser(pg.URL, "labelq_worker"))
	require.NoError(t, err)
	defer worker.Close()

	rows, err := worker.Query(ctx, "SELECT org_id FROM projects ORDER BY org_id")
	require.NoError(t, err)
	seen, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	require.Equal(t, []int64{orgA, orgB}, seen)
	_, err = worker.Exec(ctx, "UPDATE projects SET description = 'touched'")
	require.NoError(t, err)

	var missing []string
	rows, err = worker.Query(ctx, `SELECT relname FROM pg_class
		WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' AND relname <> 'goose_db_version'
		  AND NOT has_table_privilege('labelq_worker', oid, 'SELECT, INSERT, UPDATE, DELETE')`)
	require.NoError(t, err)
	missing, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Empty(t, missing, "tables the worker role cannot fully use")

	for _, stmt := range []string{
		"CREATE TABLE smuggled (id int)",
		"TRUNCATE projects CASCADE",
		"SELECT count(*) FROM goose_db_version",
		"ALTER TABLE projects DISABLE ROW LEVEL SECURITY",
		"SET ROLE postgres",
	} {
		_, err := worker.Exec(ctx, stmt)
		require.Error(t, err, stmt)
		require.Regexp(t, "permission denied|must be owner", err.Error(), stmt)
	}
}

// TestEveryTenantTableForcesRowLevelSecurity: a table that holds an organization's
// rows (it has an org_id column, or is organizations itself) has row-level security
// enabled and forced, so a migration that adds one and forgets its policy fails here
// rather than opening the table to every tenant through the API role.
func TestEveryTenantTableForcesRowLevelSecurity(t *testing.T) {
	pg := testenv.Postgres(t)
	rows, err := pg.Pool.Query(context.Background(), `
SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity
FROM pg_class c
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
  AND (c.relname = 'organizations' OR EXISTS (
      SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'org_id' AND NOT a.attisdropped))
ORDER BY 1`)
	require.NoError(t, err)
	type table struct {
		name           string
		enabled, force bool
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (table, error) {
		var tb table
		return tb, r.Scan(&tb.name, &tb.enabled, &tb.force)
	})
	require.NoError(t, err)
	require.Greater(t, len(tables), 10, "the query found too few tenant tables to mean anything")
	for _, tb := range tables {
		require.True(t, tb.enabled && tb.force, "table %s holds an organization's rows but row-level security is enabled=%v forced=%v: enable and force it in its migration with the org_id policy of 00002", tb.name, tb.enabled, tb.force)
	}
}
