package app

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/admin"
	"github.com/labelq/labelq/internal/testenv"
)

// TestAPIServesAsTheAPIRole: the API's requests go through the pool logged in as
// labelq_api_login, not the owner's or the workers' pool.
func TestAPIServesAsTheAPIRole(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	ctx := context.Background()
	a, err := New(ctx, env.Config(t, nil), testenv.Quiet())
	require.NoError(t, err)
	t.Cleanup(a.Close)
	require.Equal(t, testenv.APIRole, a.APIPool.Config().ConnConfig.User)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	tok, err := admin.CreateToken(ctx, env.PG.Pool, "acme", "t")
	require.NoError(t, err)

	before := a.Pool.Stat().AcquireCount()
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/v1/projects", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tok.Secret)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Positive(t, a.APIPool.Stat().AcquireCount())
	require.Equal(t, before, a.Pool.Stat().AcquireCount(), "the API used the workers' pool")
}

// TestOnlyTheAPIRoleNeedsItsLogin: a worker process never logs in as the API role,
// and an api process whose login is refused says which variable to fix.
func TestOnlyTheAPIRoleNeedsItsLogin(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	ctx := context.Background()
	bad := testenv.WithUser(env.PG.URL, "labelq_no_such_role")
	a, err := New(ctx, env.Config(t, map[string]string{"LABELQ_API_DATABASE_URL": bad}), testenv.Quiet())
	require.NoError(t, err, "New does not log in as the API role")
	t.Cleanup(a.Close)
	_, err = a.role(RoleWorker)
	require.NoError(t, err)
	_, err = a.role(RoleAPI)
	require.Error(t, err)
	require.Contains(t, err.Error(), "LABELQ_API_DATABASE_URL")
	require.Contains(t, err.Error(), "labelq_no_such_role")
}
