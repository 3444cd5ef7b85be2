package chaos

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/labelq/labelq/internal/queue"
	"github.com/labelq/labelq/internal/tasks"
)

// The sync part of the workload: a storage in labelq's own bucket holding
// cfg.SyncObjects small text objects, in a project of its own (no pre-annotation,
// so the run measures labelq and not the model's quota), synced on an 8-second
// schedule and through the API while workers are killed: a request early in the
// run, with a second one that joins its run and a kill -9 of every worker while
// one walks the bucket; a request while MinIO is down (the run retries until MinIO
// is back) and one at the end of the run.
type syncWork struct {
	projectID int64
	storageID int64
	// prefix is the objects' key prefix in the bucket.
	prefix string
	// notifySecret is the storage's notification secret: the secret scan looks for it.
	notifySecret string

	mu       sync.Mutex
	runIDs   []int64
	requests int
	// joins counts requests made while a run was live that answered that run;
	// wantJoins the requests made so.
	joins, wantJoins int
	// killsMidRun counts kill -9s of the workers while a storage:sync task was active.
	killsMidRun int
}

// syncObjectKey is object i's key under the storage's prefix.
func syncObjectKey(prefix string, i int) string { return fmt.Sprintf("%sobj-%05d.txt", prefix, i) }

// syncObject is object i's content: a sentence of its own (no two objects are
// duplicates of each other).
func syncObject(i int) []byte {
	return []byte(fmt.Sprintf("Synced sentence %d: a bucket of %d small objects, one of them this.\n", i, i*13+7))
}

// syncSchedule is the storage's sync schedule during the run: every tick either
// joins the live run or re-syncs the unchanged bucket.
const syncSchedule = "@every 8s"

// setupSync creates the sync project, puts the objects in the bucket, then
// creates the storage (with its schedule) through the API: every run lists the
// whole set.
func (r *run) setupSync(ctx context.Context) error {
	n := r.cfg.SyncObjects
	if n <= 0 {
		return nil
	}
	s := &syncWork{prefix: fmt.Sprintf("orgs/%d/chaos-sync/", r.orgID)}
	var p struct {
		ID int64 `json:"id"`
	}
	if err := r.api.call(ctx, "POST", "/v1/projects", map[string]any{
		"name": "chaos-sync", "requirements_text": "Label each synced sentence.", "llm_enabled": false,
		"assign_reviewers": false, "min_language_proficiency": 3,
	}, "project-sync", &p); err != nil {
		return fmt.Errorf("create the sync project: %w", err)
	}
	s.projectID = p.ID
	r.log("putting %d objects under %s", n, s.prefix)
	sem := make(chan struct{}, 8)
	errc := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := r.put(ctx, syncObjectKey(s.prefix, i), syncObject(i)); err != nil {
				errc <- fmt.Errorf("put sync object %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	var st struct {
		ID           int64   `json:"id"`
		NotifySecret *string `json:"notify_secret"`
	}
	if err := r.api.call(ctx, "POST", fmt.Sprintf("/v1/projects/%d/storages", s.projectID), map[string]any{
		"name": "chaos bucket", "endpoint": "", "prefix": "chaos-sync/", "sync_cron": syncSchedule, "sync_timezone": "UTC",
	}, "storage-sync", &st); err != nil {
		return fmt.Errorf("create the storage: %w", err)
	}
	s.storageID = st.ID
	if st.NotifySecret != nil {
		s.notifySecret = *st.NotifySecret
	}
	r.log("storage %d syncs %s (schedule %s)", s.storageID, s.prefix, syncSchedule)
	r.sync = s
	return nil
}

// stopSyncSchedule removes the storage's schedule once the workload is done, so
// the run can settle (as the export schedule is disabled).
func (r *run) stopSyncSchedule(ctx context.Context) error {
	if r.sync == nil {
		return nil
	}
	return r.api.call(ctx, "PATCH", fmt.Sprintf("/v1/storages/%d", r.sync.storageID), map[string]any{"sync_cron": ""}, "", nil)
}

// syncStarted is the answer of POST /v1/storages/{id}/sync.
type syncStarted struct {
	ID     int64 `json:"id"`
	Joined bool  `json:"joined"`
}

// requestSync asks for a sync; live says a run was live when it asked (the
// answer must be that run, joined).
func (r *run) requestSync(ctx context.Context, why string) (syncStarted, error) {
	s := r.sync
	var out syncStarted
	s.mu.Lock()
	key := fmt.Sprintf("sync-%d", s.requests)
	s.requests++
	s.mu.Unlock()
	if err := r.api.call(ctx, "POST", fmt.Sprintf("/v1/storages/%d/sync", s.storageID), nil, key, &out); err != nil {
		return out, fmt.Errorf("sync request (%s): %w", why, err)
	}
	s.mu.Lock()
	if len(s.runIDs) == 0 || s.runIDs[len(s.runIDs)-1] != out.ID {
		s.runIDs = append(s.runIDs, out.ID)
	}
	s.mu.Unlock()
	r.log("sync requested (%s): run %d, joined=%v", why, out.ID, out.Joined)
	return out, nil
}

// syncAll drives the sync part of the workload over the run's duration.
func (r *run) syncAll(ctx context.Context) error {
	s := r.sync
	if s == nil {
		return nil
	}
	d := r.cfg.Duration
	wait := func(frac int) error {
		select {
		case <-time.After(time.Until(r.workStart.Add(d * time.Duration(frac) / 100))):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := wait(15); err != nil {
		return err
	}
	first, err := r.requestSync(ctx, "first sync")
	if err != nil {
		return err
	}
	// A second request while the first run is live joins it.
	again, err := r.requestSync(ctx, "second request while the first is live")
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.wantJoins++
	if again.Joined && again.ID == first.ID {
		s.joins++
	}
	s.mu.Unlock()
	if r.cfg.Faults {
		r.killSyncWorker(ctx, 10*time.Second)
	}
	// MinIO goes down at 62% of the run: a sync requested then cannot list and
	// retries with backoff until it is back.
	if err := wait(64); err != nil {
		return err
	}
	if _, err := r.requestSync(ctx, "re-sync while MinIO is down"); err != nil {
		return err
	}
	if err := wait(95); err != nil {
		return err
	}
	_, err = r.requestSync(ctx, "re-sync at the end")
	return err
}

// killSyncWorker waits (up to limit) for a storage:sync task to be active and then
// kill -9s every worker: asynq does not say which process holds a task, and
// whichever it was, the run must resume from its checkpoint. A sync that ends
// between two looks goes unkilled (the figure says so).
func (r *run) killSyncWorker(ctx context.Context, limit time.Duration) {
	insp := asynq.NewInspector(r.env.RedisOpt())
	defer insp.Close()
	deadline := time.Now().Add(limit)
	kind := tasks.StorageSync{}.Kind()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		active, err := insp.ListActiveTasks(queue.QueueSync, asynq.PageSize(100))
		held := false
		for _, t := range active {
			held = held || t.Type == kind
		}
		if err == nil && held {
			r.killAllWorkers(kind)
			r.sync.mu.Lock()
			r.sync.killsMidRun++
			r.sync.mu.Unlock()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.log("no %s task was seen active: the sync was not killed mid-run", kind)
}

// killAllWorkers kill -9s every worker at once, counts the kills (one of them
// with kind in flight), and starts them again.
func (r *run) killAllWorkers(kind string) {
	r.killMu.Lock()
	defer r.killMu.Unlock()
	insp := asynq.NewInspector(r.env.RedisOpt())
	defer insp.Close()
	r.noteValidating(insp)
	for _, w := range r.workers {
		w.Kill()
	}
	r.noteValidating(insp)
	r.kills += len(r.workers)
	r.killTypes[kind]++
	r.log("kill -9 of every worker (%d) while %s is active", len(r.workers), kind)
	time.Sleep(300 * time.Millisecond)
	for i, w := range r.workers {
		p, err := r.env.StartProc(w.Name, "worker")
		if err != nil {
			r.log("restart %s: %v", w.Name, err)
			continue
		}
		r.workers[i] = p
	}
}

// syncInputs is what the sync invariants read.
type syncInputs struct {
	DB        querier
	ProjectID int64
	StorageID int64
	Objects   int     // objects in the storage
	RunIDs    []int64 // the runs the requests answered
	// Joins of WantJoins requests made while a run was live answered that run.
	Joins, WantJoins int
	KillsMidRun      int
	// Scheduled says the storage had a sync schedule during the run.
	Scheduled bool
}

// checkSync: every object linked exactly once, to a file of its own with one
// version, each version terminal and valid; every run completed, having listed
// every key once, with counts that add up; a request made while a run was live
// joined it.
func checkSync(ctx context.Context, in syncInputs) []Figure {
	n := in.Objects
	figs := []Figure{
		{"sync_runs_requested", fmt.Sprint(len(in.RunIDs)), "> 0", len(in.RunIDs) > 0},
		// Whether the first run was still live when the second request came is a
		// race the run does not control (one run at a time is the database's unique
		// index); the figure shows how the requests went.
		{"sync_requests_that_joined_the_live_run", fmt.Sprintf("%d/%d", in.Joins, in.WantJoins), "", true},
	}
	// Counted from the completed side, so a requested run the table does not hold is
	// not completed either; and no other run of the storage is left unfinished.
	done, err := count(ctx, in.DB, `SELECT count(*) FROM sync_runs WHERE id = ANY($1) AND storage_id = $2 AND status = 'completed'`, in.RunIDs, in.StorageID)
	var others int
	if err == nil {
		others, err = count(ctx, in.DB, `SELECT count(*) FROM sync_runs WHERE storage_id = $1 AND status <> 'completed' AND NOT id = ANY($2)`, in.StorageID, in.RunIDs)
	}
	if err != nil {
		figs = append(figs, failedFigure("sync_runs_not_completed", "0", err))
	} else {
		notDone := len(in.RunIDs) - done + others
		figs = append(figs, Figure{"sync_runs_not_completed", fmt.Sprint(notDone), "0", notDone == 0})
	}
	if linked, err := count(ctx, in.DB, `SELECT count(*) FROM storage_links WHERE storage_id = $1`, in.StorageID); err != nil {
		figs = append(figs, failedFigure("sync_objects_linked", fmt.Sprint(n), err))
	} else {
		figs = append(figs, Figure{"sync_objects_linked", fmt.Sprint(linked), fmt.Sprint(n), linked == n})
	}
	if isNew, err := count(ctx, in.DB, `SELECT COALESCE(sum(keys_new), 0) FROM sync_runs WHERE storage_id = $1`, in.StorageID); err != nil {
		figs = append(figs, failedFigure("sync_keys_new (all runs)", fmt.Sprint(n), err))
	} else {
		figs = append(figs, Figure{"sync_keys_new (all runs)", fmt.Sprint(isNew), fmt.Sprint(n), isNew == n})
	}
	figs = append(figs,
		zeroFigure(ctx, in.DB, "sync_files_linked_twice", `SELECT count(*) FROM (SELECT 1 FROM storage_links
			WHERE storage_id = $1 GROUP BY file_id HAVING count(*) > 1) d`, in.StorageID),
		zeroFigure(ctx, in.DB, "sync_files_not_linked", `SELECT count(*) FROM files f WHERE f.project_id = $1
			AND NOT EXISTS (SELECT 1 FROM storage_links l WHERE l.file_id = f.id AND l.storage_id = $2)`, in.ProjectID, in.StorageID),
		zeroFigure(ctx, in.DB, "sync_file_names_twice", `SELECT count(*) FROM (SELECT 1 FROM files
			WHERE project_id = $1 GROUP BY name HAVING count(*) > 1) d`, in.ProjectID),
		zeroFigure(ctx, in.DB, "sync_files_with_two_versions", `SELECT count(*) FROM (SELECT 1 FROM file_versions v
			JOIN storage_links l ON l.file_id = v.file_id AND l.storage_id = $1 GROUP BY v.file_id HAVING count(*) > 1) d`, in.StorageID),
		zeroFigure(ctx, in.DB, "sync_linked_versions_not_terminal", `SELECT count(*) FROM storage_links l
			JOIN file_versions v ON v.id = l.version_id WHERE l.storage_id = $1 AND v.validation_status = 'pending'`, in.StorageID),
		zeroFigure(ctx, in.DB, "sync_linked_versions_not_valid", `SELECT count(*) FROM storage_links l
			JOIN file_versions v ON v.id = l.version_id WHERE l.storage_id = $1 AND v.validation_status NOT IN ('pending', 'valid')`, in.StorageID),
		// A completed run listed every key once, however often it was killed and
		// resumed, and each key it listed is counted in exactly one column.
		zeroFigure(ctx, in.DB, "sync_runs_whose_counts_do_not_add_up", `SELECT count(*) FROM sync_runs WHERE storage_id = $1
			AND status = 'completed' AND (keys_listed <> keys_new + keys_changed + keys_unchanged + keys_filtered + keys_skipped
			OR keys_listed <> $2 OR keys_gone <> 0 OR keys_changed <> 0)`, in.StorageID, n),
		Figure{"sync_kills_mid_run (-9 of every worker while storage:sync runs)", fmt.Sprint(in.KillsMidRun), "", true},
	)
	if !in.Scheduled {
		return figs
	}
	// The schedule: each tick handled once (its event), by a run of the storage it
	// made or joined; no tick with two runs.
	if ticks, err := count(ctx, in.DB, `SELECT count(*) FROM event_log WHERE entity_type = 'storage' AND entity_id = $1
		AND event_type = 'sync_scheduled'`, in.StorageID); err != nil {
		figs = append(figs, failedFigure("sync_schedule_ticks", "> 0", err))
	} else {
		figs = append(figs, Figure{"sync_schedule_ticks", fmt.Sprint(ticks), "> 0", ticks > 0})
	}
	return append(figs,
		zeroFigure(ctx, in.DB, "sync_schedule_ticks_without_their_run", `SELECT count(*) FROM event_log e
			WHERE e.entity_type = 'storage' AND e.entity_id = $1 AND e.event_type = 'sync_scheduled'
			AND NOT EXISTS (SELECT 1 FROM sync_runs r WHERE r.storage_id = $1 AND r.id::text = e.metadata->>'run_id')`, in.StorageID),
		zeroFigure(ctx, in.DB, "sync_schedule_ticks_with_two_runs", `SELECT count(*) FROM (SELECT 1 FROM sync_runs
			WHERE storage_id = $1 AND scheduled_for IS NOT NULL GROUP BY scheduled_for HAVING count(*) > 1) d`, in.StorageID))
}

// syncFigures are the sync invariants of the run (none without a sync workload).
func (r *run) syncFigures(ctx context.Context) []Figure {
	s := r.sync
	if s == nil {
		if r.cfg.SyncObjects > 0 {
			return []Figure{{"sync_objects_linked", "no storage was set up", fmt.Sprint(r.cfg.SyncObjects), false}}
		}
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return checkSync(ctx, syncInputs{DB: r.pool, ProjectID: s.projectID, StorageID: s.storageID, Objects: r.cfg.SyncObjects,
		RunIDs: s.runIDs, Joins: s.joins, WantJoins: s.wantJoins, KillsMidRun: s.killsMidRun, Scheduled: true})
}
