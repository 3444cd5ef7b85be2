package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/admin"
	"github.com/labelq/labelq/internal/api"
	"github.com/labelq/labelq/internal/app"
	"github.com/labelq/labelq/internal/ratelimit"
	"github.com/labelq/labelq/internal/testenv"
)

// quotaFixture is an API with the given settings and one token of org A.
type quotaFixture struct {
	env  *testenv.Env
	cfg  map[string]string
	orgA client
	tokA admin.Token
}

func newQuotaFixture(t *testing.T, overrides map[string]string) *quotaFixture {
	t.Helper()
	env := testenv.New(t)
	f := &quotaFixture{env: env, cfg: overrides}
	tok, err := admin.CreateToken(context.Background(), env.PG.Pool, "org-a", "test")
	require.NoError(t, err)
	f.tokA = tok
	f.orgA = f.server(t).withToken(tok.Secret)
	return f
}

// server starts one more API process on the fixture's services.
func (f *quotaFixture) server(t *testing.T) client {
	t.Helper()
	a, err := app.New(context.Background(), f.env.Config(t, f.cfg), testenv.Quiet())
	require.NoError(t, err)
	t.Cleanup(a.Close)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return client{t: t, base: srv.URL}
}

func (c client) withToken(secret string) client { c.token = secret; return c }

func requireInvalid(t *testing.T, r reply, field string, contains ...string) {
	t.Helper()
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
	require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))
	require.Contains(t, string(r.Body), `"field":"`+field+`"`, string(r.Body))
	for _, s := range contains {
		require.Contains(t, string(r.Body), s)
	}
}

func TestModelAllowList(t *testing.T) {
	t.Parallel()
	t.Run("the default table", func(t *testing.T) {
		t.Parallel()
		f := newQuotaFixture(t, nil)
		r := f.orgA.do("POST", "/v1/projects", map[string]any{"name": "p", "llm_enabled": true, "llm_model": "gpt-5-ultra-preview"})
		requireInvalid(t, r, "llm_model", `\"gpt-5-ultra-preview\" is not offered`, "gpt-4o-mini")

		r = f.orgA.do("POST", "/v1/projects", map[string]any{"name": "p", "llm_enabled": true, "llm_model": "gpt-4o-mini"})
		require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
		pid := id(t, r)
		path := fmt.Sprintf("/v1/projects/%d", pid)
		// A prefix prices dated snapshots; it does not allow other models.
		for _, m := range []string{"gpt-4o-mini-realtime-preview", "o1-pro", "llama3.1:8b"} {
			requireInvalid(t, f.orgA.do("PATCH", path, map[string]any{"llm_model": m}), "llm_model", "gpt-4.1")
		}
		r = f.orgA.do("GET", path, nil)
		require.Equal(t, "gpt-4o-mini", r.json(t)["llm_model"], "the refused model was not recorded")
		r = f.orgA.do("PATCH", path, map[string]any{"llm_model": "gpt-4o"})
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	})
	t.Run("the operator's table", func(t *testing.T) {
		t.Parallel()
		f := newQuotaFixture(t, map[string]string{"LABELQ_LLM_PRICES": "llama3.1:8b=0/0"})
		requireInvalid(t, f.orgA.do("POST", "/v1/projects", map[string]any{"name": "p", "llm_model": "gpt-4o-mini"}), "llm_model", "llama3.1:8b")
		r := f.orgA.do("POST", "/v1/projects", map[string]any{"name": "p", "llm_enabled": true, "llm_model": "llama3.1:8b"})
		require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	})
	t.Run("any model at no cost, when the operator says so", func(t *testing.T) {
		t.Parallel()
		f := newQuotaFixture(t, map[string]string{"LABELQ_LLM_PRICES": "*=0/0"})
		r := f.orgA.do("POST", "/v1/projects", map[string]any{"name": "p", "llm_enabled": true, "llm_model": "whatever-local"})
		require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	})
}

func TestLLMCaps(t *testing.T) {
	t.Parallel()
	f := newQuotaFixture(t, map[string]string{"LABELQ_LLM_MAX_TOKENS_CAP": "512", "LABELQ_LLM_SYSTEM_PROMPT_MAX": "100"})
	r := f.orgA.do("POST", "/v1/projects", map[string]any{"name": "p"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	require.EqualValues(t, 512, r.json(t)["llm_max_tokens"], "the default is held to the cap")
	path := fmt.Sprintf("/v1/projects/%d", id(t, r))

	requireInvalid(t, f.orgA.do("PATCH", path, map[string]any{"llm_max_tokens": 513}), "llm_max_tokens", "at most 512")
	requireInvalid(t, f.orgA.do("POST", "/v1/projects", map[string]any{"name": "q", "llm_max_tokens": 100000}), "llm_max_tokens")
	require.Equal(t, http.StatusOK, f.orgA.do("PATCH", path, map[string]any{"llm_max_tokens": 512}).Status)

	requireInvalid(t, f.orgA.do("PATCH", path, map[string]any{"llm_system_prompt": strings.Repeat("x", 101)}), "llm_system_prompt", "at most 100 characters")
	requireInvalid(t, f.orgA.do("POST", "/v1/projects", map[string]any{"name": "q", "llm_system_prompt": strings.Repeat("x", 101)}), "llm_system_prompt")
	// Characters, not bytes: 100 two-byte characters fit.
	r = f.orgA.do("PATCH", path, map[string]any{"llm_system_prompt": strings.Repeat("é", 100)})
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))

	d := newQuotaFixture(t, nil)
	r = d.orgA.do("POST", "/v1/projects", map[string]any{"name": "p", "llm_max_tokens": 4097})
	requireInvalid(t, r, "llm_max_tokens", "at most 4096")
	r = d.orgA.do("POST", "/v1/projects", map[string]any{"name": "p", "llm_system_prompt": strings.Repeat("x", 8001)})
	requireInvalid(t, r, "llm_system_prompt", "at most 8000")
}

func TestScheduleMinimumInterval(t *testing.T) {
	t.Parallel()
	f := newQuotaFixture(t, nil)
	r := f.orgA.do("POST", "/v1/projects", map[string]any{"name": "p"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	create := fmt.Sprintf("/v1/projects/%d/export-schedules", id(t, r))
	for _, spec := range []string{"@every 1s", "@every 59m", "* * * * *", "*/5 * * * *", "0,30 2 * * *"} {
		r := f.orgA.do("POST", create, map[string]any{"cron_spec": spec})
		requireInvalid(t, r, "cron_spec")
	}
	requireInvalid(t, f.orgA.do("POST", create, map[string]any{"cron_spec": "@every 1s"}), "cron_spec", "at most once every 1h0m0s")

	r = f.orgA.do("POST", create, map[string]any{"cron_spec": "@hourly", "timezone": "Europe/Paris"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	path := fmt.Sprintf("/v1/export-schedules/%d", id(t, r))
	requireInvalid(t, f.orgA.do("PATCH", path, map[string]any{"cron_spec": "@every 10s"}), "cron_spec")
	r = f.orgA.do("GET", create, nil)
	require.Contains(t, string(r.Body), `"cron_spec":"@hourly"`, "the refused update was rolled back")
	require.Equal(t, http.StatusOK, f.orgA.do("PATCH", path, map[string]any{"cron_spec": "0 2 * * *"}).Status)

	// The minimum is the operator's: the chaos run sets it to seconds.
	fast := newQuotaFixture(t, map[string]string{"LABELQ_SCHEDULE_MIN_INTERVAL": "1s"})
	r = fast.orgA.do("POST", "/v1/projects", map[string]any{"name": "p"})
	r = fast.orgA.do("POST", fmt.Sprintf("/v1/projects/%d/export-schedules", id(t, r)), map[string]any{"cron_spec": "@every 8s"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
}

func TestScheduleMaximumPerProject(t *testing.T) {
	t.Parallel()
	const limit = 4
	f := newQuotaFixture(t, map[string]string{"LABELQ_SCHEDULE_MAX_PER_PROJECT": strconv.Itoa(limit)})
	project := func() string {
		r := f.orgA.do("POST", "/v1/projects", map[string]any{"name": fmt.Sprintf("p-%d", time.Now().UnixNano())})
		require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
		return fmt.Sprintf("/v1/projects/%d/export-schedules", id(t, r))
	}
	create := project()
	var ids []int64
	for range limit {
		r := f.orgA.do("POST", create, map[string]any{"cron_spec": "@daily"})
		require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
		ids = append(ids, id(t, r))
	}
	r := f.orgA.do("POST", create, map[string]any{"cron_spec": "@daily", "enabled": false})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
	require.Contains(t, string(r.Body), "Too many schedules")
	require.Equal(t, http.StatusCreated, f.orgA.do("POST", project(), map[string]any{"cron_spec": "@daily"}).Status, "another project has its own maximum")
	require.Equal(t, http.StatusOK, f.orgA.do("DELETE", fmt.Sprintf("/v1/export-schedules/%d", ids[0]), nil).Status)
	require.Equal(t, http.StatusCreated, f.orgA.do("POST", create, map[string]any{"cron_spec": "@daily"}).Status, "a deleted schedule makes room")

	// Concurrent creates cannot overshoot: the count is taken under the project's lock.
	racy := project()
	const tries = 16
	var wg sync.WaitGroup
	codes := make(chan int, tries)
	for range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes <- f.orgA.do("POST", racy, map[string]any{"cron_spec": "@weekly"}).Status
		}()
	}
	wg.Wait()
	close(codes)
	got := map[int]int{}
	for c := range codes {
		got[c]++
	}
	require.Equal(t, map[int]int{http.StatusCreated: limit, http.StatusUnprocessableEntity: tries - limit}, got)
	var n int
	require.NoError(t, f.env.PG.Pool.QueryRow(context.Background(),
		`SELECT count(*) FROM export_schedules WHERE deleted_at IS NULL AND cron_spec = '@weekly'`).Scan(&n))
	require.Equal(t, limit, n)
}

// Two API processes on one Redis share each token's budget; 429 says when to retry.
func TestRequestRateLimitIsSharedAcrossProcesses(t *testing.T) {
	t.Parallel()
	f := newQuotaFixture(t, map[string]string{"LABELQ_API_RATE_LIMIT": "5/min"})
	second := f.server(t).withToken(f.tokA.Secret)
	for i, c := range []client{f.orgA, second, f.orgA, second, f.orgA} {
		require.Equal(t, http.StatusOK, c.do("GET", "/v1/projects", nil).Status, "request %d", i)
	}
	r := second.do("GET", "/v1/projects", nil)
	require.Equal(t, http.StatusTooManyRequests, r.Status, string(r.Body))
	require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))
	secs, err := strconv.Atoi(r.Header.Get("Retry-After"))
	require.NoError(t, err, "Retry-After is whole seconds: %q", r.Header.Get("Retry-After"))
	require.InDelta(t, 12, secs, 2, "one request of 5/min comes back every 12 s")
	require.Contains(t, string(r.Body), "5/min")
	require.Equal(t, http.StatusTooManyRequests, f.orgA.do("POST", "/v1/projects", map[string]any{"name": "x"}).Status)

	tokB, err := admin.CreateToken(context.Background(), f.env.PG.Pool, "org-b", "test")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, second.withToken(tokB.Secret).do("GET", "/v1/projects", nil).Status, "each token has its own budget")
}

// Without Redis the limit cannot be counted: the API keeps answering.
func TestRequestRateLimitFailsOpenWithoutRedis(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	a, err := app.New(context.Background(), env.Config(t, nil), testenv.Quiet())
	require.NoError(t, err)
	t.Cleanup(a.Close)
	down := redis.NewClient(&redis.Options{Addr: testenv.FreeAddr(t), MaxRetries: -1})
	t.Cleanup(func() { _ = down.Close() })
	lim, err := api.NewRateLimiter(down, ratelimit.Rate{N: 1, Per: time.Hour})
	require.NoError(t, err)
	s := &api.Server{Pool: a.APIPool, Store: a.Store, Inspector: a.Inspector, Log: testenv.Quiet(), Quotas: api.Quotas{RateLimit: lim}}
	mux := http.NewServeMux()
	s.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	tok, err := admin.CreateToken(context.Background(), env.PG.Pool, "org-a", "test")
	require.NoError(t, err)
	c := client{t: t, base: srv.URL, token: tok.Secret}
	for range 3 {
		require.Equal(t, http.StatusOK, c.do("GET", "/v1/projects", nil).Status)
	}
}
