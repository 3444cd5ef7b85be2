package database_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/testenv"
)

var quiet = testenv.Quiet()

// schemaOf describes everything a migration can create, one sorted line per object,
// so two states of a database compare as text.
func schemaOf(t *testing.T, url string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	const q = `
SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '') || ' ' || is_generated
  FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
  FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL SELECT 'trigger ' || tgrelid::regclass || ' ' || tgname FROM pg_trigger WHERE NOT tgisinternal
UNION ALL SELECT 'policy ' || tablename || ' ' || policyname || ' ' || coalesce(qual, '') || ' ' || coalesce(with_check, '') FROM pg_policies
UNION ALL SELECT 'rls ' || relname || ' ' || relrowsecurity || ' force ' || relforcerowsecurity FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'
UNION ALL SELECT 'function ' || p.oid::regprocedure || ' ' || md5(pg_get_functiondef(p.oid)) FROM pg_proc p WHERE pronamespace = 'public'::regnamespace
UNION ALL SELECT 'enum ' || t.typname || ' ' || string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
  FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid GROUP BY t.typname
UNION ALL SELECT 'grant ' || grantee || ' ' || table_name || ' ' || privilege_type FROM information_schema.role_table_grants WHERE grantee IN ('labelq_api', 'labelq_worker')
ORDER BY 1`
	rows, err := conn.Query(ctx, q)
	require.NoError(t, err)
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return strings.Join(lines, "\n")
}

func TestMigrationsUpDownUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testenv.EmptyDatabase(t)

	require.NoError(t, database.MigrateUp(ctx, url, quiet))
	first := schemaOf(t, url)
	require.Contains(t, first, "column file_versions.checksum text")
	require.Contains(t, first, "policy projects tenant_isolation")

	require.NoError(t, database.MigrateDown(ctx, url, 0, quiet))
	empty := schemaOf(t, url)
	// Only goose's own version table may remain.
	for _, line := range strings.Split(empty, "\n") {
		if line != "" {
			require.Contains(t, line, "goose_db_version", "left behind after migrate down: %s", line)
		}
	}

	require.NoError(t, database.MigrateUp(ctx, url, quiet))
	require.Equal(t, first, schemaOf(t, url), "schema after down+up differs from the first up")

	// Step-by-step down and up exercises each down step on its own.
	st, err := database.MigrationStatus(ctx, url)
	require.NoError(t, err)
	for range st {
		require.NoError(t, database.MigrateDown(ctx, url, 1, quiet))
	}
	require.NoError(t, database.MigrateUp(ctx, url, quiet))
	require.Equal(t, first, schemaOf(t, url))
}

func TestEnsureDatabaseCreatesMissing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testenv.EmptyDatabase(t)
	// Drop it again so EnsureDatabase has to create it.
	admin, err := pgx.Connect(ctx, testenv.AdminURL())
	require.NoError(t, err)
	defer admin.Close(ctx)
	cfg, err := pgx.ParseConfig(url)
	require.NoError(t, err)
	_, err = admin.Exec(ctx, "DROP DATABASE "+cfg.Database)
	require.NoError(t, err)

	require.NoError(t, database.EnsureDatabase(ctx, url))
	require.NoError(t, database.EnsureDatabase(ctx, url), "a second call must be a no-op")
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	require.NoError(t, conn.Close(ctx))
}
