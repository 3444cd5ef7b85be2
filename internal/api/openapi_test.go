package api

import (
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite openapi.json from the route table")

// TestOpenAPIIsCurrent fails when a route was added, changed or removed without the
// committed openapi.json following it.
func TestOpenAPIIsCurrent(t *testing.T) {
	gen, err := GenerateOpenAPI((&Server{}).Routes())
	require.NoError(t, err)
	gen = append(gen, '\n')
	if *update {
		require.NoError(t, os.WriteFile("openapi.json", gen, 0o644))
	}
	require.JSONEq(t, string(gen), string(openapiFile), "openapi.json is stale: go test ./internal/api -run TestOpenAPIIsCurrent -update")
}

// TestEveryRouteDocumentedAndBack checks both ways: every route of the router is in
// the document with a summary, and every documented operation is routed.
func TestEveryRouteDocumentedAndBack(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]struct {
			Summary string `json:"summary"`
		} `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(OpenAPIJSON(), &doc))
	routed := map[string]bool{}
	for _, rt := range (&Server{}).Routes() {
		key := rt.Method + " " + rt.Path
		require.False(t, routed[key], "route %s is defined twice", key)
		routed[key] = true
		op, ok := doc.Paths[rt.Path][strings.ToLower(rt.Method)]
		require.True(t, ok, "route %s is not documented", key)
		require.NotEmpty(t, op.Summary, "route %s has no summary", key)
		if _, enqueues := rt.Response.(Enqueued); enqueues {
			require.Equal(t, http.StatusAccepted, rt.Status, "enqueueing route %s must answer 202", key)
		}
	}
	for path, ops := range doc.Paths {
		for method := range ops {
			require.True(t, routed[strings.ToUpper(method)+" "+path], "documented %s %s has no route", method, path)
		}
	}
	// The router itself accepts every route (a typo in a pattern panics here).
	mux := http.NewServeMux()
	(&Server{}).Register(mux)
}
