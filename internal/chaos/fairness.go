package chaos

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/labelq/labelq/internal/admission"
	"github.com/labelq/labelq/internal/queue"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
)

// The fairness part of the workload (issue 18): the run's workload is three
// organizations of different sizes sharing one deployment. chaos-org, the middle
// one, does everything else this package does (uploads, the sync, exports,
// webhooks). chaos-big, the largest, bulk-registers cfg.BigVersions results files
// through POST /v1/projects/{id}/versions:batch right at the start of the
// workload: validation only (a results file makes no job and no model call), so
// its backlog is the validate queue's. chaos-small, the smallest, uploads
// cfg.SmallVersions texts one at a time through the interactive route
// (POST /v1/files/{id}/versions, as the middle organization's uploads) while that
// backlog drains, before the run's first outage. The invariant (checkFairness): no
// small version waited behind the big backlog.

// smallWindowPct is where, in percent of the run's duration, the small
// organization's last upload is: the first outage (Redis FLUSHALL) is at 35 %, so
// under fair admission, each validated within seconds, the small versions wait
// through kills only, and under FIFO, waiting for the whole backlog, through the
// outages too.
const smallWindowPct = 30

// outageGrace is how long after an outage's end a version still counts as waiting
// through it: what failed during it comes back on asynq's first retry (1 to 3 s).
const outageGrace = 3 * time.Second

// partitionsOutage is the -netns partitions' outage: partial (see outage).
const partitionsOutage = "the network partitions"

// tenant is one of the run's other organizations.
type tenant struct {
	name      string
	token     string
	orgID     int64
	projectID int64
	api       *client
}

// fairWork is what the fairness part of the workload did, for checkFairness.
type fairWork struct {
	big, small *tenant
	// prefix is where the big backlog's objects are, under the big organization's
	// own prefix.
	prefix string

	mu                         sync.Mutex
	bigVersions, smallVersions []int64
	// killed are the versions whose file:validate was active at a kill -9 (in the
	// killed worker's hands or another's: asynq does not say whose).
	killed map[int64]bool
	// blindKills are kills whose tasks in flight could not be read.
	blindKills []time.Time
}

// outage is a fault that stalled validation, for checkFairness. Stalled for
// everyone (a service down, Redis emptied): the big organization's admitted tasks
// fail and wait as the small one's do, holding its slots, so its backlog cannot
// overtake meanwhile, and a version that waited through such an outage is still
// looked at. Stalled for some workers only (Partial: a partition), the other
// workers drain the big backlog while a task of the cut worker waits, so a version
// that waited through it is not looked at.
type outage struct {
	Name       string
	Start, End time.Time
	Partial    bool
}

// createToken makes an organization (if new) and an API token for it with
// `labelq token create`, and answers the token and the organization's id.
func (r *run) createToken(ctx context.Context, org string) (string, int64, error) {
	out, err := r.env.command(ctx, "token", "create", "--org", org, "--name", "chaos").Output()
	if err != nil {
		return "", 0, fmt.Errorf("token create --org %s: %w", org, err)
	}
	var token string
	var orgID int64
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "token="); ok {
			token = v
		}
		if v, ok := strings.CutPrefix(line, "organization_id="); ok {
			if _, err := fmt.Sscan(v, &orgID); err != nil {
				return "", 0, fmt.Errorf("token create --org %s printed organization_id=%q: %w", org, v, err)
			}
		}
	}
	if token == "" || orgID == 0 {
		return "", 0, fmt.Errorf("token create --org %s printed no token or no organization_id", org)
	}
	return token, orgID, nil
}

// setupFairness creates the big and the small organizations, each with a token and
// a project, and puts the big backlog's objects in the bucket: before the timed
// workload, so the backlog is registered in one burst.
func (r *run) setupFairness(ctx context.Context) error {
	big, small := r.cfg.BigVersions, r.cfg.SmallVersions
	if big <= 0 && small <= 0 {
		return nil
	}
	if big <= 0 || small <= 0 {
		return fmt.Errorf("the fairness workload needs both organizations: BigVersions=%d, SmallVersions=%d (set both, or both to 0)", big, small)
	}
	f := &fairWork{killed: map[int64]bool{}}
	var err error
	if f.big, err = r.newTenant(ctx, "chaos-big", false); err != nil {
		return err
	}
	if f.small, err = r.newTenant(ctx, "chaos-small", true); err != nil {
		return err
	}
	f.prefix = storage.OwnPrefix(f.big.orgID) + "backlog/"
	r.log("putting %d objects under %s for %s's backlog", big, f.prefix, f.big.name)
	start := time.Now()
	if err := testenv.SeedObjects(ctx, r.env.Store, f.prefix, big); err != nil {
		return err
	}
	r.log("%d objects put in %.1fs; %s registers them at the start of the workload, %s uploads %d versions meanwhile",
		big, time.Since(start).Seconds(), f.big.name, f.small.name, small)
	r.fair = f
	return nil
}

// newTenant creates organization name with a token and a project without
// pre-annotation. An organization whose files become jobs (dataset files: the
// small one's) gets an annotator, so its jobs are assigned like the middle
// organization's (open_jobs_left_unassigned counts every organization's).
func (r *run) newTenant(ctx context.Context, name string, annotator bool) (*tenant, error) {
	token, orgID, err := r.createToken(ctx, name)
	if err != nil {
		return nil, err
	}
	t := &tenant{name: name, token: token, orgID: orgID,
		api: &client{base: r.api.base, token: token, http: r.api.http}}
	var p struct {
		ID int64 `json:"id"`
	}
	if err := t.api.call(ctx, "POST", "/v1/projects", map[string]any{
		"name": name, "requirements_text": "Label each sentence.", "llm_enabled": false,
		"assign_reviewers": false, "min_language_proficiency": 3,
	}, "project", &p); err != nil {
		return nil, fmt.Errorf("create %s's project: %w", name, err)
	}
	t.projectID = p.ID
	if annotator {
		if err := t.api.call(ctx, "POST", "/v1/users", map[string]any{
			"email": "annotator@" + name + ".test", "role": "annotator", "language_expertise": map[string]float64{"en": 4},
			"availability": map[string]any{"timezone": "UTC", "monday": []string{"09:00-17:00"}},
			"skill_score":  0.7, "qa_approval_rate": 0.9, "max_active_jobs": 10000,
		}, "user", nil); err != nil {
			return nil, fmt.Errorf("create %s's annotator: %w", name, err)
		}
	}
	return t, nil
}

// sleepUntil waits until t, or for ctx to end.
func sleepUntil(ctx context.Context, t time.Time) error {
	select {
	case <-time.After(time.Until(t)):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fairnessAll is the fairness part of the workload: the big backlog in one burst
// at the start (after the partitions, in -netns), then the small organization's
// uploads spread until smallWindowPct of the run.
func (r *run) fairnessAll(ctx context.Context) error {
	f := r.fair
	if f == nil {
		return nil
	}
	if err := sleepUntil(ctx, r.workStart.Add(r.afterPartitions(0))); err != nil {
		return err
	}
	start := time.Now()
	if err := r.registerBacklog(ctx); err != nil {
		return err
	}
	r.log("%s registered %d versions in %.1fs (versions:batch, bulk)", f.big.name, r.cfg.BigVersions, time.Since(start).Seconds())

	n := r.cfg.SmallVersions
	first := time.Now().Add(500 * time.Millisecond)
	end := r.workStart.Add(r.afterPartitions(r.cfg.Duration * smallWindowPct / 100))
	gap := max(end.Sub(first), 0) / time.Duration(max(n-1, 1))
	for i := range n {
		if err := sleepUntil(ctx, first.Add(time.Duration(i)*gap)); err != nil {
			return err
		}
		id, err := r.uploadSmall(ctx, i)
		if err != nil {
			return fmt.Errorf("%s upload %d: %w", f.small.name, i, err)
		}
		f.mu.Lock()
		f.smallVersions = append(f.smallVersions, id)
		f.mu.Unlock()
	}
	return nil
}

// registerBacklog registers the big organization's objects through versions:batch,
// a thousand per call from four clients.
func (r *run) registerBacklog(ctx context.Context) error {
	f := r.fair
	n := r.cfg.BigVersions
	return testenv.Parallel(4, (n+999)/1000, func(j int) error {
		lo, hi := j*1000, min(n, (j+1)*1000)
		items := make([]map[string]any, 0, hi-lo)
		for i := lo; i < hi; i++ {
			content := testenv.SeedContent(i)
			items = append(items, map[string]any{
				"file_name": fmt.Sprintf("results-%06d.csv", i), "file_type": "annotation_results",
				"storage_path": testenv.SeedKey(f.prefix, i), "sha256": testenv.SHA256Hex(content), "size": len(content),
				"mime_type": "text/csv",
			})
		}
		var out struct {
			Items []struct {
				Status    string `json:"status"`
				VersionID int64  `json:"version_id"`
			} `json:"items"`
		}
		path := fmt.Sprintf("/v1/projects/%d/versions:batch", f.big.projectID)
		if err := f.big.api.call(ctx, "POST", path, map[string]any{"items": items}, fmt.Sprintf("backlog-%d", j), &out); err != nil {
			return fmt.Errorf("%s versions:batch %d: %w", f.big.name, j, err)
		}
		ids := make([]int64, 0, len(out.Items))
		for k, it := range out.Items {
			// A duplicate is this batch's own version: a retry of a call whose answer was lost.
			if it.Status != "created" && it.Status != "duplicate" {
				return fmt.Errorf("%s versions:batch %d: item %d is %s", f.big.name, j, lo+k, it.Status)
			}
			ids = append(ids, it.VersionID)
		}
		if len(ids) != hi-lo {
			return fmt.Errorf("%s versions:batch %d: %d results for %d items", f.big.name, j, len(ids), hi-lo)
		}
		f.mu.Lock()
		f.bigVersions = append(f.bigVersions, ids...)
		f.mu.Unlock()
		return nil
	})
}

// uploadSmall is the small organization's upload i: a file, its object, and its
// version through the interactive route.
func (r *run) uploadSmall(ctx context.Context, i int) (int64, error) {
	t := r.fair.small
	var file struct {
		ID int64 `json:"id"`
	}
	if err := t.api.call(ctx, "POST", fmt.Sprintf("/v1/projects/%d/files", t.projectID),
		map[string]any{"name": fmt.Sprintf("small-%03d.txt", i)}, fmt.Sprintf("file-%d", i), &file); err != nil {
		return 0, err
	}
	content := []byte(fmt.Sprintf("Small organization's sentence %d: a short note of %d words.\n", i, 8+i))
	key := fmt.Sprintf("orgs/%d/projects/%d/files/%d/v1", t.orgID, t.projectID, file.ID)
	if err := r.put(ctx, key, content); err != nil {
		return 0, err
	}
	var v struct {
		ID int64 `json:"id"`
	}
	if err := t.api.call(ctx, "POST", fmt.Sprintf("/v1/files/%d/versions", file.ID), map[string]any{
		"storage_path": key, "mime_type": "text/plain", "sha256": testenv.SHA256Hex(content), "size": len(content),
	}, fmt.Sprintf("version-%d", i), &v); err != nil {
		return 0, err
	}
	return v.ID, nil
}

// noteValidating records the versions whose validation is active now, around a
// kill -9: asynq takes a killed worker's tasks over only after their lease (up to
// a minute), so a small version among them waited for the kill, not behind anyone.
// Listed before and after the kill (a killed worker's tasks stay active until they
// are taken over), so a task that started in between is not missed.
func (r *run) noteValidating(insp *asynq.Inspector) {
	f := r.fair
	if f == nil {
		return
	}
	ids, err := validating(insp)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		f.blindKills = append(f.blindKills, time.Now())
		return
	}
	for _, id := range ids {
		f.killed[id] = true
	}
}

// validating lists the versions whose file:validate task is active.
func validating(insp *asynq.Inspector) ([]int64, error) {
	var ids []int64
	for page := 1; ; page++ {
		ts, err := insp.ListActiveTasks(queue.QueueValidate, asynq.PageSize(100), asynq.Page(page))
		if errors.Is(err, asynq.ErrQueueNotFound) {
			return ids, nil
		}
		if err != nil {
			return nil, err
		}
		for _, t := range ts {
			if id, ok := validateSubject(t.ID); ok {
				ids = append(ids, id)
			}
		}
		if len(ts) < 100 {
			return ids, nil
		}
	}
}

// validateSubject is the version a file:validate task id names
// ("file:validate:<version>[:<run>]").
func validateSubject(taskID string) (int64, bool) {
	rest, ok := strings.CutPrefix(taskID, tasks.Validate{}.Kind()+":")
	if !ok {
		return 0, false
	}
	rest, _, _ = strings.Cut(rest, ":")
	id, err := strconv.ParseInt(rest, 10, 64)
	return id, err == nil
}

// addOutage records a fault that stalled validation (partial: for some workers
// only).
func (r *run) addOutage(name string, start, end time.Time, partial bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.outages = append(r.outages, outage{Name: name, Start: start, End: end, Partial: partial})
}

// validateLimit is the validate queue's admission limit per organization the run's
// processes have (cfg.ExtraEnv's LABELQ_ADMIT_PER_ORG, else the default; 0: off).
func validateLimit(extra []string) (int, error) {
	setting := admission.Default
	for _, kv := range extra {
		if v, ok := strings.CutPrefix(kv, "LABELQ_ADMIT_PER_ORG="); ok {
			setting = v
		}
	}
	l, err := admission.Parse(setting)
	if err != nil {
		return 0, fmt.Errorf("LABELQ_ADMIT_PER_ORG=%s: %w", setting, err)
	}
	return l.Limit(tasks.Validate{}.Kind()), nil
}

// fairnessFigures are the fairness invariants of the run (none without the
// fairness workload, as in a load run).
func (r *run) fairnessFigures(ctx context.Context) []Figure {
	f := r.fair
	if f == nil {
		return nil
	}
	limit, err := validateLimit(r.cfg.ExtraEnv)
	if err != nil {
		return []Figure{failedFigure("fair_small_versions_behind_big_backlog", "0", err)}
	}
	f.mu.Lock()
	in := fairnessInputs{DB: r.pool, BigProject: f.big.projectID, SmallProject: f.small.projectID, Limit: limit,
		RegisteredBig: len(f.bigVersions), RegisteredSmall: len(f.smallVersions),
		WantBig: r.cfg.BigVersions, WantSmall: r.cfg.SmallVersions,
		Killed: f.killed, BlindKills: slices.Clone(f.blindKills)}
	f.mu.Unlock()
	r.mu.Lock()
	in.Outages = slices.Clone(r.outages)
	r.mu.Unlock()
	return checkFairness(ctx, in)
}

// fairnessInputs is what the fairness invariants read.
type fairnessInputs struct {
	DB                       querier
	BigProject, SmallProject int64
	// Limit is the validate admission limit per organization (0: admission off).
	Limit                          int
	RegisteredBig, RegisteredSmall int // versions the runner registered
	WantBig, WantSmall             int // versions it was to register
	Killed                         map[int64]bool
	BlindKills                     []time.Time
	Outages                        []outage
}

// smallWait is one small version as checkFairness sees it.
type smallWait struct {
	ID                 int64
	Created, Done      time.Time
	Terminal           bool
	Ahead, ServedFirst int // B(v) and J(v)
	OutboxRows         int
	Attempts           int
	Excluded           string   // why it is not looked at; "" when it is
	Notes              []string // faults it waited through that do not excuse it
}

func (w smallWait) waited() time.Duration { return w.Done.Sub(w.Created) }

// fairnessQuery reads, for every small version, when it was registered and when
// its outcome was recorded, both by PostgreSQL's clock (created_at, and the
// outcome event's occurred_at: validated_at is the worker's clock, 30 s off on the
// -netns variant's skewed worker); how many big versions were registered before it
// and not yet validated then (the FIFO backlog ahead of it, B) and how many of
// those were validated before it (J); and its file:validate outbox rows (a second
// row, or a row enqueued twice, is a task lost to a Redis fault or a failed
// enqueue).
const fairnessQuery = `WITH done AS (
	SELECT v.id, v.project_id, v.created_at,
		(SELECT min(e.occurred_at) FROM event_log e WHERE e.entity_type = 'file_version' AND e.entity_id = v.id
			AND e.event_type IN ('validated', 'corrupt', 'missing', 'rejected')) AS done_at
	FROM file_versions v WHERE v.project_id IN ($1, $2) AND v.generation_method = 'upload'
), big AS (
	SELECT created_at, done_at FROM done WHERE project_id = $1
)
SELECT s.id, s.created_at, s.done_at,
	(SELECT count(*) FROM big b WHERE b.created_at < s.created_at AND (b.done_at IS NULL OR b.done_at > s.created_at)),
	(SELECT count(*) FROM big b WHERE b.created_at < s.created_at AND b.done_at > s.created_at AND b.done_at < s.done_at),
	(SELECT count(*) FROM outbox o WHERE o.task_type = 'file:validate' AND o.subject_id = s.id),
	(SELECT coalesce(max(o.attempts), 0) FROM outbox o WHERE o.task_type = 'file:validate' AND o.subject_id = s.id)
FROM done s WHERE s.project_id = $2 ORDER BY s.id`

// checkFairness: the smallest organization's versions never waited behind the
// largest one's backlog. For a small version v, B(v) is the big versions registered
// before v and not yet validated when v was registered: under FIFO v waits for all
// of them, J(v) (those validated before v) ≈ B(v); under fair admission J(v) stays
// near the big organization's admission limit, whatever B(v). A version with
// B(v) > 2 × the limit is looked at, and it waited behind the backlog when
// J(v) ≥ 0.75 × B(v): not 0.9, since under FIFO the big versions a Redis fault
// lost go back to the end of the line, behind v (151 of them in a short run with
// admission off, B − J for every small version), while under fair admission J/B
// stays under 0.3 even for a version whose task a FLUSHALL lost, and under 0.55
// with the fewest ahead that are looked at (J ≈ the limit of 200, B > 400). A
// version whose wait a fault of its own explains is not
// looked at: its task active at a kill -9 (asynq waits out the task's lease while
// the other workers drain the big backlog), or a partition (see outage). One that
// waited through an outage of a service, or whose task a Redis fault lost, is
// still looked at, the fault noted: the big organization's tasks fail and wait
// through it too, holding its slots. No version looked at fails the figure (it
// could not look).
func checkFairness(ctx context.Context, in fairnessInputs) []Figure {
	const name = "fair_small_versions_behind_big_backlog"
	figs := []Figure{{"fair_versions_registered (chaos-big / chaos-small)", fmt.Sprintf("%d / %d", in.RegisteredBig, in.RegisteredSmall),
		fmt.Sprintf("%d / %d", in.WantBig, in.WantSmall), in.RegisteredBig == in.WantBig && in.RegisteredSmall == in.WantSmall}}
	var notValidBig, notValidSmall int
	err := in.DB.QueryRow(ctx, `SELECT count(*) FILTER (WHERE project_id = $1), count(*) FILTER (WHERE project_id = $2)
		FROM file_versions WHERE project_id IN ($1, $2) AND validation_status <> 'valid'`, in.BigProject, in.SmallProject).Scan(&notValidBig, &notValidSmall)
	if err != nil {
		figs = append(figs, failedFigure("fair_versions_not_valid (chaos-big / chaos-small)", "0 / 0", err))
	} else {
		figs = append(figs, Figure{"fair_versions_not_valid (chaos-big / chaos-small)", fmt.Sprintf("%d / %d", notValidBig, notValidSmall),
			"0 / 0", notValidBig == 0 && notValidSmall == 0})
	}
	waits, err := readSmallWaits(ctx, in)
	if err != nil {
		return append(figs, failedFigure(name, "0", err),
			failedFigure("fair_small_wait_seconds (max looked at / max of all)", "", err))
	}
	// Admission off still looks at the versions the default limit would: the figure
	// is the same question either way.
	look := in.Limit
	if look == 0 {
		look = mustDefaultValidateLimit()
	}
	minAhead := 2 * look
	var looked, behind, maxAhead, maxServed, few int
	var maxLooked, maxAll time.Duration
	lines := []string{""}
	for _, w := range waits {
		if w.Terminal {
			maxAll = max(maxAll, w.waited())
		}
		line := fmt.Sprintf("version %d: %d of chaos-big's ahead, %d of them validated first", w.ID, w.Ahead, w.ServedFirst)
		if w.Terminal {
			line += fmt.Sprintf(", waited %.2f s", w.waited().Seconds())
		}
		if len(w.Notes) > 0 {
			line += " (" + strings.Join(w.Notes, "; ") + ")"
		}
		switch {
		case w.Excluded != "":
			line += "; not looked at: " + w.Excluded
		case w.Ahead <= minAhead:
			few++
			line += fmt.Sprintf("; not looked at: %d or fewer ahead", minAhead)
		default:
			looked++
			maxAhead, maxServed = max(maxAhead, w.Ahead), max(maxServed, w.ServedFirst)
			maxLooked = max(maxLooked, w.waited())
			if 4*w.ServedFirst >= 3*w.Ahead {
				behind++
				line += "; WAITED BEHIND THE BACKLOG"
			}
		}
		lines = append(lines, line)
	}
	excluded := len(waits) - looked - few
	lines[0] = fmt.Sprintf("%d of the %d looked at waited behind the backlog (%d not looked at for a fault of their own, %d with %d or fewer of chaos-big's ahead)",
		behind, looked, excluded, few, minAhead)
	fig := Figure{name, strings.Join(lines, "\n"), "0, of > 0 looked at", looked > 0 && behind == 0}
	if looked == 0 {
		fig.Value = "could not look: " + fig.Value
	}
	return append(figs, fig,
		Figure{"fair_small_wait_seconds (max looked at / max of all)", fmt.Sprintf("%.2f / %.2f", maxLooked.Seconds(), maxAll.Seconds()), "", true},
		Figure{"fair_big_ahead / validated_first (max of the versions looked at)", fmt.Sprintf("%d / %d (validate limit %d per organization)", maxAhead, maxServed, in.Limit), "", true},
		bigDrainFigure(ctx, in))
}

// bigDrainFigure is how long the big backlog took, from its first registration to
// its last outcome: what a small version would have waited under FIFO.
func bigDrainFigure(ctx context.Context, in fairnessInputs) Figure {
	const name = "fair_big_backlog_drain_seconds"
	var secs *float64
	if err := in.DB.QueryRow(ctx, `SELECT extract(epoch FROM max(e.occurred_at) - min(v.created_at))::float8
		FROM file_versions v LEFT JOIN event_log e ON e.entity_type = 'file_version' AND e.entity_id = v.id
			AND e.event_type IN ('validated', 'corrupt', 'missing', 'rejected')
		WHERE v.project_id = $1`, in.BigProject).Scan(&secs); err != nil {
		return failedFigure(name, "", err)
	}
	if secs == nil {
		return Figure{name, "none validated", "", true}
	}
	return Figure{name, fmt.Sprintf("%.1f", *secs), "", true}
}

// readSmallWaits reads every small version's wait and decides whether a fault of
// its own explains it.
func readSmallWaits(ctx context.Context, in fairnessInputs) ([]smallWait, error) {
	rows, err := in.DB.Query(ctx, fairnessQuery, in.BigProject, in.SmallProject)
	if err != nil {
		return nil, fmt.Errorf("read the small organization's waits: %w", err)
	}
	defer rows.Close()
	var out []smallWait
	for rows.Next() {
		var w smallWait
		var done *time.Time
		var ahead, served, outboxRows, attempts int64
		if err := rows.Scan(&w.ID, &w.Created, &done, &ahead, &served, &outboxRows, &attempts); err != nil {
			return nil, fmt.Errorf("read the small organization's waits: %w", err)
		}
		w.Ahead, w.ServedFirst, w.OutboxRows, w.Attempts = int(ahead), int(served), int(outboxRows), int(attempts)
		if done != nil {
			w.Done, w.Terminal = *done, true
		}
		w.Excluded, w.Notes = judge(w, in)
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the small organization's waits: %w", err)
	}
	return out, nil
}

// judge says why a small version's wait is a fault's and not the queue's
// (excluded: a kill -9 of its task's worker, a partition), and which faults it
// waited through that do not excuse it (notes: an outage of a service, its task
// lost to a Redis fault; see outage).
func judge(w smallWait, in fairnessInputs) (excluded string, notes []string) {
	if w.OutboxRows > 1 || w.Attempts > 1 {
		notes = append(notes, fmt.Sprintf("its task lost or enqueued again (%d outbox rows, %d enqueues)", w.OutboxRows, w.Attempts))
	}
	for _, o := range in.Outages {
		if w.Terminal && !w.Done.Before(o.Start) && !w.Created.After(o.End.Add(outageGrace)) {
			if o.Partial && excluded == "" {
				excluded = "it waited through " + o.Name
			}
			if !o.Partial {
				notes = append(notes, "waited through "+o.Name)
			}
		}
	}
	switch {
	case !w.Terminal:
		return "not terminal", notes
	case in.Killed[w.ID]:
		return "its validation was active at a kill -9", notes
	}
	for _, t := range in.BlindKills {
		if !t.Before(w.Created) && !t.After(w.Done) {
			return "a kill -9 whose tasks in flight could not be read fell in its wait", notes
		}
	}
	return excluded, notes
}

// mustDefaultValidateLimit is the default's validate limit (admission.Default is a
// constant that parses).
func mustDefaultValidateLimit() int {
	l, err := admission.Parse(admission.Default)
	if err != nil {
		panic(fmt.Sprintf("admission.Default does not parse: %v", err))
	}
	return l.Limit(tasks.Validate{}.Kind())
}
