package preannotate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/minio/minio-go/v7"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/llm"
	"github.com/labelq/labelq/internal/llm/llmtest"
	"github.com/labelq/labelq/internal/ratelimit"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/worker/preannotate"
)

// labelSchema is a strict schema, as OpenAI's structured outputs demand (every
// property required, no additional properties).
const labelSchema = `{"type":"object","properties":{"label":{"type":"string","enum":["positive","negative"]},` +
	`"confidence":{"type":"number","minimum":0,"maximum":1}},"required":["label","confidence"],"additionalProperties":false}`

// fixture is one test's services, fake provider and handler.
type fixture struct {
	t       testing.TB
	env     *testenv.Env
	srv     *llmtest.Server
	client  *llm.Client
	limiter *ratelimit.Limiter
	h       *preannotate.Handler
	log     *slog.Logger
	logs    *testenv.LogBuffer
	org     db.Organization
	project db.Project
	// keys and res are the handler's storage resolver: labelq's bucket, and
	// what a test allows beside it (useRemote).
	keys *storage.Keyring
	res  *storage.Resolver
	opts preannotate.Options
}

type fixtureOpts struct {
	serverOpts []llmtest.Option
	clientKey  string // the key labelq sends; llmtest.DefaultAPIKey when empty
	limits     ratelimit.Config
	options    preannotate.Options
	project    []testenv.ProjectOpt
}

// withSchema makes the project ask for structured output.
func withSchema(schema string) testenv.ProjectOpt {
	return func(p *db.ProjectCreateParams) { p.AnnotationSchema = json.RawMessage(schema) }
}

func newFixture(t testing.TB, o fixtureOpts) *fixture {
	t.Helper()
	env := testenv.New(t)
	w := &fixture{t: t, env: env, srv: llmtest.New(t, o.serverOpts...), keys: testenv.StorageKeyring(t), opts: o.options}
	w.res = testenv.StorageResolver(t, env.PG, env.S3, w.keys)
	w.log, w.logs = testenv.Logger(t)
	key := o.clientKey
	if key == "" {
		key = llmtest.DefaultAPIKey
	}
	var err error
	w.client, err = llm.NewClient(llm.Config{
		BaseURL: w.srv.BaseURL(), APIKey: key, Timeout: 10 * time.Second,
		Prices: llm.Prices{"gpt-4o-mini": {InputPerMTok: 0.15, OutputPerMTok: 0.60}},
	})
	require.NoError(t, err)
	lim := o.limits
	if lim.Prefix == "" {
		lim.Prefix = ratelimit.PrefixFor(w.srv.BaseURL())
	}
	w.limiter, err = ratelimit.New(env.Redis.Client, lim)
	require.NoError(t, err)
	w.h = w.handler(w.limiter, o.options)
	w.org = env.PG.Org(t)
	popts := append([]testenv.ProjectOpt{func(p *db.ProjectCreateParams) {
		p.LlmEnabled = true
		p.LlmModel = "gpt-4o-mini"
		p.RequirementsText = "Label the sentiment of the review."
	}}, o.project...)
	w.project = env.PG.Project(t, w.org.ID, popts...)
	return w
}

// handler builds a handler over the fixture's services with the given limiter (a
// second worker process has its own).
func (w *fixture) handler(lim *ratelimit.Limiter, opts preannotate.Options) *preannotate.Handler {
	return preannotate.NewHandler(preannotate.Deps{
		Pool: w.env.PG.Pool, Store: w.env.S3.Store, Storages: w.res, LLM: w.client, Limiter: lim,
		Log: w.log, Options: opts,
	})
}

// useRemote returns a bucket on a second MinIO server, whose endpoint the
// fixture's handler now reaches.
func (w *fixture) useRemote() *testenv.S3 {
	w.t.Helper()
	remote := testenv.SecondMinIO(w.t)
	w.res = testenv.StorageResolver(w.t, w.env.PG, w.env.S3, w.keys, remote.Endpoint)
	w.h = w.handler(w.limiter, w.opts)
	return remote
}

// valid uploads content as a new file's version and marks it valid the way
// file:validate does, optionally as a duplicate of an earlier version.
func (w *fixture) valid(name, mime string, content []byte, duplicateOf *int64) db.FileVersion {
	w.t.Helper()
	f := w.env.PG.File(w.t, w.project, name)
	return w.validVersion(f, mime, content, duplicateOf)
}

func (w *fixture) validVersion(f db.File, mime string, content []byte, duplicateOf *int64) db.FileVersion {
	w.t.Helper()
	ctx := context.Background()
	v := w.env.PG.Upload(w.t, w.env.S3, f, content, testenv.Declared{})
	_, err := w.env.PG.Pool.Exec(ctx, `UPDATE file_versions SET validation_status = 'valid', checksum = $2,
		size_bytes = $3, mime_type = $4, validated_at = now(), duplicate_of = $5 WHERE id = $1`,
		v.ID, testenv.SHA256Hex(content), len(content), mime, duplicateOf)
	require.NoError(w.t, err)
	v, err = w.env.PG.Q.FileVersionGetByID(ctx, v.ID)
	require.NoError(w.t, err)
	return v
}

func task(t testing.TB, versionID int64) *asynq.Task {
	t.Helper()
	tk, err := tasks.NewTask(tasks.Preannotate{VersionID: versionID})
	require.NoError(t, err)
	return tk
}

func (w *fixture) process(v db.FileVersion) error {
	return tasks.Handle(w.h.Work).ProcessTask(context.Background(), task(w.t, v.ID))
}

// runs returns the version's llm_runs rows.
func (w *fixture) runs(v db.FileVersion) []db.LlmRun {
	w.t.Helper()
	rows, err := w.env.PG.Pool.Query(context.Background(), `SELECT * FROM llm_runs WHERE file_version_id = $1 ORDER BY id`, v.ID)
	require.NoError(w.t, err)
	var out []db.LlmRun
	for rows.Next() {
		var r db.LlmRun
		require.NoError(w.t, rows.Scan(&r.ID, &r.OrgID, &r.ProjectID, &r.FileVersionID, &r.Model, &r.PromptHash,
			&r.SchemaHash, &r.InputSha256, &r.CacheKey, &r.Status, &r.Error, &r.Attempts, &r.PromptTokens,
			&r.CompletionTokens, &r.LatencyMs, &r.CostUsd, &r.CachedFromID, &r.OutputVersionID, &r.RawOutput,
			&r.StartedAt, &r.FinishedAt, &r.CreatedAt, &r.UpdatedAt, &r.OutputUnwrapped))
		out = append(out, r)
	}
	require.NoError(w.t, rows.Err())
	return out
}

// run returns the version's one run.
func (w *fixture) run(v db.FileVersion) db.LlmRun {
	w.t.Helper()
	rs := w.runs(v)
	require.Len(w.t, rs, 1)
	return rs[0]
}

func (w *fixture) object(key string) []byte {
	w.t.Helper()
	obj, err := w.env.S3.Store.Client.GetObject(context.Background(), w.env.S3.Store.Bucket, key, minio.GetObjectOptions{})
	require.NoError(w.t, err)
	defer func() { _ = obj.Close() }()
	b, err := io.ReadAll(obj)
	require.NoError(w.t, err)
	return b
}

// events returns the event types logged on a version.
func (w *fixture) events(v db.FileVersion) []string {
	w.t.Helper()
	rows, err := w.env.PG.Q.EventLogListByEntity(context.Background(), db.EventLogListByEntityParams{
		OrgID: v.OrgID, EntityType: db.EntityTypeFileVersion, EntityID: v.ID, MaxRows: 100,
	})
	require.NoError(w.t, err)
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.EventType
	}
	return out
}

// snapshot is every row the handler may write, as JSON, for before/after
// comparisons.
func (w *fixture) snapshot() string {
	w.t.Helper()
	var sb bytes.Buffer
	for _, table := range []string{"llm_runs", "files", "file_versions", "event_log", "outbox"} {
		var s *string
		err := w.env.PG.Pool.QueryRow(context.Background(),
			fmt.Sprintf(`SELECT json_agg(t ORDER BY t.id)::text FROM %s t`, table)).Scan(&s)
		require.NoError(w.t, err)
		if s != nil {
			sb.WriteString(table + ": " + *s + "\n")
		}
	}
	return sb.String()
}

// secondProcess is another worker process's limiter: its own Redis client on
// the same database.
func (w *fixture) secondProcess(cfg ratelimit.Config) *ratelimit.Limiter {
	w.t.Helper()
	c := redis.NewClient(&redis.Options{Addr: w.env.Redis.Addr, DB: w.env.Redis.DB})
	w.t.Cleanup(func() { _ = c.Close() })
	lim, err := ratelimit.New(c, cfg)
	require.NoError(w.t, err)
	return lim
}
