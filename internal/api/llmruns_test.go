package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/admin"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/testenv"
)

const llmRunsPath = "/v1/versions/{version_id}/llm-runs"

// llmRunsServer serves the llm-runs route over the API's own pipeline (tokens,
// scopes, the tenant transaction under row-level security as labelq_api_login),
// from the route table when it lists the route.
func llmRunsServer(t *testing.T, env *testenv.Env) *httptest.Server {
	t.Helper()
	s := &Server{Pool: env.PG.APIPool, Log: testenv.Quiet()}
	rt := Route{Method: "GET", Path: llmRunsPath, Summary: "List a version's pre-annotation runs", Tag: "files",
		Response: List[LLMRun]{}, Status: http.StatusOK, Handler: listVersionLLMRuns, Scope: admin.ScopeRead}
	for _, r := range s.Routes() {
		if r.Method == rt.Method && r.Path == rt.Path {
			require.Equal(t, admin.ScopeRead, r.Scope, "reading runs is a read")
			rt = r
		}
	}
	mux := http.NewServeMux()
	mux.Handle(rt.Method+" "+rt.Path, s.wrap(rt))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func getJSON(t *testing.T, url, token string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m), string(b))
	return resp.StatusCode, m
}

func TestListVersionLLMRuns(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	ctx := context.Background()
	srv := llmRunsServer(t, env)
	tokA, err := admin.CreateToken(ctx, env.PG.Pool, "org-a", "test")
	require.NoError(t, err)
	tokB, err := admin.CreateToken(ctx, env.PG.Pool, "org-b", "test")
	require.NoError(t, err)
	readless, err := admin.CreateTokenWith(ctx, env.PG.Pool, "org-a", "uploader", admin.TokenOptions{Scopes: []admin.Scope{admin.ScopeUpload}})
	require.NoError(t, err)

	pr := env.PG.Project(t, tokA.OrgID, func(p *db.ProjectCreateParams) { p.LlmEnabled = true; p.LlmModel = "gpt-4o-mini" })
	f := env.PG.File(t, pr, "review.txt")
	v := env.PG.Upload(t, env.S3, f, []byte("Great."), testenv.Declared{})
	q := env.PG.Q
	run := func(model string) db.LlmRun {
		r, err := q.LLMRunInsert(ctx, db.LLMRunInsertParams{
			OrgID: v.OrgID, ProjectID: v.ProjectID, FileVersionID: v.ID, Model: model,
			PromptHash: strings.Repeat("a", 64), InputSha256: strings.Repeat("b", 64),
		})
		require.NoError(t, err)
		return r
	}
	// An older run, skipped (its raw reply, had it one, is not answered), and
	// the latest, failed after a repair call with the model's reply kept.
	skipped, failed := run("gpt-4o-mini"), run("gpt-4.1")
	reason, raw := "superseded by run 2: the project's LLM settings changed", "irrelevant"
	_, err = q.LLMRunRecord(ctx, db.LLMRunRecordParams{ID: skipped.ID, Status: db.LlmRunStatusSkipped, Error: &reason, RawOutput: &raw})
	require.NoError(t, err)
	why, reply := "the model's reply does not satisfy the annotation schema, even after one repair attempt: (root): not JSON", "I think it is positive."
	_, err = q.LLMRunRecord(ctx, db.LLMRunRecordParams{
		ID: failed.ID, Status: db.LlmRunStatusFailed, Calls: 2, PromptTokens: 300, CompletionTokens: 40, LatencyMs: 812,
		CostUsd: 0.000069, Error: &why, RawOutput: &reply,
	})
	require.NoError(t, err)

	url := srv.URL + strings.Replace(llmRunsPath, "{version_id}", fmt.Sprint(v.ID), 1)
	status, body := getJSON(t, url, tokA.Secret)
	require.Equal(t, http.StatusOK, status, "%v", body)
	items := body["items"].([]any)
	require.Len(t, items, 2)
	latest, older := items[0].(map[string]any), items[1].(map[string]any)
	require.EqualValues(t, failed.ID, latest["id"], "newest first")
	require.Equal(t, "failed", latest["status"])
	require.Equal(t, why, latest["error"])
	require.EqualValues(t, 2, latest["attempts"])
	require.EqualValues(t, 300, latest["prompt_tokens"])
	require.EqualValues(t, 40, latest["completion_tokens"])
	require.EqualValues(t, 812, latest["latency_ms"])
	require.InDelta(t, 0.000069, latest["cost_usd"], 1e-9)
	require.Equal(t, reply, latest["raw_output"], "a failed run shows what the model said")
	require.Equal(t, false, latest["output_unwrapped"])
	require.Equal(t, "gpt-4.1", latest["model"])
	require.NotContains(t, latest, "cache_key")
	require.NotContains(t, latest, "org_id")
	require.EqualValues(t, skipped.ID, older["id"])
	require.Equal(t, reason, older["error"])
	require.Nil(t, older["raw_output"], "only a failed run's raw reply is answered")

	// Another organization, an unknown id and a malformed one are 404s alike.
	for _, tc := range []struct{ url, token string }{
		{url, tokB.Secret},
		{srv.URL + "/v1/versions/999999/llm-runs", tokA.Secret},
		{srv.URL + "/v1/versions/abc/llm-runs", tokA.Secret},
	} {
		status, body := getJSON(t, tc.url, tc.token)
		require.Equal(t, http.StatusNotFound, status, "%s: %v", tc.url, body)
		require.NotContains(t, fmt.Sprint(body), reply)
	}
	status, body = getJSON(t, url, readless.Secret)
	require.Equal(t, http.StatusForbidden, status, "%v", body)
	require.Contains(t, body["detail"], `"read" scope`)

	// A version without runs answers an empty list, not null.
	v2 := env.PG.Upload(t, env.S3, f, []byte("Second."), testenv.Declared{})
	status, body = getJSON(t, srv.URL+fmt.Sprintf("/v1/versions/%d/llm-runs", v2.ID), tokA.Secret)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, []any{}, body["items"])
}

func TestLLMRunMapping(t *testing.T) {
	t.Parallel()
	// Every column is answered under its own name except the tenant key and the
	// cache key; raw_output only for a failed run.
	row, out := rowMappingWith(func(r *db.LlmRun) { r.Status = db.LlmRunStatusFailed }, llmRunFromRow)()
	cols, fields := jsonObject(t, row), jsonObject(t, out)
	for col, v := range cols {
		switch col {
		case "org_id", "cache_key":
			require.NotContains(t, fields, col)
		default:
			require.Equal(t, v, fields[col], col)
		}
	}
	require.Len(t, fields, len(cols)-2)

	r := row.(db.LlmRun)
	r.Status = db.LlmRunStatusSucceeded
	require.Nil(t, llmRunFromRow(r).RawOutput)
}
