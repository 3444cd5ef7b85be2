package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/admin"
	"github.com/labelq/labelq/internal/api"
)

// scoped is a client of org A whose token has only the given scopes.
func (w *fixture) scoped(t *testing.T, scopes ...admin.Scope) client {
	t.Helper()
	tok, err := admin.CreateTokenWith(context.Background(), w.env.PG.Pool, "org-a", fmt.Sprint(scopes), admin.TokenOptions{Scopes: scopes})
	require.NoError(t, err)
	return client{t, w.server.URL, tok.Secret}
}

func pathOf(s seeded, rt api.Route) string {
	path := s.fill(rt.Path)
	if rt.Path == "/v1/events" {
		path += fmt.Sprintf("?entity_type=file_version&entity_id=%d", s.VersionID)
	}
	return path
}

// TestScopesOnEveryRoute walks the route table: a token lacking a route's scope is
// refused with a 403 naming the scope, one holding only that scope is let through.
func TestScopesOnEveryRoute(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	s := w.seed(t)
	only := map[admin.Scope]client{}
	for _, sc := range admin.AllScopes {
		only[sc] = w.scoped(t, sc)
	}
	for _, rt := range (&api.Server{}).Routes() {
		t.Run(rt.Method+" "+rt.Path, func(t *testing.T) {
			path := pathOf(s, rt)
			if rt.Scope == api.ScopeStorageSecret {
				// No token opens a route a bucket calls, whatever its scopes; the
				// storage's notification secret does.
				for sc, c := range only {
					r := c.do(rt.Method, path, validBody(rt))
					require.Equal(t, http.StatusUnauthorized, r.Status, "a %s token: %s", sc, r.Body)
					require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))
				}
				r := w.orgA.do(rt.Method, path, validBody(rt))
				require.Equal(t, http.StatusUnauthorized, r.Status, "a token of every scope: %s", r.Body)
				r = client{t, w.server.URL, s.StorageSecret}.do(rt.Method, path, validBody(rt))
				require.Equal(t, http.StatusOK, r.Status, "the storage's secret: %s", r.Body)
				return
			}
			require.Contains(t, admin.AllScopes, rt.Scope, "the route has no known scope")
			for sc, c := range only {
				if sc == rt.Scope {
					continue
				}
				r := c.do(rt.Method, path, validBody(rt))
				require.Equal(t, http.StatusForbidden, r.Status, "a %s token: %s", sc, r.Body)
				require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))
				var p struct{ Detail string }
				require.NoError(t, json.Unmarshal(r.Body, &p))
				require.Contains(t, p.Detail, fmt.Sprintf("%q scope", rt.Scope))
			}
			r := only[rt.Scope].do(rt.Method, path, validBody(rt))
			require.NotContains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, r.Status, "a %s token: %s", rt.Scope, r.Body)
			require.Less(t, r.Status, 500, "%s", r.Body)
		})
	}
}

// TestRefusedTokens: a revoked token, an expired one and one whose organization was
// deleted are all 401, while a fresh token of the same organization works.
func TestRefusedTokens(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	ctx := context.Background()
	mk := func(t *testing.T, org string, opts admin.TokenOptions) (admin.Token, client) {
		tok, err := admin.CreateTokenWith(ctx, w.env.PG.Pool, org, "t", opts)
		require.NoError(t, err)
		return tok, client{t, w.server.URL, tok.Secret}
	}
	refused := func(t *testing.T, c client, why string) {
		t.Helper()
		r := c.do("GET", "/v1/projects", nil)
		require.Equal(t, http.StatusUnauthorized, r.Status, "%s: %s", why, r.Body)
		require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))
		require.Contains(t, r.Header.Get("WWW-Authenticate"), "Bearer")
	}
	works := func(t *testing.T, c client, why string) {
		t.Helper()
		r := c.do("GET", "/v1/projects", nil)
		require.Equal(t, http.StatusOK, r.Status, "%s: %s", why, r.Body)
	}

	t.Run("revoked", func(t *testing.T) {
		tok, c := mk(t, "org-a", admin.TokenOptions{})
		works(t, c, "before revoking")
		_, err := admin.RevokeToken(ctx, w.env.PG.Pool, tok.TokenID)
		require.NoError(t, err)
		refused(t, c, "revoked")
		works(t, w.orgA, "another token of the organization")
	})
	t.Run("expired", func(t *testing.T) {
		tok, c := mk(t, "org-a", admin.TokenOptions{TTL: time.Hour})
		works(t, c, "before it expires")
		_, err := w.env.PG.Pool.Exec(ctx, "UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = $1", tok.TokenID)
		require.NoError(t, err)
		refused(t, c, "expired")
	})
	t.Run("deleted organization", func(t *testing.T) {
		tok, c := mk(t, "org-doomed", admin.TokenOptions{})
		works(t, c, "before the organization is deleted")
		_, err := w.env.PG.Pool.Exec(ctx, "UPDATE organizations SET deleted_at = now() WHERE id = $1", tok.OrgID)
		require.NoError(t, err)
		refused(t, c, "deleted organization")
		works(t, w.orgA, "another organization")
	})
}

// TestBearerSchemeIsCaseInsensitive (RFC 9110 11.1: auth schemes are case-insensitive).
func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	for _, scheme := range []string{"Bearer", "bearer", "BEARER", "bEaReR"} {
		c := client{t, w.server.URL, ""}
		r := c.do("GET", "/v1/projects", nil, "Authorization", scheme+" "+w.orgA.token)
		require.Equal(t, http.StatusOK, r.Status, "%s: %s", scheme, r.Body)
	}
	for _, h := range []string{"Basic " + w.orgA.token, w.orgA.token, "Bearer", "Bearer "} {
		c := client{t, w.server.URL, ""}
		r := c.do("GET", "/v1/projects", nil, "Authorization", h)
		require.Equal(t, http.StatusUnauthorized, r.Status, "%q: %s", h, r.Body)
	}
}
