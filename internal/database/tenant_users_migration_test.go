package database_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/testenv"
)

// Migration 00007 scopes users to their organization: a project naming another
// organization's user as its PM (allowed until then) loses the reference, with an
// event saying so; emails become unique per organization; Down refuses, naming
// the email, while two organizations share one.
func TestMigration00007ScopesUsersToTheirOrganization(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testenv.EmptyDatabase(t)
	require.NoError(t, database.MigrateUp(ctx, url, quiet))
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	version := func() int64 {
		var v int64
		require.NoError(t, conn.QueryRow(ctx, `SELECT max(version_id) FROM goose_db_version WHERE is_applied`).Scan(&v))
		return v
	}
	for version() >= 7 {
		require.NoError(t, database.MigrateDown(ctx, url, 1, quiet))
	}

	var orgA, orgB, userA, userB, projOK, projBad int64
	require.NoError(t, conn.QueryRow(ctx, `INSERT INTO organizations (name) VALUES ('mig-a') RETURNING id`).Scan(&orgA))
	require.NoError(t, conn.QueryRow(ctx, `INSERT INTO organizations (name) VALUES ('mig-b') RETURNING id`).Scan(&orgB))
	require.NoError(t, conn.QueryRow(ctx, `INSERT INTO users (org_id, email, role) VALUES ($1, 'pm@a.test', 'our_pm') RETURNING id`, orgA).Scan(&userA))
	require.NoError(t, conn.QueryRow(ctx, `INSERT INTO users (org_id, email, role) VALUES ($1, 'pm@b.test', 'our_pm') RETURNING id`, orgB).Scan(&userB))
	require.NoError(t, conn.QueryRow(ctx, `INSERT INTO projects (org_id, name, our_pm_id) VALUES ($1, 'ok', $2) RETURNING id`, orgA, userA).Scan(&projOK))
	require.NoError(t, conn.QueryRow(ctx, `INSERT INTO projects (org_id, name, our_pm_id) VALUES ($1, 'bad', $2) RETURNING id`, orgA, userB).Scan(&projBad),
		"before 00007 a project could name another organization's user")

	require.NoError(t, database.MigrateUp(ctx, url, quiet))
	var pm *int64
	require.NoError(t, conn.QueryRow(ctx, `SELECT our_pm_id FROM projects WHERE id = $1`, projOK).Scan(&pm))
	require.Equal(t, userA, *pm, "a PM of the project's own organization is kept")
	require.NoError(t, conn.QueryRow(ctx, `SELECT our_pm_id FROM projects WHERE id = $1`, projBad).Scan(&pm))
	require.Nil(t, pm, "a PM of another organization is cleared")
	var meta map[string]any
	require.NoError(t, conn.QueryRow(ctx, `SELECT metadata FROM event_log WHERE org_id = $1 AND entity_type = 'project' AND entity_id = $2 AND event_type = 'our_pm_cleared'`,
		orgA, projBad).Scan(&meta))
	require.Equal(t, float64(userB), meta["our_pm_id"])

	_, err = conn.Exec(ctx, `UPDATE projects SET our_pm_id = $1 WHERE id = $2`, userB, projBad)
	require.Equal(t, "projects_our_pm_fk", database.ConstraintViolation(err), "%v", err)
	_, err = conn.Exec(ctx, `INSERT INTO users (org_id, email, role) VALUES ($1, 'pm@a.test', 'annotator')`, orgB)
	require.NoError(t, err, "the same email in another organization")
	_, err = conn.Exec(ctx, `INSERT INTO users (org_id, email, role) VALUES ($1, 'pm@a.test', 'annotator')`, orgA)
	require.Equal(t, "users_org_email_key", database.ConstraintViolation(err), "%v", err)

	// Down while two organizations share an email: refused, naming it.
	for version() > 7 {
		require.NoError(t, database.MigrateDown(ctx, url, 1, quiet))
	}
	err = database.MigrateDown(ctx, url, 1, quiet)
	require.ErrorContains(t, err, "pm@a.test is the email of users in more than one organization")
	require.Equal(t, int64(7), version())
	_, err = conn.Exec(ctx, `DELETE FROM users WHERE org_id = $1 AND email = 'pm@a.test'`, orgB)
	require.NoError(t, err)
	require.NoError(t, database.MigrateDown(ctx, url, 1, quiet))
	require.Less(t, version(), int64(7))
}
