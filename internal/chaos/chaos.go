package chaos

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/labelq/labelq/internal/llm/llmtest"
	"github.com/labelq/labelq/internal/queue"
	"github.com/labelq/labelq/internal/testenv"
)

// Config sizes a run.
type Config struct {
	Dir         string        // where logs and data go (a temp dir when empty)
	Versions    int           // uploads through the API
	Workers     int           // worker processes
	Exports     int           // on-demand exports
	SyncObjects int           // objects in the storage synced during the run (0: no sync)
	Kills       int           // kill -9 of a worker, spread over the run
	Duration    time.Duration // how long uploads and faults are spread over
	MinIODown   time.Duration // how long MinIO stays down
	LLMLatency  time.Duration
	Settle      time.Duration // how long to wait for everything to finish
	Faults      bool          // inject faults (false: a pure load run)
	ExtraEnv    []string      // LABELQ_… overrides for every process
	// Redis is the topology: "" (RedisSingle), RedisCluster or RedisSentinel
	// (redis_topology.go).
	Redis string
	// Netns: each worker in a network namespace of its own, and the partition
	// faults (WithNetns, netns.go, partition.go).
	Netns bool
	// PgBouncer: every labelq process reaches PostgreSQL through a PgBouncer in
	// transaction pooling mode of PgBouncerPool server connections per role.
	PgBouncer     bool
	PgBouncerPool int
	RedisCut      time.Duration // how long one worker is cut off from Redis
	PGCut         time.Duration // how long one worker is cut off from PostgreSQL
	ClockSkew     time.Duration // how far ahead the last worker's clock is
	// BigVersions and SmallVersions are the fairness workload (fairness.go): the
	// largest organization's backlog, registered through versions:batch at the
	// start, and the smallest one's uploads while it drains. 0 and 0: none.
	BigVersions   int
	SmallVersions int
	Log           io.Writer
}

// Short is the variant that runs inside `make test`.
func Short() Config {
	return Config{Versions: 60, Workers: 2, Exports: 3, SyncObjects: 200, Kills: 6, Duration: 25 * time.Second,
		MinIODown: 4 * time.Second, LLMLatency: 50 * time.Millisecond, Settle: 3 * time.Minute, Faults: true,
		BigVersions: 3000, SmallVersions: 8}
}

// Full is `make chaos`.
func Full() Config {
	return Config{Versions: 600, Workers: 3, Exports: 8, SyncObjects: 2000, Kills: 24, Duration: 4 * time.Minute,
		MinIODown: 30 * time.Second, LLMLatency: 200 * time.Millisecond, Settle: 6 * time.Minute, Faults: true,
		BigVersions: 20000, SmallVersions: 20}
}

type run struct {
	cfg       Config
	env       *Env
	api       *client
	pool      *pgxpool.Pool
	orgID     int64
	projectID int64
	log       func(format string, args ...any)

	mu         sync.Mutex
	uploads    []Upload
	exportIDs  []int64
	scheduleID int64
	sync       *syncWork
	hooks      *webhookWork
	workers    []*Proc
	kills      int
	killTypes  map[string]int
	// uninspected counts kills whose tasks in flight could not be read.
	uninspected int
	faults      []string
	workStart   time.Time
	// killMu serialises kills: the fault loop's and the one aimed at the sync.
	killMu sync.Mutex
	// part is what the -netns partitions did (partition.go).
	part partitionWork
	// fair is the big and the small organizations' work (fairness.go); nil
	// without it.
	fair *fairWork
	// outages are the faults that stalled validation, for the fairness check.
	outages []outage
}

// Run executes the scenario and returns its figures.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	dir := cfg.Dir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "labelq-chaos-"); err != nil {
			return nil, err
		}
		defer func() { _ = os.RemoveAll(dir) }()
	}
	start := time.Now()
	var logMu sync.Mutex
	logf := func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		// The progress log is for the person watching; a failed write to it
		// changes no figure.
		_, _ = fmt.Fprintf(cfg.Log, "[%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	logf("starting private Postgres, Redis, MinIO and the LLM test server; building labelq")
	env, closeNet, err := startEnv(ctx, dir, cfg)
	defer closeNet()
	if err != nil {
		return nil, err
	}
	env.Extra = cfg.ExtraEnv
	defer env.Close()
	if err := env.useRedis(ctx, cfg.Redis); err != nil {
		return nil, err
	}
	if cfg.PgBouncer {
		if err := env.usePgBouncer(ctx, cmp.Or(cfg.PgBouncerPool, 8)); err != nil {
			return nil, fmt.Errorf("start pgbouncer: %w", err)
		}
		logf("every labelq process reaches PostgreSQL through pgbouncer %s (transaction pooling, %d server connections per role)", env.bouncer.Addr, env.bouncer.PoolSize)
	}
	r := &run{cfg: cfg, env: env, log: logf, killTypes: map[string]int{}}
	if r.pool, err = pgxpool.New(ctx, env.DatabaseURL()); err != nil {
		return nil, err
	}
	defer r.pool.Close()
	err = r.setup(ctx)
	if r.hooks != nil {
		defer r.hooks.recv.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}

	// Uploads, approvals and exports run while faults are injected.
	r.workStart = time.Now()
	cpuStart := r.sampleCPU()
	wctx, stopWork := context.WithCancel(ctx)
	defer stopWork()
	var main, side sync.WaitGroup
	errc := make(chan error, 6)
	main.Add(1)
	go func() { defer main.Done(); errc <- r.uploadAll(wctx) }()
	main.Add(1)
	go func() { defer main.Done(); errc <- r.fairnessAll(wctx) }()
	main.Add(1)
	go func() { defer main.Done(); errc <- r.syncAll(wctx) }()
	if cfg.Faults {
		main.Add(1)
		go func() { defer main.Done(); errc <- r.injectFaults(wctx) }()
	}
	side.Add(1)
	go func() { defer side.Done(); errc <- r.approveAndExport(wctx, ctx) }()
	main.Wait()
	stopWork() // approvals stop once every export is requested
	side.Wait()
	close(errc)
	for err := range errc {
		if err != nil && !errors.Is(err, context.Canceled) {
			return nil, err
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	logf("workload done: %d uploads, %d exports, %d kills; waiting for the system to settle", len(r.uploads), len(r.exportIDs), r.kills)
	if err := r.api.call(ctx, "PATCH", fmt.Sprintf("/v1/export-schedules/%d", r.scheduleID), map[string]any{"enabled": false}, "", nil); err != nil {
		return nil, err
	}
	if err := r.stopSyncSchedule(ctx); err != nil {
		return nil, err
	}
	settleStart := time.Now()
	settled := r.waitSettled(ctx)
	settleSecs := time.Since(settleStart).Seconds()
	logf("settled=%v after %.1fs; checking invariants", settled, settleSecs)
	rep := r.check(ctx)
	// Every version registered (the three organizations' uploads, the synced ones,
	// the big backlog's results files), not the model's outputs: in a load run,
	// the dataset versions.
	var runVersions int
	if err := r.pool.QueryRow(ctx, `SELECT count(*) FROM file_versions WHERE generation_method = 'upload'`).Scan(&runVersions); err != nil {
		return nil, fmt.Errorf("count the run's versions: %w", err)
	}
	rep.Figures = append(rep.Figures, capacityFigures(cpuStart, r.sampleCPU(), runVersions)...)
	rep.add("settle_seconds", fmt.Sprintf("%.1f", settleSecs), "", true)
	rep.add("versions_per_second (first upload to settled)", fmt.Sprintf("%.1f", float64(len(r.uploads))/time.Since(r.workStart).Seconds()), "", true)
	rep.add("run_seconds", fmt.Sprintf("%.1f", time.Since(start).Seconds()), "", true)
	secrets := r.secrets()
	// asynqmon is read through the api process, so before the processes stop; the
	// logs are scanned once every process has written its last line.
	monFigure, monHits := checkMonitoring(ctx, r.monitor(), secrets)
	for _, p := range append(r.workers, r.procs()...) {
		p.Term(10 * time.Second)
	}
	insp := asynq.NewInspector(r.env.RedisOpt())
	defer insp.Close()
	hits := []secretHits{
		scanLogs(r.env.Logs(), secrets),
		scanTables(ctx, r.pool, secrets),
		scanTasks(insp, queue.Names(), secrets),
		monHits,
	}
	for _, h := range hits {
		for _, where := range h.Found {
			r.log("SECRET FOUND in %s", where)
		}
		if h.Err != nil {
			r.log("secret scan of %s could not look: %v", h.Source, h.Err)
		}
	}
	rep.Figures = append(rep.Figures, monFigure, secretsFigure(hits...))
	return rep, nil
}

// secrets are every credential of the run, as the scans look for them.
func (r *run) secrets() []string {
	out := []string{r.env.Secrets.S3Secret, r.env.Secrets.LLMKey, r.env.Secrets.OperatorPassword, r.env.Secrets.APIToken,
		r.env.Secrets.StorageKey}
	if r.sync != nil && r.sync.notifySecret != "" {
		out = append(out, r.sync.notifySecret)
	}
	if r.fair != nil {
		out = append(out, r.fair.big.token, r.fair.small.token)
	}
	return append(out, r.hooks.secrets()...)
}

// monitor reaches asynqmon through the api process, as the operator.
func (r *run) monitor() monitor {
	return monitor{Base: "http://" + r.env.HTTPAddr + "/monitoring/api", User: "operator",
		Password: r.env.Secrets.OperatorPassword, HTTP: &http.Client{Timeout: 30 * time.Second}}
}

// check turns the final state into figures, each with the value it must have, one
// invariant group after another (see invariants.go).
func (r *run) check(ctx context.Context) *Report {
	insp := asynq.NewInspector(r.env.RedisOpt())
	defer insp.Close()
	rep := &Report{Faults: r.faults}
	for _, figs := range [][]Figure{
		checkVersions(ctx, r.pool, r.uploads, r.cfg.Versions),
		checkDuplicates(ctx, r.pool, r.uploads),
		checkExports(ctx, exportInputs{DB: r.pool, Objects: r.env.Store.Client, Bucket: r.env.Bucket,
			Prefix:    fmt.Sprintf("orgs/%d/projects/%d/exports/", r.orgID, r.projectID),
			ExportIDs: r.exportIDs, Want: r.cfg.Exports, ScheduleID: r.scheduleID}),
		checkMatching(ctx, r.pool),
		checkPreannotation(ctx, r.pool, r.env.LLM.Stats()),
		checkEvents(ctx, r.pool),
		r.webhookFigures(ctx),
		checkQueues(insp, queue.Names()),
		r.syncFigures(ctx),
		checkKills(r.kills, r.cfg.Kills, r.killTypes, r.uninspected),
		r.redisFigures(),
		r.partitionFigures(ctx),
		r.fairnessFigures(ctx),
	} {
		rep.Figures = append(rep.Figures, figs...)
	}
	return rep
}

func (r *run) procs() []*Proc {
	r.env.mu.Lock()
	defer r.env.mu.Unlock()
	var out []*Proc
	for _, p := range r.env.procs {
		if p.Role != "worker" {
			out = append(out, p)
		}
	}
	return out
}

func (r *run) setup(ctx context.Context) error {
	var err error
	if r.env.Secrets.APIToken, r.orgID, err = r.createToken(ctx, "chaos-org"); err != nil {
		return err
	}
	for _, p := range []struct{ name, role string }{{"api", "api"}, {"relay", "relay"}, {"scheduler", "scheduler"}} {
		if _, err := r.env.StartProc(p.name, p.role); err != nil {
			return err
		}
	}
	for i := range r.cfg.Workers {
		p, err := r.env.StartProc(fmt.Sprintf("worker-%d", i), "worker")
		if err != nil {
			return err
		}
		r.workers = append(r.workers, p)
	}
	r.api = &client{base: "http://" + r.env.HTTPAddr, token: r.env.Secrets.APIToken, http: &http.Client{Timeout: 20 * time.Second}}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(r.api.base + "/healthz")
		if err == nil {
			_ = resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			return errors.New("the API did not come up in 60s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The endpoints first: every state change of the run has them.
	if err := r.setupWebhooks(ctx); err != nil {
		return err
	}
	var p struct {
		ID int64 `json:"id"`
	}
	schema := map[string]any{"type": "object", "additionalProperties": false, "required": []string{"label", "confidence"},
		"properties": map[string]any{"label": map[string]any{"type": "string"}, "confidence": map[string]any{"type": "number"}}}
	if err := r.api.call(ctx, "POST", "/v1/projects", map[string]any{
		"name": "chaos", "requirements_text": "Label the sentence's topic.", "llm_enabled": true, "llm_model": "chaos-model",
		"annotation_schema": schema, "assign_reviewers": true, "min_language_proficiency": 3,
	}, "project", &p); err != nil {
		return err
	}
	r.projectID = p.ID
	if err := r.setupFlakyWebhook(ctx); err != nil {
		return err
	}
	langs := []map[string]float64{{"en": 4.5}, {"en": 3.5, "zh": 5}, {"de": 4, "en": 3}, {"en": 5}, {"zh": 4}, {"en": 4}}
	for i, l := range langs {
		if err := r.api.call(ctx, "POST", "/v1/users", map[string]any{
			"email": fmt.Sprintf("annotator%d@chaos.test", i), "role": "annotator", "language_expertise": l,
			"availability": map[string]any{"timezone": "UTC", "monday": []string{"09:00-17:00"}},
			"skill_score":  0.5 + float64(i)/20, "qa_approval_rate": 0.9, "max_active_jobs": 10000,
		}, fmt.Sprintf("user-%d", i), nil); err != nil {
			return err
		}
	}
	for i := range 2 {
		if err := r.api.call(ctx, "POST", "/v1/users", map[string]any{
			"email": fmt.Sprintf("qc%d@chaos.test", i), "role": "qc", "language_expertise": map[string]float64{"en": 5},
			"availability": map[string]any{"tuesday": []string{"10:00-18:00"}}, "skill_score": 0.9, "qa_approval_rate": 0.95, "max_active_jobs": 10000,
		}, fmt.Sprintf("qc-%d", i), nil); err != nil {
			return err
		}
	}
	var s struct {
		ID int64 `json:"id"`
	}
	if err := r.api.call(ctx, "POST", fmt.Sprintf("/v1/projects/%d/export-schedules", r.projectID),
		map[string]any{"cron_spec": "@every 8s", "timezone": "UTC"}, "schedule", &s); err != nil {
		return err
	}
	r.scheduleID = s.ID
	if err := r.setupSync(ctx); err != nil {
		return err
	}
	return r.setupFairness(ctx)
}

func (r *run) uploadAll(ctx context.Context) error {
	gap := r.cfg.Duration / time.Duration(max(r.cfg.Versions, 1))
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	var firstErr error
	var mu sync.Mutex
	for i := range r.cfg.Versions {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case sem <- struct{}{}:
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			u, err := r.upload(ctx, i)
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("upload %d: %w", i, err)
				}
				mu.Unlock()
				return
			}
			r.mu.Lock()
			r.uploads = append(r.uploads, u)
			r.mu.Unlock()
		}()
		time.Sleep(gap)
	}
	wg.Wait()
	return firstErr
}

// approveAndExport approves jobs as they appear (so exports have content) and
// requests exports spread over the run. ctx ends with the workload; the remaining
// exports are still requested then, under outer (which ends the whole run).
func (r *run) approveAndExport(ctx, outer context.Context) error {
	approved := map[int64]bool{}
	exportEvery := r.cfg.Duration / time.Duration(max(r.cfg.Exports, 1))
	nextExport := time.Now().Add(exportEvery / 2)
	after := int64(0)
	for {
		if ctx.Err() != nil && len(r.exportIDs) >= r.cfg.Exports {
			return nil
		}
		// Jobs are approved once matched, as a platform would after the annotator's work.
		var assigned struct {
			Items []struct {
				ID    int64  `json:"id"`
				JobID int64  `json:"job_id"`
				Role  string `json:"role"`
			} `json:"items"`
		}
		if err := r.api.call(outer, "GET", fmt.Sprintf("/v1/projects/%d/assignments?after=%d&limit=200", r.projectID, after), nil, "", &assigned); err != nil {
			return err
		}
		for _, a := range assigned.Items {
			after = max(after, a.ID)
			if a.Role != "annotator" || approved[a.JobID] || a.JobID%3 == 0 { // a third stays in progress
				continue
			}
			var job struct {
				FileVersionID int64 `json:"file_version_id"`
			}
			if err := r.api.call(outer, "PATCH", fmt.Sprintf("/v1/jobs/%d", a.JobID),
				map[string]any{"status": "reviewed", "review_status": "approved"}, "", &job); err != nil {
				return err
			}
			if err := r.api.call(outer, "PATCH", fmt.Sprintf("/v1/jobs/%d", a.JobID),
				map[string]any{"result_version_id": job.FileVersionID}, "", nil); err != nil {
				return err
			}
			approved[a.JobID] = true
		}
		if len(r.exportIDs) < r.cfg.Exports && (time.Now().After(nextExport) || ctx.Err() != nil) {
			var e struct {
				ID int64 `json:"id"`
			}
			n := len(r.exportIDs)
			if err := r.api.call(outer, "POST", fmt.Sprintf("/v1/projects/%d/exports", r.projectID),
				map[string]any{"options": map[string]any{"include_llm": n%2 == 0}}, fmt.Sprintf("export-%d", n), &e); err != nil {
				return err
			}
			r.mu.Lock()
			r.exportIDs = append(r.exportIDs, e.ID)
			r.mu.Unlock()
			nextExport = time.Now().Add(exportEvery)
		}
		select {
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
			if len(r.exportIDs) >= r.cfg.Exports || outer.Err() != nil {
				return nil
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

func (r *run) fault(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.mu.Lock()
	r.faults = append(r.faults, msg)
	r.mu.Unlock()
	r.log("FAULT %s", msg)
}

// injectFaults spreads the kills over the run and places each outage at its own point.
func (r *run) injectFaults(ctx context.Context) error {
	d := r.cfg.Duration
	// outage names the steps that stall validation (the LLM storm does not), for
	// the fairness check (fairness.go).
	type step struct {
		at     time.Duration
		outage string
		do     func() error
	}
	redisFault, redisRestart := "a Redis FLUSHALL", "a Redis restart"
	if r.env.redisTopo != nil {
		redisFault, redisRestart = "a Redis failover", "a Redis failover"
	}
	steps := []step{
		{d * 20 / 100, "", func() error {
			faults := make([]llmtest.Fault, 0, 40)
			for range 30 {
				faults = append(faults, llmtest.Fault{Status: 429, RetryAfter: time.Second})
			}
			for range 10 {
				faults = append(faults, llmtest.Fault{Delay: 2 * time.Second})
			}
			r.env.LLM.Next(faults...)
			r.fault("LLM 429 storm (30 × 429 with Retry-After: 1) and 10 slow replies (2 s)")
			return nil
		}},
		{d * 35 / 100, redisFault, func() error {
			if r.env.redisTopo != nil {
				return r.failover(ctx, 1)
			}
			c := redisClient(r.env.Redis.Addr)
			defer c.Close()
			r.fault("Redis FLUSHALL")
			return c.FlushAll(ctx).Err()
		}},
		{d * 50 / 100, "the Postgres restart", func() error {
			r.fault("Postgres restart")
			if err := r.env.PG.Stop(); err != nil {
				return err
			}
			time.Sleep(2 * time.Second)
			return r.env.PG.Start(context.WithoutCancel(ctx))
		}},
		{d * 62 / 100, "the MinIO outage", func() error {
			r.fault("MinIO stopped for %s", r.cfg.MinIODown)
			old := r.env.minio()
			old.Kill()
			time.Sleep(r.cfg.MinIODown)
			m, err := startMinIO(context.WithoutCancel(ctx), old.Dir, r.env.Secrets.S3Secret, old.Endpoint)
			if err != nil {
				return fmt.Errorf("restart MinIO: %w", err)
			}
			r.env.setMinIO(m)
			return nil
		}},
		{d * 80 / 100, redisRestart, func() error {
			if r.env.redisTopo != nil {
				return r.failover(ctx, 2)
			}
			r.fault("Redis restart (nothing kept)")
			r.env.Redis.Stop()
			time.Sleep(time.Second)
			return r.env.Redis.Start(context.WithoutCancel(ctx))
		}},
	}
	if r.cfg.Netns { // the partitions first, the other faults after them
		for i := range steps {
			steps[i].at = r.afterPartitions(steps[i].at)
		}
		steps = append(steps, step{0, partitionsOutage, func() error { return r.partitionFaults(ctx) }})
	}
	start := time.Now()
	killGap := d / time.Duration(max(r.cfg.Kills, 1))
	insp := asynq.NewInspector(r.env.RedisOpt())
	defer insp.Close()
	// Outages run on their own, so kills go on while MinIO is down.
	var wg sync.WaitGroup
	errc := make(chan error, len(steps))
	for _, st := range steps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-time.After(time.Until(start.Add(st.at))):
			case <-ctx.Done():
				return
			}
			began := time.Now()
			err := st.do()
			if st.outage != "" {
				r.addOutage(st.outage, began, time.Now(), st.outage == partitionsOutage)
			}
			if err != nil {
				errc <- err
			}
		}()
	}
	for i := range r.cfg.Kills {
		select {
		case <-time.After(time.Until(start.Add(killGap/2 + time.Duration(i)*killGap))):
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		}
		r.killWorker(insp)
	}
	wg.Wait()
	close(errc)
	return <-errc
}

// killWorker kill -9s a worker, preferring one in the middle of a task, and starts
// it again.
func (r *run) killWorker(insp *asynq.Inspector) {
	r.killMu.Lock()
	defer r.killMu.Unlock()
	// Redis may be down at this moment (its restart is one of the faults): the kill
	// goes on, and the figure counts it as one whose tasks in flight are unknown.
	active, inspErr := tasksInFlight(insp, queue.Names())
	r.noteValidating(insp)
	i := r.killTarget()
	w := r.workers[i]
	w.Kill()
	r.noteValidating(insp)
	r.kills++
	if inspErr != nil {
		r.uninspected++
		r.log("kill -9 %s (tasks in flight: unknown: %v)", w.Name, inspErr)
	} else {
		types := make([]string, 0, len(active))
		for t := range active {
			types = append(types, t)
			r.killTypes[t]++
		}
		slices.Sort(types)
		r.log("kill -9 %s (tasks in flight: %v)", w.Name, types)
	}
	time.Sleep(300 * time.Millisecond)
	p, err := r.env.StartProc(w.Name, "worker")
	if err != nil {
		r.log("restart %s: %v", w.Name, err)
		return
	}
	r.workers[i] = p
}

// waitSettled waits until nothing is pending anywhere: every version terminal, every
// export finished, the outbox empty, no pre-annotation pending, no webhook delivery
// pending, no task left in asynq.
func (r *run) waitSettled(ctx context.Context) bool {
	deadline := time.Now().Add(r.cfg.Settle)
	insp := asynq.NewInspector(r.env.RedisOpt())
	defer insp.Close()
	// Neither an unreadable database nor an unreachable Redis counts as settled.
	why := "the deadline passed before the first look"
	// Settled is two idle looks in a row, a second apart: asynq's aggregator
	// holds a group's tasks out of every count between taking the group and
	// enqueueing its aggregated task, so one look can fall in that gap.
	idleLooks := 0
	for time.Now().Before(deadline) && ctx.Err() == nil {
		pending, err := count(ctx, r.pool, `SELECT
			(SELECT count(*) FROM file_versions WHERE validation_status = 'pending')
		  + (SELECT count(*) FROM export_logs WHERE status IN ('pending', 'running'))
		  + (SELECT count(*) FROM outbox WHERE enqueued_at IS NULL)
		  + (SELECT count(*) FROM llm_runs WHERE status IN ('pending', 'running'))
		  + (SELECT count(*) FROM sync_runs WHERE status IN ('pending', 'running'))
		  + (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending')`)
		switch {
		case err != nil:
			why = err.Error()
		case pending > 0:
			why = fmt.Sprintf("%d rows still pending", pending)
		default:
			idle, err := queuesIdle(insp, queue.Names())
			if err == nil && idle {
				if idleLooks++; idleLooks == 2 {
					return true
				}
				time.Sleep(time.Second)
				continue
			}
			why = "asynq still holds tasks to run"
			if err != nil {
				why = err.Error()
			}
		}
		idleLooks = 0
		time.Sleep(time.Second)
	}
	r.log("not settled: %s", why)
	return false
}

// Figure is one line of the report.
type Figure struct {
	Name, Value, Want string
	OK                bool
}

// Report is what a run proved.
type Report struct {
	Figures []Figure
	Faults  []string
}

func (rep *Report) add(name, value, want string, ok bool) {
	rep.Figures = append(rep.Figures, Figure{name, value, want, ok})
}

// OK is true when every invariant held.
func (rep *Report) OK() bool {
	for _, f := range rep.Figures {
		if !f.OK {
			return false
		}
	}
	return true
}

// Failed lists the figures that broke their invariant.
func (rep *Report) Failed() []Figure {
	var out []Figure
	for _, f := range rep.Figures {
		if !f.OK {
			out = append(out, f)
		}
	}
	return out
}

// Print writes the report as a table, closing with "N passed, M failed".
func (rep *Report) Print(w io.Writer) error {
	var buf bytes.Buffer
	buf.WriteString("\nFaults injected:\n")
	for _, f := range rep.Faults {
		buf.WriteString("  - " + f + "\n")
	}
	tw := tabwriter.NewWriter(&buf, 2, 8, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "\nFIGURE\tVALUE\tMUST BE\tOK") // into memory: cannot fail
	passed, failed := 0, 0
	// A value's first line goes in the table; the lines after it (the tasks a
	// count names) are listed under the table, so the columns stay narrow.
	var details bytes.Buffer
	for _, f := range rep.Figures {
		mark := "ok"
		if !f.OK {
			mark, failed = "FAIL", failed+1
		} else if f.Want != "" {
			passed++
		}
		value, more, _ := strings.Cut(f.Value, "\n")
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Name, value, f.Want, mark)
		if more != "" {
			fmt.Fprintf(&details, "\n%s:\n  - %s\n", f.Name, strings.ReplaceAll(more, "\n", "\n  - "))
		}
	}
	_ = tw.Flush()
	buf.Write(details.Bytes())
	fmt.Fprintf(&buf, "\nchaos: %d passed, %d failed\n", passed, failed)
	_, err := w.Write(buf.Bytes())
	return err
}

var _ = testenv.FreePort

// Load is a run without faults: n versions through the whole pipeline with three
// workers, for throughput. The LLM limits are raised: the point is labelq's own
// throughput, not the provider's quota.
func Load(n int) Config {
	return Config{Versions: n, Workers: 3, Exports: 2, Kills: 0, Duration: 0,
		LLMLatency: 20 * time.Millisecond, Settle: 30 * time.Minute, Faults: false,
		ExtraEnv: []string{"LABELQ_LLM_RPM=1000000", "LABELQ_LLM_TPM=1000000000", "LABELQ_LLM_MAX_CONCURRENT=32",
			"LABELQ_WORKER_CONCURRENCY=16", "LABELQ_DATABASE_MAX_CONNS=16"}}
}
