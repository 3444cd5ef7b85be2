package admin_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/admin"
	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/testenv"
)

func TestParseScopes(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		want []admin.Scope
	}{
		{"read", []admin.Scope{admin.ScopeRead}},
		{"read,upload", []admin.Scope{admin.ScopeRead, admin.ScopeUpload}},
		{" Manage , read,read", []admin.Scope{admin.ScopeManage, admin.ScopeRead}},
	} {
		got, err := admin.ParseScopes(c.in)
		require.NoError(t, err, c.in)
		require.Equal(t, c.want, got, c.in)
	}
	for _, in := range []string{"", ",", "write", "read,admin"} {
		_, err := admin.ParseScopes(in)
		require.Error(t, err, in)
		require.Contains(t, err.Error(), "read, upload, manage", in)
	}
}

func TestCreateListRevokeTokens(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	ctx := context.Background()

	all, err := admin.CreateToken(ctx, pg.Pool, "acme", "ci")
	require.NoError(t, err)
	require.Equal(t, admin.AllScopes, all.Scopes, "a token made without scopes keeps today's powers")
	require.Nil(t, all.ExpiresAt)

	up, err := admin.CreateTokenWith(ctx, pg.Pool, "acme", "uploader", admin.TokenOptions{Scopes: []admin.Scope{admin.ScopeUpload}, TTL: 720 * time.Hour})
	require.NoError(t, err)
	require.NotNil(t, up.ExpiresAt)
	require.WithinDuration(t, time.Now().Add(720*time.Hour), *up.ExpiresAt, time.Minute)

	other, err := admin.CreateToken(ctx, pg.Pool, "globex", "ci")
	require.NoError(t, err)

	_, err = admin.CreateTokenWith(ctx, pg.Pool, "acme", "bad", admin.TokenOptions{TTL: -time.Hour})
	require.Error(t, err)

	list, err := admin.ListTokens(ctx, pg.Pool, "")
	require.NoError(t, err)
	require.Len(t, list, 3)
	require.Equal(t, other.TokenID, list[0].ID, "newest first")
	require.Equal(t, "globex", list[0].OrgName)
	require.Equal(t, up.TokenID, list[1].ID)
	require.Equal(t, []string{"upload"}, list[1].Scopes)
	require.Equal(t, up.ExpiresAt.Unix(), list[1].ExpiresAt.Unix())
	require.Equal(t, []string{"read", "upload", "manage"}, list[2].Scopes)
	require.Nil(t, list[2].RevokedAt)

	acme, err := admin.ListTokens(ctx, pg.Pool, "acme")
	require.NoError(t, err)
	require.Len(t, acme, 2)

	at, err := admin.RevokeToken(ctx, pg.Pool, all.TokenID)
	require.NoError(t, err)
	again, err := admin.RevokeToken(ctx, pg.Pool, all.TokenID)
	require.NoError(t, err)
	require.True(t, at.Equal(again), "revoking twice keeps the first time")
	list, err = admin.ListTokens(ctx, pg.Pool, "acme")
	require.NoError(t, err)
	require.NotNil(t, list[1].RevokedAt)
	require.Nil(t, list[0].RevokedAt)

	_, err = admin.RevokeToken(ctx, pg.Pool, 999999)
	require.ErrorIs(t, err, admin.ErrTokenNotFound)
}

// TestOldTokensKeepEveryScope: rows made before scopes existed ('{}') were
// all-powerful; migrations/00008 gives them every scope instead of locking them out.
func TestOldTokensKeepEveryScope(t *testing.T) {
	t.Parallel()
	url := testenv.EmptyDatabase(t)
	ctx := context.Background()
	quiet := testenv.Quiet()
	require.NoError(t, database.MigrateUp(ctx, url, quiet))
	st, err := database.MigrationStatus(ctx, url)
	require.NoError(t, err)
	steps := 0 // down to just before 00008, whatever later migrations exist
	for _, line := range st {
		if f := strings.Fields(line); len(f) == 2 && f[1] >= "00008" {
			steps++
		}
	}
	require.Positive(t, steps)
	require.NoError(t, database.MigrateDown(ctx, url, steps, quiet))

	pool, err := database.Open(ctx, url, 2)
	require.NoError(t, err)
	defer pool.Close()
	var orgID int64
	require.NoError(t, pool.QueryRow(ctx, "INSERT INTO organizations (name) VALUES ('old') RETURNING id").Scan(&orgID))
	_, hash := admin.NewToken()
	var scopes []string
	require.NoError(t, pool.QueryRow(ctx, "INSERT INTO api_tokens (org_id, name, token_hash) VALUES ($1, 'old', $2) RETURNING scopes", orgID, hash).Scan(&scopes))
	require.Empty(t, scopes, "a token as made before 00008")

	require.NoError(t, database.MigrateUp(ctx, url, quiet))
	pool.Reset() // the table changed under the pool's cached statements
	list, err := admin.ListTokens(ctx, pool, "old")
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, []string{"read", "upload", "manage"}, list[0].Scopes)
}
