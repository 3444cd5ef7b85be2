package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"
	"github.com/redis/go-redis/v9"

	"github.com/labelq/labelq/internal/llm/llmtest"
)

// Every invariant group below takes its inputs as arguments and returns its figures.
// A check that cannot look (Postgres down, a closed pool, a cancelled context, an
// unreadable row stream, Redis unreachable, MinIO failing a listing, asynqmon
// answering anything but 200) never reads as a clean figure: the figures it could not
// compute read "error: …" and fail.

func redisClient(addr string) *redis.Client { return redis.NewClient(&redis.Options{Addr: addr}) }

// querier is what the database checks read through (a *pgxpool.Pool in a run).
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func count(ctx context.Context, db querier, q string, args ...any) (int, error) {
	var n int
	if err := db.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("%s: %w", firstWords(q), err)
	}
	return n, nil
}

func firstWords(q string) string {
	q = strings.Join(strings.Fields(q), " ")
	if len(q) > 80 {
		q = q[:80]
	}
	return q
}

// errorValue is how a figure reads when its check could not look.
func errorValue(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) > 240 {
		s = s[:240] + "…"
	}
	return "error: " + s
}

// failedFigure is a figure whose input could not be read.
func failedFigure(name, want string, err error) Figure {
	return Figure{Name: name, Value: errorValue(err), Want: want, OK: false}
}

// zeroFigure is a count that must be 0.
func zeroFigure(ctx context.Context, db querier, name, q string, args ...any) Figure {
	n, err := count(ctx, db, q, args...)
	if err != nil {
		return failedFigure(name, "0", err)
	}
	return Figure{name, fmt.Sprint(n), "0", n == 0}
}

// checkVersions: every registered version is terminal, each with the outcome its
// content calls for. A registered version the table does not hold counts as lost.
func checkVersions(ctx context.Context, db querier, uploads []Upload, want int) []Figure {
	figs := []Figure{{"versions_registered", fmt.Sprint(len(uploads)), fmt.Sprint(want), len(uploads) == want}}
	statuses, lost, wrong, err := readVersions(ctx, db, uploads)
	if err != nil {
		return append(figs,
			failedFigure("versions_lost (not terminal)", "0", err),
			failedFigure("versions_wrong_outcome", "0", err),
			failedFigure("versions_by_status", "", err))
	}
	keys := make([]string, 0, len(statuses))
	for k := range statuses {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, statuses[k]))
	}
	return append(figs,
		Figure{"versions_lost (not terminal)", fmt.Sprint(lost), "0", lost == 0},
		Figure{"versions_wrong_outcome", fmt.Sprint(wrong), "0", wrong == 0},
		Figure{"versions_by_status", strings.Join(parts, " "), "", true})
}

func readVersions(ctx context.Context, db querier, uploads []Upload) (statuses map[string]int, lost, wrong int, err error) {
	byID := make(map[int64]Upload, len(uploads))
	for _, u := range uploads {
		byID[u.VersionID] = u
	}
	rows, err := db.Query(ctx, `SELECT id, validation_status::text FROM file_versions WHERE generation_method = 'upload'`)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("read file_versions: %w", err)
	}
	defer rows.Close()
	statuses = map[string]int{}
	seen := make(map[int64]bool, len(uploads))
	for rows.Next() {
		var id int64
		var st string
		if err := rows.Scan(&id, &st); err != nil {
			return nil, 0, 0, fmt.Errorf("read file_versions: %w", err)
		}
		statuses[st]++
		if st == "pending" {
			lost++
		}
		if u, ok := byID[id]; ok {
			seen[id] = true
			if st != u.Want && st != "pending" {
				wrong++
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, 0, 0, fmt.Errorf("read file_versions: %w", err)
	}
	for id := range byID {
		if !seen[id] {
			lost++
		}
	}
	return statuses, lost, wrong, nil
}

// checkDuplicates: copies of the same bytes form one group; whichever validates first
// is the original, and every other copy points at a member of the group.
func checkDuplicates(ctx context.Context, db querier, uploads []Upload) []Figure {
	dups := 0
	for _, u := range uploads {
		if u.Kind == KindDuplicate {
			dups++
		}
	}
	figs := []Figure{zeroFigure(ctx, db, "duplicate_groups_not_linked", `SELECT count(*) FROM (SELECT 1 FROM file_versions
		WHERE validation_status = 'valid' AND generation_method = 'upload'
		GROUP BY project_id, checksum HAVING count(duplicate_of) <> count(*) - 1) g`)}
	linked, err := count(ctx, db, `SELECT count(*) FROM file_versions WHERE duplicate_of IS NOT NULL AND generation_method = 'upload'`)
	if err != nil {
		return append(figs, failedFigure("duplicates_linked", fmt.Sprint(dups), err))
	}
	return append(figs, Figure{"duplicates_linked", fmt.Sprint(linked), fmt.Sprint(dups), linked == dups})
}

// exportInputs is what the export invariants read.
type exportInputs struct {
	DB         querier
	Objects    *minio.Client
	Bucket     string
	Prefix     string  // where the project's export archives are
	ExportIDs  []int64 // the exports the run requested
	Want       int     // how many it was to request
	ScheduleID int64
}

// checkExports: one completed export per request and per schedule tick, one object each.
func checkExports(ctx context.Context, in exportInputs) []Figure {
	figs := []Figure{{"exports_requested", fmt.Sprint(len(in.ExportIDs)), fmt.Sprint(in.Want), len(in.ExportIDs) == in.Want}}
	// Counted from the completed side, so a requested export the table does not hold
	// is not completed either.
	done, err := count(ctx, in.DB, `SELECT count(*) FROM export_logs WHERE id = ANY($1) AND status = 'completed'`, in.ExportIDs)
	if err != nil {
		figs = append(figs, failedFigure("exports_not_completed", "0", err))
	} else {
		notDone := len(in.ExportIDs) - done
		figs = append(figs, Figure{"exports_not_completed", fmt.Sprint(notDone), "0", notDone == 0})
	}
	if ticks, err := count(ctx, in.DB, `SELECT count(*) FROM export_logs WHERE schedule_id = $1`, in.ScheduleID); err != nil {
		figs = append(figs, failedFigure("schedule_ticks_exported", "> 0", err))
	} else {
		figs = append(figs, Figure{"schedule_ticks_exported", fmt.Sprint(ticks), "> 0", ticks > 0})
	}
	figs = append(figs,
		zeroFigure(ctx, in.DB, "schedule_ticks_not_completed", `SELECT count(*) FROM export_logs WHERE schedule_id = $1 AND status <> 'completed'`, in.ScheduleID),
		zeroFigure(ctx, in.DB, "schedule_ticks_with_two_exports", `SELECT count(*) FROM (SELECT 1 FROM export_logs WHERE schedule_id IS NOT NULL
		GROUP BY schedule_id, scheduled_for HAVING count(*) > 1) d`))
	completed, err := count(ctx, in.DB, `SELECT count(*) FROM export_logs WHERE status = 'completed'`)
	if err != nil {
		return append(figs, failedFigure("export_objects_vs_completed", "equal", err))
	}
	objects, err := countObjects(ctx, in.Objects, in.Bucket, in.Prefix)
	if err != nil {
		return append(figs, failedFigure("export_objects_vs_completed", "equal", err))
	}
	return append(figs, Figure{"export_objects_vs_completed", fmt.Sprintf("%d/%d", objects, completed), "equal", objects == completed})
}

func countObjects(ctx context.Context, c *minio.Client, bucket, prefix string) (int, error) {
	ctx, cancel := context.WithCancel(ctx) // ends the listing goroutine on an early return
	defer cancel()
	n := 0
	for o := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true, Prefix: prefix}) {
		if o.Err != nil {
			return 0, fmt.Errorf("list %s/%s: %w", bucket, prefix, o.Err)
		}
		n++
	}
	// A listing cut short by the context ends without an error object.
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("list %s/%s: %w", bucket, prefix, err)
	}
	return n, nil
}

// checkMatching: no job holds two live assignments of one role, and no open job is
// left without an annotator.
func checkMatching(ctx context.Context, db querier) []Figure {
	return []Figure{
		zeroFigure(ctx, db, "jobs_with_two_live_assignments_of_a_role", `SELECT count(*) FROM (SELECT 1 FROM assignments
		WHERE status IN ('assigned', 'accepted', 'in_progress') GROUP BY job_id, role HAVING count(*) > 1) d`),
		zeroFigure(ctx, db, "open_jobs_left_unassigned", `SELECT count(*) FROM annotation_jobs j WHERE j.deleted_at IS NULL
		AND j.status IN ('not_started', 'in_progress') AND NOT EXISTS (SELECT 1 FROM assignments a
		WHERE a.job_id = j.id AND a.role = 'annotator' AND a.status IN ('assigned', 'accepted', 'in_progress'))`),
	}
}

// checkPreannotation: no cache key paid twice; st is the LLM test server's counters.
func checkPreannotation(ctx context.Context, db querier, st llmtest.Stats) []Figure {
	figs := []Figure{zeroFigure(ctx, db, "llm_cache_keys_paid_twice", `SELECT count(*) FROM (SELECT 1 FROM llm_runs WHERE status = 'succeeded'
		AND cached_from_id IS NULL GROUP BY cache_key HAVING count(*) > 1) d`)}
	paid, err := count(ctx, db, `SELECT count(*) FROM llm_runs WHERE status = 'succeeded' AND cached_from_id IS NULL`)
	var hits int
	if err == nil {
		hits, err = count(ctx, db, `SELECT count(*) FROM llm_runs WHERE cached_from_id IS NOT NULL`)
	}
	if err != nil {
		figs = append(figs,
			failedFigure("llm_paid_runs / cache_hits / provider_successes", "", err),
			failedFigure("llm_provider_calls_lost_to_kills", "", err))
	} else {
		// A worker killed after the provider answered and before its commit pays again
		// on retry; the database never records two paid runs for one key.
		figs = append(figs,
			Figure{"llm_paid_runs / cache_hits / provider_successes", fmt.Sprintf("%d / %d / %d", paid, hits, st.Succeeded), "", true},
			Figure{"llm_provider_calls_lost_to_kills", fmt.Sprint(max(st.Succeeded-paid, 0)), "", true})
	}
	return append(figs, Figure{"llm_429_answered", fmt.Sprint(st.ByStatus[429]), "", true})
}

// checkEvents: every state change has its event.
func checkEvents(ctx context.Context, db querier) []Figure {
	checks := []struct{ name, q string }{
		{"versions_without_outcome_event", `SELECT count(*) FROM file_versions v WHERE v.generation_method = 'upload'
			AND v.validation_status <> 'pending' AND NOT EXISTS (SELECT 1 FROM event_log e WHERE e.entity_type = 'file_version'
			AND e.entity_id = v.id
			AND e.event_type = CASE v.validation_status WHEN 'valid' THEN 'validated' ELSE v.validation_status::text END)`},
		{"assignments_without_event", `SELECT count(*) FROM assignments a WHERE NOT EXISTS (SELECT 1 FROM event_log e
			WHERE e.entity_type = 'assignment' AND e.entity_id = a.id AND e.event_type = 'assigned')`},
		{"exports_without_event", `SELECT count(*) FROM export_logs x WHERE x.status = 'completed' AND NOT EXISTS (SELECT 1 FROM event_log e
			WHERE e.entity_type = 'export' AND e.entity_id = x.id AND e.event_type = 'exported')`},
		{"llm_runs_without_event", `SELECT count(*) FROM llm_runs l WHERE l.status IN ('succeeded', 'failed', 'skipped')
			AND NOT EXISTS (SELECT 1 FROM event_log e WHERE (e.entity_type = 'llm_run' AND e.entity_id = l.id)
			OR (e.entity_type = 'file_version' AND e.entity_id = l.file_version_id AND e.event_type LIKE 'preannotat%'))`},
	}
	figs := make([]Figure, 0, len(checks))
	for _, c := range checks {
		figs = append(figs, zeroFigure(ctx, db, c.name, c.q))
	}
	return figs
}

// queueInfos reads the named queues. A queue Redis does not list holds nothing (after
// a FLUSHALL or a restart it exists again only once a task is enqueued to it); a Redis
// that cannot be read is an error, never an empty queue.
func queueInfos(insp *asynq.Inspector, names []string) ([]*asynq.QueueInfo, error) {
	known, err := insp.Queues()
	if err != nil {
		return nil, fmt.Errorf("asynq queues: %w", err)
	}
	exists := make(map[string]bool, len(known))
	for _, q := range known {
		exists[q] = true
	}
	var out []*asynq.QueueInfo
	for _, q := range names {
		if !exists[q] {
			continue
		}
		info, err := insp.GetQueueInfo(q)
		if err != nil {
			return nil, fmt.Errorf("asynq queue %s: %w", q, err)
		}
		out = append(out, info)
	}
	return out, nil
}

// queuesIdle is true when no named queue holds a task that is still to run.
func queuesIdle(insp *asynq.Inspector, names []string) (bool, error) {
	infos, err := queueInfos(insp, names)
	if err != nil {
		return false, err
	}
	for _, info := range infos {
		if info.Aggregating > 0 {
			return false, nil
		}
		left, err := workLeft(insp, info)
		if err != nil || len(left) > 0 {
			return false, err
		}
	}
	return true, nil
}

// heartbeat tells a periodic maintenance pass caught in flight: the scheduler
// enqueues every maintenance: kind (reconcile every few seconds in a run, the
// retention passes) whatever the workload, for one attempt each, so one pending
// or running at the moment of a look is not work left behind. Matched by the
// kind's prefix, so a pass added later is covered without this list knowing it.
// One orphaned (active, its lease run out, no worker), scheduled or retrying is
// not a pass in flight: it counts.
func heartbeat(t *asynq.TaskInfo) bool {
	return strings.HasPrefix(t.Type, "maintenance:") && !t.IsOrphaned &&
		(t.State == asynq.TaskStateActive || t.State == asynq.TaskStatePending)
}

// workLeft lists a queue's active, pending, scheduled and retrying tasks other
// than maintenance passes in flight. It lists tasks only for a queue whose counts are not zero.
func workLeft(insp *asynq.Inspector, info *asynq.QueueInfo) ([]*asynq.TaskInfo, error) {
	if info.Active+info.Pending+info.Scheduled+info.Retry == 0 {
		return nil, nil
	}
	var left []*asynq.TaskInfo
	for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){
		insp.ListActiveTasks, insp.ListPendingTasks, insp.ListScheduledTasks, insp.ListRetryTasks,
	} {
		for page := 1; ; page++ {
			ts, err := list(info.Queue, asynq.PageSize(100), asynq.Page(page))
			if err != nil {
				return nil, fmt.Errorf("asynq queue %s: %w", info.Queue, err)
			}
			for _, t := range ts {
				if !heartbeat(t) {
					left = append(left, t)
				}
			}
			if len(ts) < 100 {
				break
			}
		}
	}
	return left, nil
}

// describeTask names a task left behind: what the operator needs to find it in
// asynqmon and tell a stuck task from one still on its way. The payload is left
// out (it may carry what the secret scan looks for); the id names the subject.
func describeTask(t *asynq.TaskInfo) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s id=%s queue=%s retried=%d/%d", t.State, t.Type, t.ID, t.Queue, t.Retried, t.MaxRetry)
	if t.IsOrphaned {
		b.WriteString(" orphaned (lease expired, no worker)")
	}
	if t.Group != "" {
		fmt.Fprintf(&b, " group=%s", t.Group)
	}
	if !t.NextProcessAt.IsZero() && (t.State == asynq.TaskStateScheduled || t.State == asynq.TaskStateRetry) {
		fmt.Fprintf(&b, " next_process_at=%s", t.NextProcessAt.UTC().Format(time.RFC3339))
	}
	lastErr := "none"
	if t.LastErr != "" {
		lastErr = strings.Join(strings.Fields(t.LastErr), " ")
		if len(lastErr) > 200 {
			lastErr = lastErr[:200] + "…"
		}
		lastErr = strconv.Quote(lastErr)
		if !t.LastFailedAt.IsZero() {
			lastErr += " at " + t.LastFailedAt.UTC().Format(time.RFC3339)
		}
	}
	b.WriteString(" last_error=" + lastErr)
	return b.String()
}

// leftValue is the figure's value: the count, then one line per task counted
// (Report.Print lists those lines under the table).
func leftValue(left []*asynq.TaskInfo) string {
	lines := []string{fmt.Sprint(len(left))}
	for _, t := range left {
		lines = append(lines, describeTask(t))
	}
	return strings.Join(lines, "\n")
}

// checkQueues: asynq holds nothing active or still to run but maintenance passes in flight. The
// figure names every task it counts.
func checkQueues(insp *asynq.Inspector, names []string) []Figure {
	infos, err := queueInfos(insp, names)
	if err != nil {
		return []Figure{
			failedFigure("asynq_tasks_left_active_or_pending", "0", err),
			failedFigure("asynq_archived (bad input, by design)", "", err),
		}
	}
	var left []*asynq.TaskInfo
	archived := 0
	for _, info := range infos {
		l, err := workLeft(insp, info)
		if err != nil {
			return []Figure{
				failedFigure("asynq_tasks_left_active_or_pending", "0", err),
				failedFigure("asynq_archived (bad input, by design)", "", err),
			}
		}
		left = append(left, l...)
		archived += info.Archived
	}
	return []Figure{
		{"asynq_tasks_left_active_or_pending", leftValue(left), "0", len(left) == 0},
		{"asynq_archived (bad input, by design)", fmt.Sprint(archived), "", true},
	}
}

// tasksInFlight lists the types of the tasks active in the named queues.
func tasksInFlight(insp *asynq.Inspector, names []string) (map[string]bool, error) {
	active := map[string]bool{}
	for _, q := range names {
		tasks, err := insp.ListActiveTasks(q, asynq.PageSize(100))
		if errors.Is(err, asynq.ErrQueueNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, t := range tasks {
			active[t.Type] = true
		}
	}
	return active, nil
}

// checkKills: the run killed as many workers as it was to. uninspected counts kills
// whose tasks in flight could not be read (Redis was down at that moment).
func checkKills(kills, want int, types map[string]int, uninspected int) []Figure {
	kt := make([]string, 0, len(types)+1)
	for t, n := range types {
		kt = append(kt, fmt.Sprintf("%s=%d", t, n))
	}
	sort.Strings(kt)
	if uninspected > 0 {
		kt = append(kt, fmt.Sprintf("unknown(inspector error)=%d", uninspected))
	}
	return []Figure{
		{"worker_kills (-9)", fmt.Sprint(kills), fmt.Sprintf(">= %d", want), kills >= want},
		{"kills_with_task_type_in_flight", strings.Join(kt, " "), "", true},
	}
}

// secretHits is what one secret scan found: how many secrets, where, or why it could
// not look.
type secretHits struct {
	Source string
	N      int
	Found  []string
	Err    error
}

func (h *secretHits) scan(where, text string, secrets []string) {
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			h.N++
			h.Found = append(h.Found, where)
		}
	}
}

// secretsFigure sums the scans; one that could not look fails the figure.
func secretsFigure(parts ...secretHits) Figure {
	const name = "secret_hits (logs, rows, tasks, asynqmon)"
	n := 0
	for _, p := range parts {
		if p.Err != nil {
			return failedFigure(name, "0", fmt.Errorf("%s: %w", p.Source, p.Err))
		}
		n += p.N
	}
	return Figure{name, fmt.Sprint(n), "0", n == 0}
}

// scanLogs looks for the secrets in every process log. No log at all is an error: the
// processes always write one.
func scanLogs(files, secrets []string) secretHits {
	h := secretHits{Source: "logs"}
	if len(files) == 0 {
		h.Err = errors.New("no process log to scan")
		return h
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			h.Err = err
			return h
		}
		h.scan(f, string(b), secrets)
	}
	return h
}

// scanTables looks for the secrets in every row of every table of the public schema.
func scanTables(ctx context.Context, db querier, secrets []string) secretHits {
	h := secretHits{Source: "rows"}
	tables, err := publicTables(ctx, db)
	if err != nil {
		h.Err = err
		return h
	}
	if len(tables) == 0 {
		h.Err = errors.New("no table in the public schema")
		return h
	}
	for _, t := range tables {
		var text *string
		if err := db.QueryRow(ctx, fmt.Sprintf(`SELECT string_agg(t::text, E'\n') FROM %s t`, pgx.Identifier{t}.Sanitize())).Scan(&text); err != nil {
			h.Err = fmt.Errorf("read table %s: %w", t, err)
			return h
		}
		if text != nil {
			h.scan("table "+t, *text, secrets)
		}
	}
	return h
}

func publicTables(ctx context.Context, db querier) ([]string, error) {
	rows, err := db.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string]) // closes rows and returns rows.Err()
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	return tables, nil
}

// scanTasks looks for the secrets in every task asynq holds in the named queues
// (payload and last error).
func scanTasks(insp *asynq.Inspector, names, secrets []string) secretHits {
	h := secretHits{Source: "tasks"}
	lists := []struct {
		state string
		list  func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	}{
		{"pending", insp.ListPendingTasks}, {"active", insp.ListActiveTasks}, {"scheduled", insp.ListScheduledTasks},
		{"retry", insp.ListRetryTasks}, {"archived", insp.ListArchivedTasks}, {"completed", insp.ListCompletedTasks},
	}
	for _, q := range names {
		for _, l := range lists {
			tasks, err := l.list(q, asynq.PageSize(1000))
			if errors.Is(err, asynq.ErrQueueNotFound) {
				break // the queue holds nothing in any state
			}
			if err != nil {
				h.Err = fmt.Errorf("list %s tasks of %s: %w", l.state, q, err)
				return h
			}
			for _, t := range tasks {
				h.scan("asynq task "+t.ID, string(t.Payload)+" "+t.LastErr, secrets)
			}
		}
	}
	return h
}

// monitor is how an operator reaches asynqmon's API.
type monitor struct {
	Base     string // http://host:port/monitoring/api
	User     string
	Password string
	HTTP     *http.Client
}

var monitoringStates = []string{"pending", "active", "scheduled", "retry", "archived", "completed"}

// get answers the body of a 200 JSON answer, and an error for anything else: a 401
// or a 500 page is not a scan of asynqmon.
func (m monitor) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.Base+path, nil)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(m.User, m.Password)
	c := m.HTTP
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: read body: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %.120s", path, resp.Status, b)
	}
	return b, nil
}

// readMonitoring reads asynqmon's queue list and every task list of every queue it
// lists, and returns all the answers. asynqmon answers 500 for the task lists of a
// queue Redis does not hold, so only the queues it lists are read, and each must
// answer.
func readMonitoring(ctx context.Context, m monitor) (string, error) {
	var all strings.Builder
	b, err := m.get(ctx, "/queues")
	if err != nil {
		return "", err
	}
	all.Write(b)
	var qs struct {
		Queues *[]struct {
			Queue string `json:"queue"`
		} `json:"queues"`
	}
	if err := json.Unmarshal(b, &qs); err != nil || qs.Queues == nil {
		return "", fmt.Errorf("GET /queues: not asynqmon's queue list: %.120s", b)
	}
	for _, q := range *qs.Queues {
		for _, state := range monitoringStates {
			path := fmt.Sprintf("/queues/%s/%s_tasks?size=1000", url.PathEscape(q.Queue), state)
			b, err := m.get(ctx, path)
			if err != nil {
				return "", err
			}
			var page struct {
				Tasks *json.RawMessage `json:"tasks"`
			}
			if err := json.Unmarshal(b, &page); err != nil || page.Tasks == nil {
				return "", fmt.Errorf("GET %s: not an asynqmon task list: %.120s", path, b)
			}
			all.Write(b)
		}
	}
	return all.String(), nil
}

// checkMonitoring reads asynqmon as an operator: the figure says how much it read, and
// the hits are the secrets found in its answers (for secretsFigure).
func checkMonitoring(ctx context.Context, m monitor, secrets []string) (Figure, secretHits) {
	const name = "asynqmon_bytes_scanned"
	h := secretHits{Source: "asynqmon"}
	text, err := readMonitoring(ctx, m)
	if err != nil {
		h.Err = err
		return failedFigure(name, "> 0", err), h
	}
	h.scan("asynqmon", text, secrets)
	return Figure{name, fmt.Sprint(len(text)), "> 0", len(text) > 0}, h
}
