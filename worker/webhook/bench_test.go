package webhookdeliver_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/app"
	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/internal/webhook"
	"github.com/labelq/labelq/internal/webhook/delivery"
	webhookdeliver "github.com/labelq/labelq/worker/webhook"
)

// Sizes of BenchmarkWebhookDeliveries.
const (
	// DefaultBenchDeliveries is the deliveries of one run (LABELQ_BENCH_WEBHOOK_DELIVERIES).
	DefaultBenchDeliveries = 2000
	// benchConcurrency is the worker's concurrency, the endpoint's limit and the
	// baseline's number of posting goroutines.
	benchConcurrency = 8
	// benchEmitters are the goroutines that emit the events, one transaction each.
	benchEmitters = 4
)

// benchReceiver is a platform's receiver: every request verified with the
// Standard Webhooks library, the time of each event's first verified receipt kept.
type benchReceiver struct {
	srv    *httptest.Server
	secret string

	mu       sync.Mutex
	received map[string]time.Time // webhook-id → first verified receipt
	requests int
	failures int // requests whose signature did not verify
	repeats  int // verified requests of an id already received
}

func newBenchReceiver(b *testing.B) *benchReceiver {
	b.Helper()
	rc := &benchReceiver{received: map[string]time.Time{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		at := time.Now()
		rc.mu.Lock()
		defer rc.mu.Unlock()
		rc.requests++
		if err != nil || delivery.Verify(rc.secret, body, r.Header) != nil {
			rc.failures++
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		id := r.Header.Get(delivery.HeaderID)
		if _, seen := rc.received[id]; seen {
			rc.repeats++
		} else {
			rc.received[id] = at
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(rc.srv.Close)
	return rc
}

// reset forgets what was received (between labelq's run and the baseline's).
func (rc *benchReceiver) reset() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.received = map[string]time.Time{}
	rc.requests, rc.failures, rc.repeats = 0, 0, 0
}

type receiptCounts struct{ received, requests, failures, repeats int }

func (rc *benchReceiver) counts() receiptCounts {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return receiptCounts{len(rc.received), rc.requests, rc.failures, rc.repeats}
}

// BenchmarkWebhookDeliveries emits N events (one webhook.Emit per transaction, as
// a state change does, from benchEmitters goroutines) for one endpoint while the
// worker and relay roles run, and times from the first emit until every delivery
// is recorded succeeded: outbox relay, asynq, the webhook:deliver handler (slot,
// signed POST, the attempt's transaction), at worker and endpoint concurrency C.
// The receiver (HTTP/1.1 on loopback) verifies every signature with the library.
// Latency is from the event's created_at (its transaction's time) to its verified
// receipt.
//
// The baseline in the same run is a plain net/http loop POSTing the same bodies,
// each signed with delivery.SetHeaders, to the same receiver from C goroutines
// (the better of two passes, one before and one after). Targets: at least 0.5 ×
// the baseline's rate; p99 at most 1 s. Beside them, as context: the drain rate
// (N other events, emitted first with the workers stopped, then delivered); a
// durable floor at concurrency C, what any delivery log that survives a crash
// pays per delivery (the event committed, the POST, the outcome committed); and
// PostgreSQL round trips and durable commits per delivery (worker and relay
// roles) and per emit, counted by a tracer on their pools.
func BenchmarkWebhookDeliveries(b *testing.B) {
	n := DefaultBenchDeliveries
	if v := os.Getenv("LABELQ_BENCH_WEBHOOK_DELIVERIES"); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		require.NoError(b, err, "LABELQ_BENCH_WEBHOOK_DELIVERIES must be a number")
		require.Positive(b, n, "LABELQ_BENCH_WEBHOOK_DELIVERIES must be a number")
	}
	const c = benchConcurrency
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := newWebhookBench(b, c)

	baseline1 := plainLoop(b, w.rc, nil, n, c) // warms the receiver; its bodies are stand-ins

	// The drain: N events waiting in the outbox, then the workers start.
	w.emit(ctx, 1, n)
	runDone := make(chan error, 1)
	drainStart := time.Now()
	go func() { runDone <- w.a.Run(ctx, app.RoleWorker, app.RoleRelay) }()
	w.waitDelivered(ctx, 0, n)
	drain := time.Since(drainStart)
	mark := w.lastEventID(ctx)
	w.rc.reset()
	w.workerTrips.reset()
	w.emitTrips.reset()

	// The measure: N events emitted while the workers run.
	b.ResetTimer()
	cpuBefore := testenv.CPUSnapshot()
	start := time.Now()
	w.emit(ctx, int64(n)+1, n)
	emitted := time.Since(start)
	w.waitDelivered(ctx, mark, n)
	elapsed := time.Since(start)
	b.StopTimer()
	cpu := testenv.CPUSnapshot().Since(cpuBefore)
	workerTrips, workerCommits, emitTrips := w.workerTrips.trips.Load(), w.workerTrips.commits.Load(), w.emitTrips.trips.Load()
	tripsLine := fmt.Sprintf("worker and relay roles: %s; emitters: %s", &w.workerTrips, &w.emitTrips)
	got := w.rc.counts()
	require.Zero(b, got.failures, "every signature verifies")
	require.Equal(b, n, got.received, "every event received")
	lat := w.latencies(ctx, mark, n)
	var attempts int
	require.NoError(b, w.env.PG.Pool.QueryRow(ctx, `SELECT count(*) FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id
		WHERE d.event_id > $1`, mark).Scan(&attempts))
	cancel()
	require.NoError(b, <-runDone)

	// The baseline again, now over the very bodies labelq posted; the better pass counts.
	bodies := storedBodies(b, w.env.PG, mark)
	w.rc.reset()
	baseline2 := plainLoop(b, w.rc, bodies, n, c)
	baseline := max(baseline1, baseline2)
	w.rc.reset()
	floor := w.durableFloor(b, bodies, c)

	perSec := float64(n) / elapsed.Seconds()
	b.ReportMetric(perSec, "deliveries_per_s")
	b.ReportMetric(baseline, "plain_post_per_s")
	b.ReportMetric(perSec/baseline, "ratio")
	b.ReportMetric(0.5, "target_ratio")
	b.ReportMetric(float64(pct(lat, 50).Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(pct(lat, 99).Microseconds())/1000, "p99_ms")
	b.ReportMetric(1000, "target_p99_ms")
	b.ReportMetric(float64(n)/drain.Seconds(), "drain_deliveries_per_s")
	b.ReportMetric(floor, "durable_floor_per_s")
	b.ReportMetric(perSec/floor, "ratio_vs_floor")
	b.ReportMetric(float64(got.failures), "signature_failures")
	b.ReportMetric(cpu.Total()*1e6/float64(n), "cpu_us_per_delivery")
	b.ReportMetric(float64(workerTrips)/float64(n), "pg_round_trips_per_delivery")
	b.ReportMetric(float64(workerCommits)/float64(n), "pg_commits_per_delivery")
	b.ReportMetric(float64(emitTrips)/float64(n), "pg_round_trips_per_emit")
	b.Logf("%d events emitted in %s by %d emitters; all delivered after %s (%d attempts, %d repeated receipts); concurrency %d",
		n, emitted.Round(time.Millisecond), benchEmitters, elapsed.Round(time.Millisecond), attempts, got.repeats, c)
	b.Logf("drain: %d events emitted with the workers stopped, delivered in %s once they started", n, drain.Round(time.Millisecond))
	b.Logf("PostgreSQL during the measure, %s", tripsLine)
	b.Logf("plain POST loop: %.0f/s before, %.0f/s after; durable floor %.0f/s", baseline1, baseline2, floor)
	b.Logf("latency created_at → verified receipt: p50 %s p90 %s p99 %s max %s", pct(lat, 50), pct(lat, 90), pct(lat, 99), lat[len(lat)-1])
	b.Logf("CPU (%d cores, %.1f CPU-s available): %s", runtime.NumCPU(), elapsed.Seconds()*float64(runtime.NumCPU()), cpu)
}

// webhookBench is the benchmark's system: the app (worker and relay roles with
// webhook:deliver alone), an organization with one endpoint at the receiver.
type webhookBench struct {
	b                      *testing.B
	env                    *testenv.Env
	a                      *app.App
	org                    db.Organization
	rc                     *benchReceiver
	emitPool               *pgxpool.Pool
	workerTrips, emitTrips roundTrips
}

func newWebhookBench(b *testing.B, c int) *webhookBench {
	b.Helper()
	w := &webhookBench{b: b, env: testenv.New(b)}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	cfg := w.env.Config(b, map[string]string{
		"LABELQ_SECRET_KEY":                   "bench:" + base64.StdEncoding.EncodeToString(raw),
		"LABELQ_WEBHOOK_ALLOW_HTTP":           "127.0.0.1",
		"LABELQ_WEBHOOK_ALLOWED_NETWORKS":     "127.0.0.0/8",
		"LABELQ_WEBHOOK_ENDPOINT_CONCURRENCY": strconv.Itoa(c),
		"LABELQ_WORKER_CONCURRENCY":           strconv.Itoa(c),
	})
	a, err := app.New(context.Background(), cfg, testenv.Quiet())
	require.NoError(b, err)
	b.Cleanup(a.Close)
	w.a = a
	// The roles' pool, and the emitters', count their round trips.
	b.Cleanup(a.Pool.Close)
	a.Pool = tracedPool(b, w.env.PG.URL, cfg.DatabaseMaxConns, &w.workerTrips)
	w.emitPool = tracedPool(b, w.env.PG.URL, cfg.DatabaseMaxConns, &w.emitTrips)
	// webhook:deliver built from the settings as cmd/labelq's mountWebhooks builds it.
	rdb, err := a.RedisClient()
	require.NoError(b, err)
	pol, err := delivery.ParsePolicy(cfg.WebhookAllowHTTP, cfg.WebhookAllowedNetworks)
	require.NoError(b, err)
	sched, err := delivery.ParseSchedule(cfg.WebhookRetrySchedule)
	require.NoError(b, err)
	h := webhookdeliver.NewHandler(webhookdeliver.Deps{
		Pool: a.Pool, Redis: rdb, Keys: a.Keys, Policy: pol, Schedule: sched, Timeout: cfg.WebhookTimeout,
		Concurrency: cfg.WebhookConcurrency, DisableAfter: cfg.WebhookDisableAfter, Log: a.Log, Now: a.Now,
	})
	a.Mount = func(_ *app.App, mux *asynq.ServeMux) { tasks.Register(mux, h.Work) }

	w.rc = newBenchReceiver(b)
	w.org = w.env.PG.Org(b)
	_, secret := w.env.PG.InsertWebhook(b, a.Keys, w.org.ID, testenv.WebhookRow{URL: w.rc.srv.URL + "/hooks/labelq"})
	w.rc.mu.Lock()
	w.rc.secret = secret
	w.rc.mu.Unlock()
	return w
}

// emit writes events first..first+n-1 from benchEmitters goroutines, one
// transaction each.
func (w *webhookBench) emit(ctx context.Context, first int64, n int) {
	var next atomic.Int64
	next.Store(first)
	var wg sync.WaitGroup
	errs := make(chan error, benchEmitters)
	for range benchEmitters {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= first+int64(n) {
					return
				}
				if err := emitOne(ctx, w.emitPool, w.org.ID, i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(w.b, err)
	}
}

// waitDelivered waits until the n deliveries of the events after event id mark
// have succeeded; none may fail.
func (w *webhookBench) waitDelivered(ctx context.Context, mark int64, n int) {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var done, failed int
		require.NoError(w.b, w.env.PG.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'succeeded'),
			count(*) FILTER (WHERE status = 'failed') FROM webhook_deliveries WHERE event_id > $1`, mark).Scan(&done, &failed))
		require.Zero(w.b, failed, "no delivery fails")
		if done == n {
			return
		}
		require.True(w.b, time.Now().Before(deadline), "only %d of %d deliveries succeeded after 5 minutes", done, n)
		time.Sleep(5 * time.Millisecond)
	}
}

func (w *webhookBench) lastEventID(ctx context.Context) int64 {
	var id int64
	require.NoError(w.b, w.env.PG.Pool.QueryRow(ctx, `SELECT max(id) FROM webhook_events`).Scan(&id))
	return id
}

// latencies are, sorted, each event's (after mark) created_at to its verified receipt.
func (w *webhookBench) latencies(ctx context.Context, mark int64, n int) []time.Duration {
	rows, err := w.env.PG.Pool.Query(ctx, `SELECT public_id, created_at FROM webhook_events WHERE id > $1`, mark)
	require.NoError(w.b, err)
	type ev struct {
		ID      string
		Created time.Time
	}
	evs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[ev])
	require.NoError(w.b, err)
	require.Len(w.b, evs, n)
	lat := make([]time.Duration, 0, n)
	w.rc.mu.Lock()
	defer w.rc.mu.Unlock()
	for _, e := range evs {
		at, ok := w.rc.received[e.ID]
		require.True(w.b, ok, "event %s received", e.ID)
		lat = append(lat, at.Sub(e.Created))
	}
	slices.Sort(lat)
	return lat
}

// durableFloor is the least a delivery log that survives a crash does per
// delivery, at concurrency c: the event committed (one INSERT), the signed POST,
// the outcome committed (one UPDATE); nothing else. It returns deliveries per second.
func (w *webhookBench) durableFloor(b *testing.B, bodies []benchBody, c int) float64 {
	b.Helper()
	ctx := context.Background()
	pool := w.emitPool
	_, err := pool.Exec(ctx, `CREATE TABLE bench_floor (id bigint PRIMARY KEY, public_id text NOT NULL, body text NOT NULL,
		delivered_at timestamptz, created_at timestamptz NOT NULL DEFAULT now())`)
	require.NoError(b, err)
	w.rc.mu.Lock()
	secrets := []string{w.rc.secret}
	w.rc.mu.Unlock()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	url := w.rc.srv.URL + "/hooks/labelq"
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, c)
	start := time.Now()
	for range c {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(bodies) {
					return
				}
				e := bodies[i]
				_, err := pool.Exec(ctx, `INSERT INTO bench_floor (id, public_id, body) VALUES ($1, $2, $3)`, i, e.id, e.body)
				if err == nil {
					err = signedPost(client, url, secrets, e)
				}
				if err == nil {
					_, err = pool.Exec(ctx, `UPDATE bench_floor SET delivered_at = now() WHERE id = $1`, i)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	for err := range errs {
		require.NoError(b, err)
	}
	got := w.rc.counts()
	require.Zero(b, got.failures)
	require.Equal(b, len(bodies), got.received)
	return float64(len(bodies)) / took.Seconds()
}

// roundTrips counts what a pool sends to PostgreSQL: round trips (a statement on
// its own, or a pipelined batch: database.Tx sends BEGIN with the first statement
// and COMMIT with the held-back ones), statements, and durable commits (a COMMIT,
// or a statement outside a transaction that writes or locks: each waits for the
// WAL to reach the disk; a plain read does not).
type roundTrips struct {
	trips, statements, commits atomic.Int64
}

type autocommitKey struct{}

func (r *roundTrips) TraceQueryStart(ctx context.Context, c *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	r.trips.Add(1)
	r.statements.Add(1)
	switch {
	case d.SQL == "commit":
		r.commits.Add(1)
	case c.PgConn().TxStatus() == 'I' && !strings.HasPrefix(d.SQL, "begin"):
		return context.WithValue(ctx, autocommitKey{}, d.SQL)
	}
	return ctx
}

func (r *roundTrips) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryEndData) {
	sql, ok := ctx.Value(autocommitKey{}).(string)
	if ok && d.Err == nil && (!d.CommandTag.Select() || strings.Contains(sql, "FOR UPDATE")) {
		r.commits.Add(1)
	}
}

func (r *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	r.trips.Add(1)
	r.statements.Add(int64(d.Batch.Len()))
	for _, q := range d.Batch.QueuedQueries {
		if q.SQL == "commit" {
			r.commits.Add(1)
		}
	}
	return ctx
}

func (r *roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (r *roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

func (r *roundTrips) reset() {
	r.trips.Store(0)
	r.statements.Store(0)
	r.commits.Store(0)
}

func (r *roundTrips) String() string {
	return fmt.Sprintf("%d round trips, %d statements, %d durable commits", r.trips.Load(), r.statements.Load(), r.commits.Load())
}

// tracedPool is a pool like the workers' whose traffic r counts.
func tracedPool(b *testing.B, url string, conns int32, r *roundTrips) *pgxpool.Pool {
	b.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(b, err)
	cfg.MaxConns = conns
	cfg.ConnConfig.RuntimeParams["application_name"] = "labelq"
	cfg.ConnConfig.Tracer = r
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(b, err)
	b.Cleanup(p.Close)
	return p
}

// emitOne writes event i in a transaction of its own, as a state change does.
func emitOne(ctx context.Context, pool *pgxpool.Pool, orgID, i int64) error {
	sum := fmt.Sprintf("%064x", i)
	return database.Tx(ctx, pool, func(q *db.Queries, _ pgx.Tx) error {
		em, err := webhook.Emit(ctx, q, webhook.Event{
			OrgID: orgID, Type: webhook.FileVersionValidated, EntityType: db.EntityTypeFileVersion, EntityID: i,
			DedupKey: fmt.Sprintf("bench:file_version:%d", i),
			Data: webhook.FileVersionData{
				FileVersionID: i, FileID: i, ProjectID: 1, VersionNumber: 1, FileType: "dataset",
				Filename: fmt.Sprintf("sample-%05d.csv", i), StorageKey: fmt.Sprintf("orgs/%d/sample-%05d.csv", orgID, i),
				Status: "valid", ChecksumSHA256: &sum,
			},
		})
		if err == nil && len(em.Deliveries) != 1 {
			err = fmt.Errorf("event %d: %d deliveries, want 1", i, len(em.Deliveries))
		}
		return err
	})
}

type benchBody struct {
	id   string
	body []byte
}

// storedBodies are the ids and bodies, as labelq posted them, of the events after mark.
func storedBodies(b *testing.B, pg *testenv.PG, mark int64) []benchBody {
	b.Helper()
	rows, err := pg.Pool.Query(context.Background(), `SELECT public_id, body FROM webhook_events WHERE id > $1 ORDER BY id`, mark)
	require.NoError(b, err)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (benchBody, error) {
		var e benchBody
		var body string
		err := r.Scan(&e.id, &body)
		e.body = []byte(body)
		return e, err
	})
	require.NoError(b, err)
	return out
}

// plainLoop POSTs n signed bodies to the receiver from c goroutines with a plain
// net/http client and returns the requests per second. With no bodies it makes
// envelopes of the same shape and size.
func plainLoop(b *testing.B, rc *benchReceiver, bodies []benchBody, n, c int) float64 {
	b.Helper()
	if bodies == nil {
		bodies = make([]benchBody, n)
		for i := range bodies {
			id := webhook.NewEventID()
			bodies[i] = benchBody{id: id, body: fmt.Appendf(nil,
				`{"id":%q,"type":"file_version.validated","timestamp":"2026-01-01T00:00:00.000Z","organization_id":1,"data":{"file_version_id":%d,"file_id":%d,"project_id":1,"version_number":1,"file_type":"dataset","filename":"sample-%05d.csv","storage_key":"orgs/1/sample-%05d.csv","status":"valid","checksum_sha256":"%064x"}}`,
				id, i, i, i, i, i)}
		}
	}
	require.Len(b, bodies, n)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	rc.mu.Lock()
	secrets := []string{rc.secret}
	rc.mu.Unlock()
	url := rc.srv.URL + "/hooks/labelq"
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, c)
	start := time.Now()
	for range c {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				err := signedPost(client, url, secrets, bodies[i])
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	for err := range errs {
		require.NoError(b, err)
	}
	require.Equal(b, n, rc.counts().received)
	return float64(n) / took.Seconds()
}

// signedPost POSTs one body signed with delivery.SetHeaders and expects 204.
func signedPost(client *http.Client, url string, secrets []string, e benchBody) error {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(e.body))
	if err != nil {
		return err
	}
	if err := delivery.SetHeaders(req.Header, secrets, e.id, time.Now(), e.body); err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("POST %s: %s", e.id, resp.Status)
	}
	return nil
}

// pct is the p-th percentile of sorted durations.
func pct(sorted []time.Duration, p int) time.Duration {
	return sorted[min(len(sorted)-1, len(sorted)*p/100)]
}
