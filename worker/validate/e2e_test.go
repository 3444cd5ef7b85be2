package validate_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/metrics"
	"github.com/labelq/labelq/internal/outbox"
	"github.com/labelq/labelq/internal/queue"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/worker/validate"
)

// pipeline is the production path in-process: the outbox relay moving committed
// intents into asynq (Redis), and an asynq server running the handler with the same
// server configuration and middleware a labelq worker uses.
type pipeline struct {
	client    *asynq.Client
	inspector *asynq.Inspector
}

func startPipeline(t testing.TB, env *testenv.Env, h *validate.Handler, m *metrics.Metrics, concurrency int, withRelay bool) *pipeline {
	t.Helper()
	log := testenv.Quiet()
	ctx, cancel := context.WithCancel(context.Background())

	cfg := queue.ServerConfig(concurrency, 5*time.Second, log, func() context.Context { return ctx })
	// Only this handler is mounted: leave the downstream queues (pre-annotation,
	// matching) in Redis where the test can see what was queued next.
	cfg.Queues = map[string]int{queue.QueueValidate: 1}
	srv := asynq.NewServer(env.Redis.Opt(), cfg)
	mux := asynq.NewServeMux()
	// The Finisher as a labelq worker has it: with admission on (the app's relay),
	// a finished task gives its organization's slot back.
	mux.Use(m.Middleware, (&outbox.Finisher{Pool: env.PG.Pool, Log: log}).Middleware)
	tasks.Register(mux, h.Work)
	require.NoError(t, srv.Start(mux))

	p := &pipeline{client: asynq.NewClient(env.Redis.Opt()), inspector: asynq.NewInspector(env.Redis.Opt())}
	relay := &outbox.Relay{Pool: env.PG.Pool, Client: p.client, Log: log, Metrics: m, PollInterval: 100 * time.Millisecond}
	var wg sync.WaitGroup
	if withRelay {
		wg.Go(func() { _ = relay.Run(ctx) })
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		srv.Shutdown()
		_ = p.client.Close()
		_ = p.inspector.Close()
	})
	return p
}

// register is what the API does for POST /v1/files/{id}/versions: the version row
// and its validate intent commit together.
func register(t testing.TB, pg *testenv.PG, f db.File, key string, decl testenv.Declared) db.FileVersion {
	t.Helper()
	ctx := context.Background()
	var v db.FileVersion
	require.NoError(t, database.Tx(ctx, pg.Pool, func(q *db.Queries, _ pgx.Tx) error {
		if _, err := q.FileGetForUpdate(ctx, f.ID); err != nil {
			return err
		}
		var err error
		v, err = q.FileVersionCreate(ctx, db.FileVersionCreateParams{
			OrgID: f.OrgID, ProjectID: f.ProjectID, FileID: f.ID, StoragePath: key,
			ExpectedSha256: decl.SHA256, ExpectedSize: decl.Size, ExpectedMimeType: decl.MIME,
		})
		if err != nil {
			return err
		}
		err = outbox.Add(ctx, q, f.OrgID, tasks.Validate{VersionID: v.ID})
		return err
	}))
	return v
}

func TestValidatePipelineEndToEnd(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	m := metrics.New()
	h := validate.NewHandler(validate.Deps{Pool: env.PG.Pool, Store: env.S3.Store, Metrics: m, Options: testOptions,
		Storages: testenv.StorageResolver(t, env.PG, env.S3, testenv.StorageKeyring(t))})
	p := startPipeline(t, env, h, m, 4, true)

	pg := env.PG
	org := pg.Org(t)
	pr := pg.Project(t, org.ID, func(p *db.ProjectCreateParams) { p.LlmEnabled, p.LlmModel = true, "gpt-4o-mini" })

	const n = 20
	var versions []db.FileVersion
	for i := range n {
		f := pg.File(t, pr, fmt.Sprintf("sample-%02d.csv", i))
		content := csvBytes(10 + i)
		key := fmt.Sprintf("orgs/%d/projects/%d/files/%d/v1", org.ID, pr.ID, f.ID)
		env.S3.Put(t, key, content, minio.PutObjectOptions{})
		versions = append(versions, register(t, pg, f, key, declared(content, "text/csv")))
	}
	// And one that is corrupt: its task must end archived, visible to operators.
	bad := csvBytes(7)
	badFile := pg.File(t, pr, "damaged.csv")
	badKey := fmt.Sprintf("orgs/%d/projects/%d/files/%d/v1", org.ID, pr.ID, badFile.ID)
	env.S3.Put(t, badKey, bad[:len(bad)-1], minio.PutObjectOptions{})
	badVersion := register(t, pg, badFile, badKey, declared(bad, "text/csv"))

	require.Eventually(t, func() bool {
		for _, v := range versions {
			row, err := pg.Q.FileVersionGetByID(context.Background(), v.ID)
			if err != nil || row.ValidationStatus != db.ValidationStatusValid {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "every version valid")

	require.Eventually(t, func() bool {
		info, err := p.inspector.GetTaskInfo(queue.QueueValidate, tasks.Validate{VersionID: badVersion.ID}.TaskID())
		return err == nil && info.State == asynq.TaskStateArchived
	}, 30*time.Second, 50*time.Millisecond, "the corrupt version's task is archived, not retried")
	row, err := pg.Q.FileVersionGetByID(context.Background(), badVersion.ID)
	require.NoError(t, err)
	require.Equal(t, db.ValidationStatusCorrupt, row.ValidationStatus)

	// What the valid versions queued next went all the way into Redis.
	require.Eventually(t, func() bool {
		q, err := p.inspector.GetQueueInfo(queue.QueuePreannotate)
		return err == nil && q.Pending == n
	}, 10*time.Second, 50*time.Millisecond, "one pre-annotation per valid version")
	for _, v := range versions {
		_, err := p.inspector.GetTaskInfo(queue.QueuePreannotate, tasks.Preannotate{VersionID: v.ID}.TaskID())
		require.NoError(t, err)
	}
	jobs, err := pg.Q.AnnotationJobListByProject(context.Background(), db.AnnotationJobListByProjectParams{
		ProjectID: pr.ID, OrgID: org.ID, MaxRows: 100,
	})
	require.NoError(t, err)
	require.Len(t, jobs, n)
}
