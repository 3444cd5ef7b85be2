package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/llm/llmtest"
	"github.com/labelq/labelq/internal/queue"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/internal/webhook"
	"github.com/labelq/labelq/internal/webhook/delivery"
)

// requireCouldNotLook asserts that a group whose input was unavailable failed, and
// failed as "could not look" (an error figure), not as a number.
func requireCouldNotLook(t *testing.T, figs []Figure) {
	t.Helper()
	require.NotEmpty(t, figs)
	rep := &Report{Figures: figs}
	require.False(t, rep.OK(), "a check that could not look reads clean: %+v", figs)
	errs := 0
	for _, f := range rep.Failed() {
		if strings.HasPrefix(f.Value, "error: ") {
			errs++
		}
	}
	require.NotZero(t, errs, "no figure says the check could not look: %+v", figs)
	for _, f := range figs {
		if f.OK {
			require.NotContains(t, f.Value, "error", "figure %q reads clean with an error", f.Name)
		}
	}
}

// requireClean asserts that every figure of a group held on a readable input.
func requireClean(t *testing.T, figs []Figure) {
	t.Helper()
	require.NotEmpty(t, figs)
	rep := &Report{Figures: figs}
	require.True(t, rep.OK(), "failed on a readable input: %+v", rep.Failed())
}

func figure(t *testing.T, figs []Figure, name string) Figure {
	t.Helper()
	for _, f := range figs {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("no figure %q in %+v", name, figs)
	return Figure{}
}

var chaosSecrets = []string{"CHAOS-S3-SECRET-test", "sk-CHAOS-LLM-KEY-test", "CHAOS-OPERATOR-test", "lq_token_test"}

// deadMinIO is a client for an address nothing listens on.
func deadMinIO(t *testing.T) *minio.Client {
	t.Helper()
	c, err := minio.New(testenv.FreeAddr(t), &minio.Options{Creds: credentials.NewStaticV4("x", "y", ""), MaxRetries: 1})
	require.NoError(t, err)
	return c
}

// dbGroups are the invariant groups that read Postgres, as functions of their database.
func dbGroups(t *testing.T) map[string]func(context.Context, querier) []Figure {
	uploads := []Upload{{Kind: KindText, VersionID: 1, Want: "valid"}, {Kind: KindDuplicate, VersionID: 2, Want: "valid"}}
	return map[string]func(context.Context, querier) []Figure{
		"versions":   func(ctx context.Context, db querier) []Figure { return checkVersions(ctx, db, uploads, len(uploads)) },
		"duplicates": func(ctx context.Context, db querier) []Figure { return checkDuplicates(ctx, db, uploads) },
		"exports": func(ctx context.Context, db querier) []Figure {
			return checkExports(ctx, exportInputs{DB: db, Objects: deadMinIO(t), Bucket: "b", Prefix: "p/", Want: 0})
		},
		"matching":       checkMatching,
		"pre-annotation": func(ctx context.Context, db querier) []Figure { return checkPreannotation(ctx, db, llmtest.Stats{}) },
		"events":         checkEvents,
		"sync": func(ctx context.Context, db querier) []Figure {
			return checkSync(ctx, syncInputs{DB: db, ProjectID: 1, StorageID: 1, Objects: 2, RunIDs: []int64{1}, Scheduled: true})
		},
		"webhooks": func(ctx context.Context, db querier) []Figure {
			return checkWebhooks(ctx, webhookInputs{DB: db, OrgID: 1, Reliable: 1, Flaky: 2, FlakyTypes: flakyTypes})
		},
		"fairness": func(ctx context.Context, db querier) []Figure {
			return checkFairness(ctx, fairnessInputs{DB: db, BigProject: 1, SmallProject: 2, Limit: 200})
		},
		"secrets in rows": func(ctx context.Context, db querier) []Figure {
			return []Figure{secretsFigure(scanTables(ctx, db, chaosSecrets))}
		},
	}
}

// TestInvariantsFailWhenPostgresCannotBeRead runs every database group against a
// closed pool, a cancelled context and a row stream that breaks half-way: each must
// fail with an error figure. The same groups on the live, empty database pass, so the
// failures come from the input, not from the data.
func TestInvariantsFailWhenPostgresCannotBeRead(t *testing.T) {
	pg := testenv.Postgres(t)
	ctx := context.Background()

	t.Run("live", func(t *testing.T) {
		for name, check := range dbGroups(t) {
			if name == "exports" || name == "versions" || name == "duplicates" || name == "sync" || name == "webhooks" || name == "fairness" {
				continue // they expect rows the empty database does not hold: TestCheckExports, TestCheckVersions, TestCheckSync, TestCheckWebhooks, TestCheckFairness
			}
			t.Run(name, func(t *testing.T) { requireClean(t, check(ctx, pg.Pool)) })
		}
	})
	t.Run("closed pool", func(t *testing.T) {
		closed, err := database.Open(ctx, pg.URL, 2)
		require.NoError(t, err)
		closed.Close()
		for name, check := range dbGroups(t) {
			t.Run(name, func(t *testing.T) { requireCouldNotLook(t, check(ctx, closed)) })
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		for name, check := range dbGroups(t) {
			t.Run(name, func(t *testing.T) { requireCouldNotLook(t, check(cctx, pg.Pool)) })
		}
	})
	t.Run("rows.Err", func(t *testing.T) {
		// Postgres sends the first rows, then fails at n = 3: the error reaches the
		// reader through rows.Err(), after Next has returned rows.
		broken := func(cols string) querier {
			return brokenStream{pg.Pool, fmt.Sprintf(`SELECT %s FROM generate_series(1, 5) n`, cols)}
		}
		rows, err := broken("(10 / (3 - n))::bigint").Query(ctx, "")
		require.NoError(t, err, "the failure must come after the query started")
		next := 0
		for rows.Next() {
			next++
		}
		require.Error(t, rows.Err(), "the stream must break")

		requireCouldNotLook(t, checkVersions(ctx, broken("(10 / (3 - n))::bigint, 'valid'"), nil, 0))
		requireCouldNotLook(t, []Figure{secretsFigure(scanTables(ctx, broken("(10 / (3 - n))::text"), chaosSecrets))})
	})
}

// brokenStream answers every Query with its own statement, which fails half-way.
type brokenStream struct {
	querier
	sql string
}

func (b brokenStream) Query(ctx context.Context, _ string, _ ...any) (pgx.Rows, error) {
	return b.querier.Query(ctx, b.sql)
}

// TestCheckVersions: the group passes when every registered version has its outcome,
// and a version the table does not hold is lost, not "0 lost".
func TestCheckVersions(t *testing.T) {
	pg := testenv.Postgres(t)
	ctx := context.Background()
	org := pg.Org(t)
	pr := pg.Project(t, org.ID)
	f := pg.File(t, pr, "")
	v := pg.RegisterVersion(t, f, "k/v1", testenv.Declared{})
	_, err := pg.Pool.Exec(ctx, `UPDATE file_versions SET validation_status = 'missing',
		validation_error = 'no object at the key', validated_at = now() WHERE id = $1`, v.ID)
	require.NoError(t, err)

	ok := []Upload{{Kind: KindMissing, VersionID: v.ID, Want: "missing"}}
	requireClean(t, checkVersions(ctx, pg.Pool, ok, 1))

	wrong := []Upload{{Kind: KindText, VersionID: v.ID, Want: "valid"}}
	require.Equal(t, Figure{"versions_wrong_outcome", "1", "0", false}, figure(t, checkVersions(ctx, pg.Pool, wrong, 1), "versions_wrong_outcome"))

	notThere := append(slices.Clone(ok), Upload{Kind: KindText, VersionID: v.ID + 1000, Want: "valid"})
	require.Equal(t, Figure{"versions_lost (not terminal)", "1", "0", false},
		figure(t, checkVersions(ctx, pg.Pool, notThere, 2), "versions_lost (not terminal)"))
}

// TestCheckExports: with a completed export and a completed schedule tick, each with
// its object, the group passes; with MinIO unreachable it fails with an error figure
// (not "0 objects"); a requested export the table does not hold is not completed.
func TestCheckExports(t *testing.T) {
	pg := testenv.Postgres(t)
	s3 := testenv.MinIO(t)
	ctx := context.Background()
	org := pg.Org(t)
	pr := pg.Project(t, org.ID)
	var scheduleID, exportID int64
	require.NoError(t, pg.Pool.QueryRow(ctx, `INSERT INTO export_schedules (org_id, project_id, cron_spec)
		VALUES ($1, $2, '@every 8s') RETURNING id`, org.ID, pr.ID).Scan(&scheduleID))
	prefix := fmt.Sprintf("orgs/%d/projects/%d/exports/", org.ID, pr.ID)
	for i, sched := range []*int64{nil, &scheduleID} {
		key := fmt.Sprintf("%s%d.zip", prefix, i)
		s3.Put(t, key, []byte("zip"), minio.PutObjectOptions{})
		var id int64
		require.NoError(t, pg.Pool.QueryRow(ctx, `INSERT INTO export_logs (org_id, project_id, schedule_id, scheduled_for, status,
			storage_path, archive_sha256, size_bytes, completed_at)
			VALUES ($1, $2, $3, CASE WHEN $3::bigint IS NULL THEN NULL ELSE now() END, 'completed', $4, $5, 3, now()) RETURNING id`,
			org.ID, pr.ID, sched, key, testenv.SHA256Hex([]byte("zip"))).Scan(&id))
		if sched == nil {
			exportID = id
		}
	}
	in := exportInputs{DB: pg.Pool, Objects: s3.Store.Client, Bucket: s3.Store.Bucket, Prefix: prefix,
		ExportIDs: []int64{exportID}, Want: 1, ScheduleID: scheduleID}
	requireClean(t, checkExports(ctx, in))

	dead := in
	dead.Objects = deadMinIO(t)
	figs := checkExports(ctx, dead)
	requireCouldNotLook(t, figs)
	require.True(t, strings.HasPrefix(figure(t, figs, "export_objects_vs_completed").Value, "error: "))

	unknown := in
	unknown.ExportIDs = []int64{exportID, exportID + 1000}
	unknown.Want = 2
	require.Equal(t, Figure{"exports_not_completed", "1", "0", false}, figure(t, checkExports(ctx, unknown), "exports_not_completed"))
}

// TestQueueInvariantsFailWhenRedisIsUnreachable points the inspector at a port
// nothing listens on: the queue figures, the settle test, the kill-time inspection and
// the task secret scan must all fail, not read "0 tasks". The same checks on a live,
// empty Redis pass, and a task left in it fails the figure with its count.
func TestQueueInvariantsFailWhenRedisIsUnreachable(t *testing.T) {
	names := queue.Names()
	t.Run("dead Redis", func(t *testing.T) {
		insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: testenv.FreeAddr(t)})
		defer insp.Close()
		requireCouldNotLook(t, checkQueues(insp, names))
		idle, err := queuesIdle(insp, names)
		require.Error(t, err)
		require.False(t, idle)
		_, err = tasksInFlight(insp, names)
		require.Error(t, err)
		requireCouldNotLook(t, []Figure{secretsFigure(scanTasks(insp, names, chaosSecrets))})
	})
	t.Run("live Redis", func(t *testing.T) {
		rd := testenv.RedisDB(t)
		insp := asynq.NewInspector(rd.Opt())
		defer insp.Close()
		requireClean(t, checkQueues(insp, names))
		idle, err := queuesIdle(insp, names)
		require.NoError(t, err)
		require.True(t, idle)
		requireClean(t, []Figure{secretsFigure(scanTasks(insp, names, chaosSecrets))})

		c := asynq.NewClient(rd.Opt())
		defer c.Close()
		// A heartbeat (the periodic reconcile) in the queue is not work left.
		_, err = c.Enqueue(asynq.NewTask(tasks.Reconcile{}.Kind(), nil), asynq.Queue(queue.QueueDefault))
		require.NoError(t, err)
		requireClean(t, checkQueues(insp, names))
		idle, err = queuesIdle(insp, names)
		require.NoError(t, err)
		require.True(t, idle)
		_, err = c.Enqueue(asynq.NewTask("chaos:test", []byte(`{"key":"`+chaosSecrets[1]+`"}`)), asynq.Queue(queue.QueueDefault),
			asynq.TaskID("chaos-test-1"))
		require.NoError(t, err)
		left := checkQueues(insp, names)[0]
		require.Equal(t, Figure{"asynq_tasks_left_active_or_pending",
			"1\npending chaos:test id=chaos-test-1 queue=default retried=0/25 last_error=none", "0", false}, left)
		require.NotContains(t, left.Value, chaosSecrets[1], "the figure names a task without its payload")
		idle, err = queuesIdle(insp, names)
		require.NoError(t, err)
		require.False(t, idle)
		f := secretsFigure(scanTasks(insp, names, chaosSecrets))
		require.Equal(t, Figure{"secret_hits (logs, rows, tasks, asynqmon)", "1", "0", false}, f)
	})
}

// TestQueueFigureNamesEveryTask: the figure counts the tasks left and names each
// (state, type, id, queue, retries, last error; orphaned when its lease ran out
// with no worker), without its payload; Print lists them under the table. A
// maintenance pass pending or running is not counted, an orphaned one is.
func TestQueueFigureNamesEveryTask(t *testing.T) {
	rd := testenv.RedisDB(t)
	ctx := context.Background()
	insp := asynq.NewInspector(rd.Opt())
	defer insp.Close()
	c := asynq.NewClient(rd.Opt())
	defer c.Close()
	enqueue := func(kind, id string, opts ...asynq.Option) {
		t.Helper()
		_, err := c.Enqueue(asynq.NewTask(kind, []byte(`{"key":"`+chaosSecrets[0]+`"}`)),
			append(opts, asynq.Queue(queue.QueueDefault), asynq.TaskID(id))...)
		require.NoError(t, err)
	}

	// A task that failed once and waits an hour for its retry, by a real worker.
	enqueue("chaos:fail", "fail-1", asynq.MaxRetry(3))
	srv := asynq.NewServer(rd.Opt(), asynq.Config{Concurrency: 1, Queues: map[string]int{queue.QueueDefault: 1},
		RetryDelayFunc: func(int, error, *asynq.Task) time.Duration { return time.Hour }, LogLevel: asynq.FatalLevel})
	require.NoError(t, srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		return fmt.Errorf("read bucket:\n  %w", errors.New("connection refused"))
	})))
	require.Eventually(t, func() bool {
		ts, err := insp.ListRetryTasks(queue.QueueDefault)
		return err == nil && len(ts) == 1
	}, 30*time.Second, 50*time.Millisecond)
	srv.Shutdown()

	// A task a killed worker left active: in the active list with a lease that ran
	// out, as asynq's dequeue leaves it once the process is gone.
	k := func(suffix string) string { return "asynq:{" + queue.QueueDefault + "}:" + suffix }
	orphan := func(kind, id string) {
		t.Helper()
		enqueue(kind, id)
		require.NoError(t, rd.Client.LRem(ctx, k("pending"), 0, id).Err())
		require.NoError(t, rd.Client.RPush(ctx, k("active"), id).Err())
		require.NoError(t, rd.Client.HSet(ctx, k("t:"+id), "state", "active").Err())
		require.NoError(t, rd.Client.ZAdd(ctx, k("lease"), redis.Z{Score: float64(time.Now().Add(-time.Minute).Unix()), Member: id}).Err())
	}
	orphan("chaos:orphan", "orphan-1")
	// A maintenance pass is not work left while in flight; one a killed worker
	// left behind is.
	orphan(tasks.WebhookRetention{}.Kind(), "stuck-pass")

	enqueue("chaos:test", "pending-1")
	enqueue("chaos:later", "scheduled-1", asynq.ProcessAt(time.Date(2100, 1, 2, 3, 4, 5, 0, time.UTC)))
	enqueue(tasks.Reconcile{}.Kind(), "heartbeat-1")         // in flight: not work left
	enqueue("maintenance:a_pass_added_later", "heartbeat-2") // every maintenance kind, by its prefix

	figs := checkQueues(insp, queue.Names())
	f := figure(t, figs, "asynq_tasks_left_active_or_pending")
	require.False(t, f.OK)
	lines := strings.Split(f.Value, "\n")
	require.Equal(t, "5", lines[0], f.Value)
	// asynq lists the active tasks newest first.
	require.Equal(t, "active maintenance:webhook_retention id=stuck-pass queue=default retried=0/25 orphaned (lease expired, no worker) last_error=none", lines[1])
	require.Equal(t, "active chaos:orphan id=orphan-1 queue=default retried=0/25 orphaned (lease expired, no worker) last_error=none", lines[2])
	require.Equal(t, "pending chaos:test id=pending-1 queue=default retried=0/25 last_error=none", lines[3])
	require.Equal(t, "scheduled chaos:later id=scheduled-1 queue=default retried=0/25 next_process_at=2100-01-02T03:04:05Z last_error=none", lines[4])
	require.Regexp(t, `^retry chaos:fail id=fail-1 queue=default retried=1/3 next_process_at=\S+ last_error="read bucket: connection refused" at \S+$`, lines[5])
	require.Len(t, lines, 6)
	require.NotContains(t, f.Value, chaosSecrets[0], "a task is named without its payload")

	var out bytes.Buffer
	require.NoError(t, (&Report{Figures: figs}).Print(&out))
	table, details, ok := strings.Cut(out.String(), "\nasynq_tasks_left_active_or_pending:\n")
	require.True(t, ok, out.String())
	require.Regexp(t, `(?m)^asynq_tasks_left_active_or_pending +5 +0 +FAIL$`, table)
	require.NotContains(t, table, "orphan-1", "the table holds the count, the tasks are listed under it")
	require.True(t, strings.HasPrefix(details, "  - "+strings.Join(lines[1:], "\n  - ")+"\n"), details)
	require.True(t, strings.HasSuffix(out.String(), "\nchaos: 0 passed, 1 failed\n"), out.String())
}

// fakeAsynqmon answers like asynqmon behind the operator's basic auth: the queue
// list, and each queue's task lists (500 for a queue Redis does not hold, as asynqmon
// does). tasks is the JSON of every task list.
func fakeAsynqmon(t *testing.T, password string, queues []string, tasks string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "operator" || p != password {
			w.Header().Set("WWW-Authenticate", `Basic realm="labelq"`)
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		path := strings.TrimPrefix(r.URL.Path, "/monitoring/api")
		if path == "/queues" {
			list := make([]map[string]string, 0, len(queues))
			for _, q := range queues {
				list = append(list, map[string]string{"queue": q})
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"queues": list})
			return
		}
		for _, q := range queues {
			if strings.HasPrefix(path, "/queues/"+q+"/") && strings.HasSuffix(path, "_tasks") && q != "gone" {
				fmt.Fprintf(w, `{"tasks": %s, "stats": {"queue": %q}}`, tasks, q)
				return
			}
		}
		http.Error(w, "NOT_FOUND: queue not found", http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestMonitoringScanFailsUnlessAsynqmonAnswers: a 401 (wrong password), a 500 on one
// task list, a 200 that is not asynqmon and a server that is gone all fail the scan;
// a 200 with a secret in a task fails the secret figure; a clean 200 passes both.
func TestMonitoringScanFailsUnlessAsynqmonAnswers(t *testing.T) {
	ctx := context.Background()
	const password = "operator-pw"
	mon := func(srv *httptest.Server, pw string) monitor {
		return monitor{Base: srv.URL + "/monitoring/api", User: "operator", Password: pw, HTTP: srv.Client()}
	}
	clean := fakeAsynqmon(t, password, []string{"default", "file:validate"}, `[{"id": "t1", "payload": {"version_id": 7}}]`)

	t.Run("401", func(t *testing.T) {
		fig, hits := checkMonitoring(ctx, mon(clean, "wrong"), chaosSecrets)
		requireCouldNotLook(t, []Figure{fig})
		require.Contains(t, fig.Value, "401")
		requireCouldNotLook(t, []Figure{secretsFigure(hits)})
	})
	t.Run("200 clean", func(t *testing.T) {
		fig, hits := checkMonitoring(ctx, mon(clean, password), chaosSecrets)
		requireClean(t, []Figure{fig, secretsFigure(hits)})
	})
	t.Run("200 with a secret", func(t *testing.T) {
		leaky := fakeAsynqmon(t, password, []string{"default"}, `[{"id": "t1", "error": "dial: `+chaosSecrets[0]+`"}]`)
		fig, hits := checkMonitoring(ctx, mon(leaky, password), chaosSecrets)
		requireClean(t, []Figure{fig})
		require.Equal(t, Figure{"secret_hits (logs, rows, tasks, asynqmon)", "1", "0", false}, secretsFigure(hits))
	})
	t.Run("500 on a task list", func(t *testing.T) {
		broken := fakeAsynqmon(t, password, []string{"default", "gone"}, `[]`)
		fig, hits := checkMonitoring(ctx, mon(broken, password), chaosSecrets)
		requireCouldNotLook(t, []Figure{fig, secretsFigure(hits)})
		require.Contains(t, fig.Value, "500")
	})
	t.Run("200 that is not asynqmon", func(t *testing.T) {
		page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, "<html><body>Sign in</body></html>")
		}))
		defer page.Close()
		fig, hits := checkMonitoring(ctx, mon(page, password), chaosSecrets)
		requireCouldNotLook(t, []Figure{fig, secretsFigure(hits)})
	})
	t.Run("gone", func(t *testing.T) {
		gone := httptest.NewServer(http.NotFoundHandler())
		m := mon(gone, password)
		gone.Close()
		fig, hits := checkMonitoring(ctx, m, chaosSecrets)
		requireCouldNotLook(t, []Figure{fig, secretsFigure(hits)})
	})
}

// TestSecretScansFailWhenTheyCannotLook: no logs or an unreadable log fail the scan,
// a secret in a log or a row is found, clean inputs pass.
func TestSecretScansFailWhenTheyCannotLook(t *testing.T) {
	dir := t.TempDir()
	cleanLog := filepath.Join(dir, "api.log")
	require.NoError(t, os.WriteFile(cleanLog, []byte("level=info msg=started\n"), 0o644))
	leakyLog := filepath.Join(dir, "worker-0.log")
	require.NoError(t, os.WriteFile(leakyLog, []byte("level=error msg=\"s3: "+chaosSecrets[0]+"\"\n"), 0o644))

	requireCouldNotLook(t, []Figure{secretsFigure(scanLogs(nil, chaosSecrets))})
	requireCouldNotLook(t, []Figure{secretsFigure(scanLogs([]string{cleanLog, filepath.Join(dir, "gone.log")}, chaosSecrets))})
	requireClean(t, []Figure{secretsFigure(scanLogs([]string{cleanLog}, chaosSecrets))})
	require.Equal(t, "1", secretsFigure(scanLogs([]string{cleanLog, leakyLog}, chaosSecrets)).Value)

	pg := testenv.Postgres(t)
	ctx := context.Background()
	requireClean(t, []Figure{secretsFigure(scanTables(ctx, pg.Pool, chaosSecrets))})
	_, err := pg.Q.OrganizationCreate(ctx, "org "+chaosSecrets[3])
	require.NoError(t, err)
	h := scanTables(ctx, pg.Pool, chaosSecrets)
	require.Equal(t, Figure{"secret_hits (logs, rows, tasks, asynqmon)", "1", "0", false}, secretsFigure(h))
	require.Equal(t, []string{"table organizations"}, h.Found)

	// One scan that could not look fails the sum even when the others are clean.
	f := secretsFigure(scanLogs([]string{cleanLog}, chaosSecrets), secretHits{Source: "asynqmon", Err: fmt.Errorf("GET /queues: 401 Unauthorized")})
	require.False(t, f.OK)
	require.Contains(t, f.Value, "asynqmon")
}

// TestCheckKills: kills whose tasks in flight could not be read say so.
func TestCheckKills(t *testing.T) {
	figs := checkKills(6, 6, map[string]int{"file:validate": 2, "project:export": 1}, 0)
	requireClean(t, figs)
	require.Equal(t, "file:validate=2 project:export=1", figs[1].Value)
	figs = checkKills(6, 6, map[string]int{"file:validate": 2}, 1)
	require.Equal(t, "file:validate=2 unknown(inspector error)=1", figs[1].Value)
	require.False(t, (&Report{Figures: checkKills(5, 6, nil, 0)}).OK())
}

// TestCheckSync: a storage whose objects are each linked once, to a file of its own
// with one valid version, synced by completed runs whose counts add up, passes;
// each way of breaking that fails its figure, and a requested run the table does
// not hold is not completed.
func TestCheckSync(t *testing.T) {
	pg := testenv.Postgres(t)
	ctx := context.Background()
	org := pg.Org(t)
	pr := pg.Project(t, org.ID)
	const n = 3
	var storageID int64
	require.NoError(t, pg.Pool.QueryRow(ctx, `INSERT INTO storages (org_id, project_id, name, prefix)
		VALUES ($1, $2, 'bucket', $3) RETURNING id`, org.ID, pr.ID, fmt.Sprintf("orgs/%d/in/", org.ID)).Scan(&storageID))
	var runs []int64
	for _, counts := range []string{"%d, %d, 0", "%d, 0, %d"} { // the first sync, then a scheduled re-sync
		var id int64
		require.NoError(t, pg.Pool.QueryRow(ctx, fmt.Sprintf(`INSERT INTO sync_runs (org_id, project_id, storage_id, status,
			keys_listed, keys_new, keys_unchanged, completed_at, scheduled_for)
			VALUES ($1, $2, $3, 'completed', `+counts+`, now(), CASE WHEN $4 THEN now() END) RETURNING id`, n, n),
			org.ID, pr.ID, storageID, len(runs) == 1).Scan(&id))
		runs = append(runs, id)
	}
	tick := func(runID int64) {
		t.Helper()
		_, err := pg.Pool.Exec(ctx, `INSERT INTO event_log (org_id, entity_type, entity_id, event_type, dedup_key, metadata)
			VALUES ($1, 'storage', $2, 'sync_scheduled', gen_random_uuid()::text, jsonb_build_object('run_id', $3::bigint))`, org.ID, storageID, runID)
		require.NoError(t, err)
	}
	tick(runs[0]) // a tick that joined the first run
	tick(runs[1])
	var versions []int64
	for i := range n {
		f := pg.File(t, pr, fmt.Sprintf("obj-%d.txt", i))
		v := pg.RegisterVersion(t, f, fmt.Sprintf("orgs/%d/in/obj-%d.txt", org.ID, i), testenv.Declared{})
		_, err := pg.Pool.Exec(ctx, `UPDATE file_versions SET validation_status = 'valid', checksum = $2, size_bytes = 5,
			validated_at = now(), storage_id = $3 WHERE id = $1`, v.ID, testenv.SHA256Hex([]byte(fmt.Sprint(i))), storageID)
		require.NoError(t, err)
		_, err = pg.Pool.Exec(ctx, `INSERT INTO storage_links (storage_id, key, org_id, project_id, file_id, version_id, etag, size_bytes)
			VALUES ($1, $2, $3, $4, $5, $6, 'e', 5)`, storageID, fmt.Sprintf("orgs/%d/in/obj-%d.txt", org.ID, i), org.ID, pr.ID, f.ID, v.ID)
		require.NoError(t, err)
		versions = append(versions, v.ID)
	}
	in := syncInputs{DB: pg.Pool, ProjectID: pr.ID, StorageID: storageID, Objects: n, RunIDs: runs, Joins: 1, WantJoins: 1, Scheduled: true}
	requireClean(t, checkSync(ctx, in))
	require.Equal(t, "2", figure(t, checkSync(ctx, in), "sync_schedule_ticks").Value)

	fails := func(t *testing.T, name, value string) {
		t.Helper()
		f := figure(t, checkSync(ctx, in), name)
		require.False(t, f.OK, "%+v", f)
		require.Equal(t, value, f.Value)
	}
	t.Run("a tick whose run is not the storage's", func(t *testing.T) {
		tick(runs[1] + 1000)
		fails(t, "sync_schedule_ticks_without_their_run", "1")
		_, err := pg.Pool.Exec(ctx, `DELETE FROM event_log WHERE entity_id = $1 AND metadata->>'run_id' = $2`, storageID, fmt.Sprint(runs[1]+1000))
		require.NoError(t, err)
	})
	t.Run("a schedule that never fired", func(t *testing.T) {
		other := in
		other.StorageID = storageID + 1000
		require.Equal(t, Figure{"sync_schedule_ticks", "0", "> 0", false}, figure(t, checkSync(ctx, other), "sync_schedule_ticks"))
	})
	t.Run("a requested run the table does not hold", func(t *testing.T) {
		unknown := in
		unknown.RunIDs = append(slices.Clone(runs), runs[1]+1000)
		f := figure(t, checkSync(ctx, unknown), "sync_runs_not_completed")
		require.Equal(t, Figure{"sync_runs_not_completed", "1", "0", false}, f)
	})
	t.Run("more objects than links", func(t *testing.T) {
		more := in
		more.Objects = n + 1
		f := figure(t, checkSync(ctx, more), "sync_objects_linked")
		require.Equal(t, Figure{"sync_objects_linked", "3", "4", false}, f)
	})
	exec := func(t *testing.T, q string, args ...any) {
		t.Helper()
		_, err := pg.Pool.Exec(ctx, q, args...)
		require.NoError(t, err)
	}
	t.Run("a version left pending", func(t *testing.T) {
		exec(t, `UPDATE file_versions SET validation_status = 'pending', validated_at = NULL WHERE id = $1`, versions[0])
		fails(t, "sync_linked_versions_not_terminal", "1")
		exec(t, `UPDATE file_versions SET validation_status = 'missing', validation_error = 'gone', validated_at = now() WHERE id = $1`, versions[0])
		fails(t, "sync_linked_versions_not_valid", "1")
		exec(t, `UPDATE file_versions SET validation_status = 'valid', validation_error = NULL WHERE id = $1`, versions[0])
	})
	t.Run("counts that do not add up", func(t *testing.T) {
		exec(t, `UPDATE sync_runs SET keys_new = keys_new + 1 WHERE id = $1`, runs[0])
		fails(t, "sync_runs_whose_counts_do_not_add_up", "1")
		fails(t, "sync_keys_new (all runs)", "4")
		exec(t, `UPDATE sync_runs SET keys_new = keys_new - 1 WHERE id = $1`, runs[0])
	})
	t.Run("a run that did not finish", func(t *testing.T) {
		var id int64
		require.NoError(t, pg.Pool.QueryRow(ctx, `INSERT INTO sync_runs (org_id, project_id, storage_id, status)
			VALUES ($1, $2, $3, 'running') RETURNING id`, org.ID, pr.ID, storageID).Scan(&id))
		fails(t, "sync_runs_not_completed", "1")
		exec(t, `DELETE FROM sync_runs WHERE id = $1`, id)
	})
	t.Run("a file made twice", func(t *testing.T) {
		f := pg.File(t, pr, "obj-0.txt (2)")
		fails(t, "sync_files_not_linked", "1")
		exec(t, `UPDATE storage_links SET file_id = $1 WHERE storage_id = $2 AND file_id = (SELECT file_id FROM file_versions WHERE id = $3)`,
			f.ID, storageID, versions[1])
		fails(t, "sync_files_not_linked", "1")
		exec(t, `UPDATE storage_links SET file_id = (SELECT file_id FROM storage_links WHERE version_id = $1) WHERE version_id = $2`, versions[0], versions[2])
		fails(t, "sync_files_linked_twice", "1")
		// The unique index covers live files; a second file of a name whose first
		// was archived is a file made twice too.
		exec(t, `UPDATE files SET deleted_at = now() WHERE id = $1`, f.ID)
		pg.File(t, pr, "obj-0.txt (2)")
		fails(t, "sync_file_names_twice", "1")
	})
}

// TestCheckWebhooks: a version and an export, each with its event delivered to
// the endpoints that subscribe to its type and verified at the reliable one,
// pass; each way of breaking that (an event the receiver never verified, a
// receipt of an event labelq never recorded, a bad signature, a second event
// for one state change, a terminal entity without its event, a missing or
// unsubscribed delivery, a delivery left pending) fails its figure, and a
// receiver that never ran fails as "could not look".
func TestCheckWebhooks(t *testing.T) {
	pg := testenv.Postgres(t)
	ctx := context.Background()
	keys := testenv.StorageKeyring(t)
	org := pg.Org(t)
	pr := pg.Project(t, org.ID)
	reliable, _ := pg.InsertWebhook(t, keys, org.ID, testenv.WebhookRow{URL: "http://127.0.0.1:9/hooks/reliable"})
	flaky, _ := pg.InsertWebhook(t, keys, org.ID, testenv.WebhookRow{URL: "http://127.0.0.1:9/hooks/flaky", EventTypes: flakyTypes,
		ProjectIDs: []int64{pr.ID}})
	exec := func(t *testing.T, q string, args ...any) {
		t.Helper()
		_, err := pg.Pool.Exec(ctx, q, args...)
		require.NoError(t, err)
	}
	emit := func(t *testing.T, ev webhook.Event) string {
		t.Helper()
		var id string
		require.NoError(t, database.Tx(ctx, pg.Pool, func(q *db.Queries, _ pgx.Tx) error {
			em, err := webhook.Emit(ctx, q, ev)
			id = em.ID
			return err
		}))
		require.NotEmpty(t, id)
		return id
	}
	f := pg.File(t, pr, "a.txt")
	v := pg.RegisterVersion(t, f, fmt.Sprintf("orgs/%d/a.txt", org.ID), testenv.Declared{})
	exec(t, `UPDATE file_versions SET validation_status = 'valid', checksum = $2, size_bytes = 1, validated_at = now() WHERE id = $1`,
		v.ID, testenv.SHA256Hex([]byte("a")))
	versionData := webhook.FileVersionData{FileVersionID: v.ID, FileID: f.ID, ProjectID: pr.ID, Status: "valid"}
	versionEvent := emit(t, webhook.Event{OrgID: org.ID, ProjectID: &pr.ID, Type: webhook.FileVersionValidated,
		EntityType: db.EntityTypeFileVersion, EntityID: v.ID, DedupKey: fmt.Sprintf("test:v:%d", v.ID), Data: versionData})
	var exportID int64
	require.NoError(t, pg.Pool.QueryRow(ctx, `INSERT INTO export_logs (org_id, project_id, status, storage_path, archive_sha256, size_bytes, completed_at)
		VALUES ($1, $2, 'completed', 'k.zip', $3, 3, now()) RETURNING id`, org.ID, pr.ID, testenv.SHA256Hex([]byte("zip"))).Scan(&exportID))
	exportEvent := emit(t, webhook.Event{OrgID: org.ID, ProjectID: &pr.ID, Type: webhook.ExportCompleted, EntityType: db.EntityTypeExport,
		EntityID: exportID, DedupKey: fmt.Sprintf("test:x:%d", exportID), Data: webhook.ExportData{ExportID: exportID, ProjectID: pr.ID, Status: "completed"}})
	// A match's event goes to the reliable endpoint alone (the flaky one does not subscribe).
	matchEvent := emit(t, webhook.Event{OrgID: org.ID, ProjectID: &pr.ID, Type: webhook.MatchCompleted, EntityType: db.EntityTypeProject,
		EntityID: pr.ID, DedupKey: "test:m", Data: webhook.MatchData{ProjectID: pr.ID, AssignmentIDs: []int64{}}})
	// A version of another project: the flaky endpoint, limited to pr, has no delivery of it.
	pr2 := pg.Project(t, org.ID)
	f2 := pg.File(t, pr2, "c.txt")
	v2 := pg.RegisterVersion(t, f2, fmt.Sprintf("orgs/%d/c.txt", org.ID), testenv.Declared{})
	exec(t, `UPDATE file_versions SET validation_status = 'valid', checksum = $2, size_bytes = 1, validated_at = now() WHERE id = $1`,
		v2.ID, testenv.SHA256Hex([]byte("c")))
	otherEvent := emit(t, webhook.Event{OrgID: org.ID, ProjectID: &pr2.ID, Type: webhook.FileVersionValidated,
		EntityType: db.EntityTypeFileVersion, EntityID: v2.ID, DedupKey: fmt.Sprintf("test:v:%d", v2.ID),
		Data: webhook.FileVersionData{FileVersionID: v2.ID, FileID: f2.ID, ProjectID: pr2.ID, Status: "valid"}})
	exec(t, `UPDATE webhook_deliveries SET status = 'succeeded', attempts = 1, finished_at = now() WHERE org_id = $1`, org.ID)

	now := time.Now()
	receipts := func() hookCounts {
		return hookCounts{ReliableOK: 4, FlakyOK: 2, ByID: map[string]hookReceipt{
			versionEvent: {Reliable: 1, Flaky: 1, First: now}, exportEvent: {Reliable: 2, Flaky: 1, First: now}, matchEvent: {Reliable: 1, First: now},
			otherEvent: {Reliable: 1, First: now},
		}}
	}
	in := webhookInputs{DB: pg.Pool, OrgID: org.ID, Reliable: reliable.ID, Flaky: flaky.ID, FlakyTypes: flakyTypes, FlakyProjects: []int64{pr.ID},
		Receipts: receipts(), Via: "api"}
	requireClean(t, checkWebhooks(ctx, in))
	require.Equal(t, "4 (4 received)", figure(t, checkWebhooks(ctx, in), "webhook_events (receipts verified at the reliable endpoint)").Value)
	require.Equal(t, "1", figure(t, checkWebhooks(ctx, in), "webhook_events_received_twice_at_reliable (at least once: allowed)").Value)

	fails := func(t *testing.T, in webhookInputs, name, value string) {
		t.Helper()
		f := figure(t, checkWebhooks(ctx, in), name)
		require.False(t, f.OK, "%+v", f)
		require.Equal(t, value, f.Value)
	}
	t.Run("an event never verified at the reliable endpoint", func(t *testing.T) {
		lost := in
		lost.Receipts = receipts()
		lost.Receipts.ByID[exportEvent] = hookReceipt{Flaky: 1}
		fails(t, lost, "webhook_events_without_verified_receipt (reliable endpoint)", "1")
	})
	t.Run("a receipt of an event labelq never recorded", func(t *testing.T) {
		invented := in
		invented.Receipts = receipts()
		invented.Receipts.ByID[webhook.NewEventID()] = hookReceipt{Reliable: 1, First: now}
		fails(t, invented, "webhook_receipts_of_unknown_events", "1")
	})
	t.Run("a signature that did not verify", func(t *testing.T) {
		bad := in
		bad.Receipts.Invalid = 1
		fails(t, bad, "webhook_requests_whose_signature_did_not_verify", "1")
	})
	t.Run("the receiver never ran", func(t *testing.T) {
		gone := in
		gone.Receipts = hookCounts{Unreachable: fmt.Errorf("the webhook receiver never started")}
		figs := checkWebhooks(ctx, gone)
		requireCouldNotLook(t, figs)
		require.True(t, strings.HasPrefix(figure(t, figs, "webhook_events_without_verified_receipt (reliable endpoint)").Value, "error: "))
	})
	t.Run("a state change told twice", func(t *testing.T) {
		again := emit(t, webhook.Event{OrgID: org.ID, ProjectID: &pr.ID, Type: webhook.FileVersionValidated,
			EntityType: db.EntityTypeFileVersion, EntityID: v.ID, DedupKey: "test:v:again", Data: versionData})
		in := in
		in.Receipts = receipts()
		in.Receipts.ByID[again] = hookReceipt{Reliable: 1, First: now}
		exec(t, `UPDATE webhook_deliveries SET status = 'succeeded', attempts = 1, finished_at = now() WHERE org_id = $1`, org.ID)
		fails(t, in, "webhook_events_twice_for_one_state_change (same entity, type and data)", "1")
		exec(t, `DELETE FROM webhook_events WHERE public_id = $1`, again)
		// A once-only change told twice, even with other data.
		twice := emit(t, webhook.Event{OrgID: org.ID, ProjectID: &pr.ID, Type: webhook.ExportCompleted, EntityType: db.EntityTypeExport,
			EntityID: exportID, DedupKey: "test:x:again", Data: webhook.ExportData{ExportID: exportID, ProjectID: pr.ID, Status: "completed", Trigger: "api"}})
		fails(t, in, "webhook_events_twice_for_a_once_only_change (export, sync run, assignment, llm run)", "1")
		fails(t, in, "webhook_deliveries_left_pending", "2") // its two deliveries
		exec(t, `DELETE FROM webhook_events WHERE public_id = $1`, twice)
		requireClean(t, checkWebhooks(ctx, webhookInputs{DB: pg.Pool, OrgID: org.ID, Reliable: reliable.ID, Flaky: flaky.ID,
			FlakyTypes: flakyTypes, FlakyProjects: []int64{pr.ID}, Receipts: receipts(), Via: "api"}))
	})
	t.Run("a terminal entity without its event", func(t *testing.T) {
		other := pg.RegisterVersion(t, f, fmt.Sprintf("orgs/%d/b.txt", org.ID), testenv.Declared{})
		exec(t, `UPDATE file_versions SET validation_status = 'missing', validation_error = 'gone', validated_at = now() WHERE id = $1`, other.ID)
		fails(t, in, "versions_without_webhook_event", "1")
		exec(t, `UPDATE file_versions SET validation_status = 'pending', validation_error = NULL, validated_at = NULL WHERE id = $1`, other.ID)
		exec(t, `UPDATE export_logs SET status = 'failed', error = 'x' WHERE id = $1`, exportID)
		fails(t, in, "exports_without_webhook_event", "1")
		exec(t, `UPDATE export_logs SET status = 'completed', error = NULL WHERE id = $1`, exportID)
	})
	t.Run("fan-out", func(t *testing.T) {
		exec(t, `DELETE FROM webhook_deliveries WHERE endpoint_id = $1 AND event_id = (SELECT id FROM webhook_events WHERE public_id = $2)`, flaky.ID, exportEvent)
		fails(t, in, "webhook_events_missing_a_subscribed_endpoint", "1")
		exec(t, `INSERT INTO webhook_deliveries (org_id, endpoint_id, event_id, status, attempts, finished_at)
			SELECT org_id, $1, id, 'succeeded', 1, now() FROM webhook_events WHERE public_id = $2`, flaky.ID, exportEvent)
		exec(t, `INSERT INTO webhook_deliveries (org_id, endpoint_id, event_id, status, attempts, finished_at)
			SELECT org_id, $1, id, 'succeeded', 1, now() FROM webhook_events WHERE public_id = $2`, flaky.ID, matchEvent)
		fails(t, in, "webhook_deliveries_to_an_unsubscribed_endpoint", "1")
		exec(t, `DELETE FROM webhook_deliveries WHERE endpoint_id = $1 AND event_id = (SELECT id FROM webhook_events WHERE public_id = $2)`, flaky.ID, matchEvent)
		// A subscribed type, but of a project the endpoint is not limited to.
		exec(t, `INSERT INTO webhook_deliveries (org_id, endpoint_id, event_id, status, attempts, finished_at)
			SELECT org_id, $1, id, 'succeeded', 1, now() FROM webhook_events WHERE public_id = $2`, flaky.ID, otherEvent)
		fails(t, in, "webhook_deliveries_to_an_unsubscribed_endpoint", "1")
		everyProject := in
		everyProject.FlakyProjects = nil
		requireClean(t, checkWebhooks(ctx, everyProject))
		exec(t, `DELETE FROM webhook_deliveries WHERE endpoint_id = $1 AND event_id = (SELECT id FROM webhook_events WHERE public_id = $2)`, flaky.ID, otherEvent)
		fails(t, everyProject, "webhook_events_missing_a_subscribed_endpoint", "1")
	})
	t.Run("a delivery that failed at the reliable endpoint", func(t *testing.T) {
		exec(t, `UPDATE webhook_deliveries SET status = 'failed' WHERE endpoint_id = $1 AND event_id = (SELECT id FROM webhook_events WHERE public_id = $2)`,
			reliable.ID, matchEvent)
		fails(t, in, "webhook_deliveries_failed (reliable endpoint)", "1")
		exec(t, `UPDATE webhook_deliveries SET status = 'succeeded' WHERE org_id = $1`, org.ID)
	})
	requireClean(t, checkWebhooks(ctx, in))
}

// TestHookReceiverVerifiesEveryRequest: the runner's receiver counts a request
// signed with the endpoint's secret as a receipt of its webhook-id, and one
// signed with another secret, or at an unknown path, as not verified.
func TestHookReceiverVerifiesEveryRequest(t *testing.T) {
	recv, err := startHookReceiver("127.0.0.1")
	require.NoError(t, err)
	defer recv.Close()
	secret := delivery.NewSecret()
	recv.setSecret(reliablePath, secret)
	post := func(path, secret, id string) int {
		t.Helper()
		body := []byte(`{"id":"` + id + `","type":"webhook.test"}`)
		req, err := http.NewRequest(http.MethodPost, recv.URL+path, bytes.NewReader(body))
		require.NoError(t, err)
		require.NoError(t, delivery.SetHeaders(req.Header, []string{secret}, id, time.Now(), body))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	id := webhook.NewEventID()
	require.Equal(t, http.StatusOK, post(reliablePath, secret, id))
	require.Equal(t, http.StatusOK, post(reliablePath, secret, id))
	require.Equal(t, http.StatusBadRequest, post(reliablePath, delivery.NewSecret(), webhook.NewEventID()))
	require.Equal(t, http.StatusBadRequest, post("/hooks/unknown", secret, webhook.NewEventID()))
	got := recv.snapshot()
	require.Equal(t, 4, got.Requests)
	require.Equal(t, 2, got.Invalid)
	require.Equal(t, 2, got.ReliableOK)
	require.Len(t, got.ByID, 1)
	require.Equal(t, 2, got.ByID[id].Reliable)
	require.False(t, got.ByID[id].First.IsZero())
}
