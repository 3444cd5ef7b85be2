package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/labelq/labelq/internal/tasks"
)

// The -netns variant's defaults. asynq (v0.26) leases a task for 30 s and its
// recoverer takes one over only once the lease has been expired for another 30 s
// (its allowance for clock skew), in a pass that runs once a minute on each
// worker: a cut of 60 s nearly always ends before anyone takes the cut worker's
// tasks over, so the cut lasts 90 s. The Postgres cut outlasts a statement, not a
// lease: the worker keeps its tasks (it still reaches Redis) with transactions
// open on the server.
const (
	DefaultRedisCut  = 90 * time.Second
	DefaultPGCut     = 30 * time.Second
	DefaultClockSkew = 30 * time.Second
	// partitionWait bounds the wait for a worker holding tasks (an open
	// transaction) to cut off.
	partitionWait = 90 * time.Second
)

// WithNetns turns a variant into its -netns form: every worker a host of its
// own, the partitions first (one worker cut off from Redis, then one from
// PostgreSQL mid-transaction), the variant's other faults after them, and the
// last worker's clock DefaultClockSkew ahead throughout. The workload is spread
// over the partitions and what the variant had (-duration overrides it).
func WithNetns(cfg Config) Config {
	cfg.Netns = true
	cfg.RedisCut = cmp0(cfg.RedisCut, DefaultRedisCut)
	cfg.PGCut = cmp0(cfg.PGCut, DefaultPGCut)
	cfg.ClockSkew = cmp0(cfg.ClockSkew, DefaultClockSkew)
	cfg.Duration += partitionPhase(cfg)
	return cfg
}

func cmp0(v, d time.Duration) time.Duration {
	if v == 0 {
		return d
	}
	return v
}

// partitionPhase is how long the partitions take, waits included.
func partitionPhase(cfg Config) time.Duration {
	return cfg.RedisCut + cfg.PGCut + 15*time.Second
}

// afterPartitions moves one of the variant's other faults (at, in a run of
// cfg.Duration) into the time after the partitions, keeping the order and the
// proportions: a Redis FLUSHALL during the Redis cut would take the cut worker's
// tasks away before anyone could take them over.
func (r *run) afterPartitions(at time.Duration) time.Duration {
	p := partitionPhase(r.cfg)
	if !r.cfg.Netns || r.cfg.Duration <= p {
		return at
	}
	return p + time.Duration(float64(at)*float64(r.cfg.Duration-p)/float64(r.cfg.Duration))
}

// startEnv starts the system, each worker in a namespace of its own when
// cfg.Netns; close removes the namespaces (after the processes in them are gone).
func startEnv(ctx context.Context, dir string, cfg Config) (env *Env, close func(), err error) {
	if !cfg.Netns {
		env, err = Start(ctx, dir, cfg.LLMLatency)
		return env, func() {}, err
	}
	names := make([]string, cfg.Workers)
	for i := range names {
		names[i] = workerName(i)
	}
	n, err := newHostNet(names)
	if err != nil {
		return nil, func() {}, err
	}
	if cfg.ClockSkew != 0 && len(names) > 0 {
		n.host(names[len(names)-1]).Env = []string{"LABELQ_CLOCK_SKEW=" + cfg.ClockSkew.String()}
	}
	env, err = StartOn(ctx, dir, cfg.LLMLatency, n)
	return env, n.Close, err
}

func workerName(i int) string { return fmt.Sprintf("worker-%d", i) }

// heldTask is a task a worker held when it was cut off.
type heldTask struct {
	ID, Type, Queue string
	Subject         subject
	// TakenOver is when Redis first showed the task out of the cut worker's
	// hands (retried, pending, done or gone) while it was still cut off.
	TakenOver time.Time
}

// cutRecord is one partition.
type cutRecord struct {
	Worker, Target string
	Start, End     time.Time
	Held           []heldTask
	OpenTx         int    // transactions open on the server when the cut began
	Err            string // why the cut did not happen as planned
}

// partitionWork is what the partitions did, for the invariants.
type partitionWork struct {
	mu       sync.Mutex
	cuts     []*cutRecord
	subjects map[subject]*watched
	skewed   string

	watchOnce sync.Once
	stop      chan struct{}
	done      chan struct{}
}

// killTarget is the index of a worker to kill -9: one not cut off, so a cut
// worker's late commits come from the process that began them.
func (r *run) killTarget() int {
	var free []int
	for i, w := range r.workers {
		if !r.env.Net.isCut(w.Name) {
			free = append(free, i)
		}
	}
	if len(free) == 0 {
		return rand.IntN(len(r.workers))
	}
	return free[rand.IntN(len(free))]
}

// partitionFaults runs the partitions one after the other.
func (r *run) partitionFaults(ctx context.Context) error {
	r.part.mu.Lock()
	if r.cfg.ClockSkew != 0 && len(r.workers) > 0 {
		r.part.skewed = r.workers[len(r.workers)-1].Name
	}
	r.part.mu.Unlock()
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: r.env.Redis.Addr})
	defer insp.Close()
	if err := r.cutRedis(ctx, insp); err != nil {
		return err
	}
	return r.cutPostgres(ctx, insp)
}

// cutRedis cuts the worker holding the most tasks off from Redis for
// cfg.RedisCut, watching its tasks being taken over, then reconnects it.
func (r *run) cutRedis(ctx context.Context, insp *asynq.Inspector) error {
	rec := &cutRecord{Target: cutRedis}
	r.addCut(rec)
	deadline := time.Now().Add(partitionWait)
	for {
		if ctx.Err() != nil {
			return nil
		}
		ok, err := r.tryCut(rec, insp, true, func(held map[string][]heldTask) string {
			best := ""
			for name, h := range held {
				if len(h) > len(held[best]) {
					best = name
				}
			}
			return best
		})
		if err != nil {
			return err
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			rec.Err = fmt.Sprintf("no worker held a task within %s", partitionWait)
			r.fault("Redis cut skipped: %s", rec.Err)
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	r.fault("%s cut off from Redis for %s holding %d tasks (%s)", rec.Worker, r.cfg.RedisCut, len(rec.Held), heldTypes(rec.Held))
	r.watchSubjects(rec)
	end := rec.Start.Add(r.cfg.RedisCut)
	for time.Now().Before(end) && ctx.Err() == nil {
		r.noteTakenOver(insp, rec)
		time.Sleep(time.Second)
	}
	return r.heal(rec)
}

// tryCut cuts the worker pick chooses (given the tasks each worker holds);
// false when it chose none, or one holding no task while needTasks. The tasks
// held are those asynq's server list names (it is written every 5 s) that Redis
// still shows active once the cut is in place.
func (r *run) tryCut(rec *cutRecord, insp *asynq.Inspector, needTasks bool, pick func(map[string][]heldTask) string) (bool, error) {
	// Under killMu: the worker chosen is the one cut, not a restarted copy.
	r.killMu.Lock()
	defer r.killMu.Unlock()
	held, err := r.heldByWorker(insp)
	if err != nil {
		return false, nil // Redis may be restarting; look again
	}
	name := pick(held)
	if name == "" || (needTasks && len(held[name]) == 0) {
		return false, nil
	}
	if err := r.env.Net.Cut(name, rec.Target); err != nil {
		return false, err
	}
	start := time.Now()
	var still []heldTask
	for _, t := range held[name] {
		if info, err := insp.GetTaskInfo(t.Queue, t.ID); err == nil && info.State == asynq.TaskStateActive {
			still = append(still, t)
		}
	}
	if needTasks && len(still) == 0 {
		// Its tasks ended before the cut: reconnect and look again.
		return false, r.env.Net.Heal(name, rec.Target)
	}
	r.part.mu.Lock()
	rec.Worker, rec.Start, rec.Held = name, start, still
	r.part.mu.Unlock()
	return true, nil
}

func (r *run) heal(rec *cutRecord) error {
	err := r.env.Net.Heal(rec.Worker, rec.Target)
	r.part.mu.Lock()
	rec.End = time.Now()
	r.part.mu.Unlock()
	if err != nil {
		return err
	}
	r.log("%s reconnected to %s after %.1fs", rec.Worker, rec.Target, rec.End.Sub(rec.Start).Seconds())
	return nil
}

// cutPostgres cuts a worker off from PostgreSQL while one of its transactions
// is open on the server (between two statements, or in a statement after
// others), for cfg.PGCut.
func (r *run) cutPostgres(ctx context.Context, insp *asynq.Inspector) error {
	rec := &cutRecord{Target: cutPostgres}
	r.addCut(rec)
	deadline := time.Now().Add(partitionWait)
	// First the sure way: hold pending versions' rows, so that a worker's
	// validation blocks inside its transaction on the row lock; cut that worker,
	// then let go: its backend takes the lock and stays open, waiting for
	// statements that cannot come. Looking for a transaction open by chance comes
	// second: labelq's transactions are mostly one pipelined round trip.
	if err := r.cutBlockedWorker(ctx, insp, rec, deadline); err != nil {
		return err
	}
	for ctx.Err() == nil && rec.OpenTx == 0 {
		if time.Now().After(deadline) {
			rec.Err = fmt.Sprintf("no worker had a transaction open within %s", partitionWait)
			r.fault("Postgres cut skipped: %s", rec.Err)
			return nil
		}
		open, err := r.openTransactions(ctx)
		if err != nil || len(open) == 0 {
			// labelq's transactions are short (most are one pipelined round trip):
			// look often, or the moment one is open between statements is missed.
			time.Sleep(2 * time.Millisecond)
			continue
		}
		var name string
		for w := range open {
			name = w
			break
		}
		ok, err := r.tryCut(rec, insp, false, func(map[string][]heldTask) string { return name })
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		// Which of those transactions were still open once the packets stopped.
		// (openTransactions leaves cut workers out: ask by backend.)
		if n, err := r.stillOpen(ctx, open[name]); err == nil {
			rec.OpenTx = n
		}
		if rec.OpenTx > 0 {
			break
		}
		// They committed in between: reconnect and try again.
		if err := r.env.Net.Heal(name, cutPostgres); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	r.fault("%s cut off from PostgreSQL for %s with %d transactions open, holding %d tasks (%s)",
		rec.Worker, r.cfg.PGCut, rec.OpenTx, len(rec.Held), heldTypes(rec.Held))
	r.watchSubjects(rec)
	select {
	case <-time.After(time.Until(rec.Start.Add(r.cfg.PGCut))):
	case <-ctx.Done():
	}
	return r.heal(rec)
}

// backend is a server process in a transaction: its pid and when the
// transaction began (a pid reused by a new transaction is another one).
type backend struct {
	PID   int32
	Start time.Time
}

// openTransactions lists, per worker, the backends in a transaction that has
// run a statement already: idle in it, or active in a later statement.
func (r *run) openTransactions(ctx context.Context) (map[string][]backend, error) {
	byAddr := map[string]string{}
	for _, w := range r.workers {
		if h := r.env.Net.host(w.Name); h != nil {
			byAddr[h.Addr] = w.Name
		}
	}
	rows, err := r.pool.Query(ctx, `SELECT pid, host(client_addr), xact_start FROM pg_stat_activity
		WHERE backend_type = 'client backend' AND client_addr IS NOT NULL AND xact_start IS NOT NULL
		AND (state IN ('idle in transaction', 'idle in transaction (aborted)')
		     OR (state = 'active' AND (xact_start < query_start OR backend_xid IS NOT NULL)))`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]backend{}
	for rows.Next() {
		var b backend
		var addr string
		if err := rows.Scan(&b.PID, &addr, &b.Start); err != nil {
			return nil, err
		}
		if name, ok := byAddr[addr]; ok && !r.env.Net.isCut(name) {
			out[name] = append(out[name], b)
		}
	}
	return out, rows.Err()
}

// heldByWorker reads asynq's server list: the tasks each worker process runs.
func (r *run) heldByWorker(insp *asynq.Inspector) (map[string][]heldTask, error) {
	servers, err := insp.Servers()
	if err != nil {
		return nil, err
	}
	byPID := map[int]string{}
	for _, w := range r.workers {
		if !r.env.Net.isCut(w.Name) {
			byPID[w.cmd.Process.Pid] = w.Name
		}
	}
	out := map[string][]heldTask{}
	for _, s := range servers {
		name, ok := byPID[s.PID]
		if !ok {
			continue
		}
		for _, w := range s.ActiveWorkers {
			out[name] = append(out[name], heldTask{ID: w.TaskID, Type: w.TaskType, Queue: w.Queue,
				Subject: subjectOf(w.TaskType, w.TaskPayload)})
		}
	}
	return out, nil
}

// noteTakenOver marks the held tasks Redis no longer shows active: only another
// process can have moved them, the cut worker cannot reach Redis.
func (r *run) noteTakenOver(insp *asynq.Inspector, rec *cutRecord) {
	for i := range rec.Held {
		t := &rec.Held[i]
		if !t.TakenOver.IsZero() {
			continue
		}
		info, err := insp.GetTaskInfo(t.Queue, t.ID)
		gone := errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound)
		if err != nil && !gone {
			continue
		}
		if gone || info.State != asynq.TaskStateActive {
			r.part.mu.Lock()
			t.TakenOver = time.Now()
			r.part.mu.Unlock()
			r.log("%s %s (held by %s, cut off) taken over", t.Type, t.ID, rec.Worker)
		}
	}
}

func (r *run) addCut(rec *cutRecord) {
	r.part.mu.Lock()
	defer r.part.mu.Unlock()
	r.part.cuts = append(r.part.cuts, rec)
}

func heldTypes(held []heldTask) string {
	n := map[string]int{}
	for _, t := range held {
		n[t.Type]++
	}
	parts := make([]string, 0, len(n))
	for t, c := range n {
		parts = append(parts, fmt.Sprintf("%s×%d", t, c))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// subject is the row a task works on, in the kinds the invariants follow.
type subject struct {
	Kind string // subjectVersion, subjectPreannotation, subjectExport, subjectDelivery, subjectSyncRun; "" untracked
	ID   int64
}

const (
	subjectVersion       = "version"
	subjectPreannotation = "preannotation"
	subjectExport        = "export"
	subjectDelivery      = "webhook_delivery"
	subjectSyncRun       = "sync_run"
)

func (s subject) String() string { return fmt.Sprintf("%s %d", s.Kind, s.ID) }

// subjectOf reads a task's subject from its payload; the zero subject for a
// kind the invariants do not follow (a project's match, a schedule firing).
func subjectOf(kind string, payload []byte) subject {
	var p struct {
		VersionID  int64 `json:"version_id"`
		ExportID   int64 `json:"export_id"`
		DeliveryID int64 `json:"delivery_id"`
		RunID      int64 `json:"run_id"`
	}
	if json.Unmarshal(payload, &p) != nil {
		return subject{}
	}
	switch kind {
	case tasks.Validate{}.Kind():
		return subject{subjectVersion, p.VersionID}
	case tasks.Preannotate{}.Kind():
		return subject{subjectPreannotation, p.VersionID}
	case tasks.Export{}.Kind():
		return subject{subjectExport, p.ExportID}
	case tasks.WebhookDeliver{}.Kind():
		return subject{subjectDelivery, p.DeliveryID}
	case tasks.StorageSync{}.Kind():
		return subject{subjectSyncRun, p.RunID}
	}
	return subject{}
}

// cutBlockedWorker makes the Postgres cut deterministic: the runner locks up to
// 50 pending versions' rows in a transaction of its own, waits until a worker's
// backend is blocked on one of those locks (its validation is inside a
// transaction: BEGIN and SELECT … FOR UPDATE sent, the answer not come), cuts
// that worker off from PostgreSQL, and commits. The blocked backend then gets its
// row and is idle in its transaction with the worker unreachable: what a host
// that loses the network mid-transaction leaves behind. It sets rec (OpenTx > 0)
// when it made the cut, and leaves rec alone when no worker blocked before the
// deadline or within 20 s.
func (r *run) cutBlockedWorker(ctx context.Context, insp *asynq.Inspector, rec *cutRecord, deadline time.Time) error {
	tryUntil := time.Now().Add(20 * time.Second)
	if deadline.Before(tryUntil) {
		tryUntil = deadline
	}
	for ctx.Err() == nil && time.Now().Before(tryUntil) {
		made, err := r.cutBlockedOnce(ctx, insp, rec, tryUntil)
		if err != nil || made {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil
}

func (r *run) cutBlockedOnce(ctx context.Context, insp *asynq.Inspector, rec *cutRecord, until time.Time) (bool, error) {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return false, nil
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return false, nil
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var locked int
	if err := tx.QueryRow(ctx, `WITH l AS (SELECT id FROM file_versions WHERE validation_status = 'pending'
		ORDER BY id DESC LIMIT 50 FOR UPDATE SKIP LOCKED) SELECT count(*) FROM l`).Scan(&locked); err != nil || locked == 0 {
		return false, nil
	}
	byAddr := map[string]string{}
	for _, w := range r.workers {
		if h := r.env.Net.host(w.Name); h != nil {
			byAddr[h.Addr] = w.Name
		}
	}
	// Hold the rows at most 10 s: validations of other versions go on meanwhile.
	hold := time.Now().Add(10 * time.Second)
	if until.Before(hold) {
		hold = until
	}
	for ctx.Err() == nil && time.Now().Before(hold) {
		var blocked []backend
		var name string
		rows, err := r.pool.Query(ctx, `SELECT a.pid, host(a.client_addr), a.xact_start FROM pg_stat_activity a
			WHERE a.client_addr IS NOT NULL AND a.xact_start IS NOT NULL
			  AND $1::int = ANY(pg_blocking_pids(a.pid))`, conn.Conn().PgConn().PID())
		if err == nil {
			for rows.Next() {
				var b backend
				var addr string
				if rows.Scan(&b.PID, &addr, &b.Start) == nil {
					if n, ok := byAddr[addr]; ok && !r.env.Net.isCut(n) && (name == "" || n == name) {
						name = n
						blocked = append(blocked, b)
					}
				}
			}
			rows.Close()
		}
		if name == "" {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		ok, err := r.tryCut(rec, insp, false, func(map[string][]heldTask) string { return name })
		if err != nil || !ok {
			return false, err
		}
		// Let go: the blocked backends take their rows, answer a worker that can
		// no longer hear, and stay in their transactions.
		if err := tx.Commit(ctx); err != nil {
			return false, err
		}
		time.Sleep(200 * time.Millisecond)
		if rec.OpenTx, err = r.stillOpen(ctx, blocked); err != nil {
			return false, err
		}
		if rec.OpenTx > 0 {
			return true, nil
		}
		// They ended (an error reached the worker first): reconnect, try again.
		return false, r.env.Net.Heal(name, cutPostgres)
	}
	return false, nil
}

// stillOpen counts the backends of bs still in the same transaction (same pid,
// same xact_start), whoever's they are and whether or not their worker is cut.
func (r *run) stillOpen(ctx context.Context, bs []backend) (int, error) {
	if len(bs) == 0 {
		return 0, nil
	}
	pids := make([]int32, len(bs))
	for i, b := range bs {
		pids[i] = b.PID
	}
	rows, err := r.pool.Query(ctx, `SELECT pid, xact_start FROM pg_stat_activity WHERE pid = ANY($1) AND xact_start IS NOT NULL`, pids)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var b backend
		if err := rows.Scan(&b.PID, &b.Start); err != nil {
			return 0, err
		}
		if slices.Contains(bs, b) {
			n++
		}
	}
	return n, rows.Err()
}
