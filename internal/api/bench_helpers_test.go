package api_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/admin"
	"github.com/labelq/labelq/internal/app"
	"github.com/labelq/labelq/internal/testenv"
)

// newFixtureB is newFixture for benchmarks (one organization).
func newFixtureB(b *testing.B) *fixture {
	env := testenv.New(b)
	a, err := app.New(context.Background(), env.Config(b, map[string]string{
		// 10,000 registrations from one token: the benchmark measures the outbox, not the limit.
		"LABELQ_API_RATE_LIMIT": "0",
	}), testenv.Quiet())
	require.NoError(b, err)
	b.Cleanup(a.Close)
	srv := httptest.NewServer(a.Handler())
	b.Cleanup(srv.Close)
	tok, err := admin.CreateToken(context.Background(), env.PG.Pool, "bench-org", "bench")
	require.NoError(b, err)
	return &fixture{env: env, a: a, server: srv, orgAID: tok.OrgID, orgA: client{b, srv.URL, tok.Secret}}
}

func idB(b *testing.B, r reply) int64 {
	var m map[string]any
	require.NoError(b, json.Unmarshal(r.Body, &m))
	return int64(m["id"].(float64))
}

func percentile(xs []float64, p float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[int(float64(len(s)-1)*p)]
}
