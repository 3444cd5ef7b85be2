package chaos

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/minio/minio-go/v7"
	"github.com/redis/go-redis/v9"

	"github.com/labelq/labelq/internal/queue"
)

func redisClient(addr string) *redis.Client { return redis.NewClient(&redis.Options{Addr: addr}) }

func (r *run) count(ctx context.Context, q string, args ...any) (int, error) {
	var n int
	err := r.pool.QueryRow(ctx, q, args...).Scan(&n)
	if err != nil {
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

// check turns the final state into figures, each with the value it must have.
func (r *run) check(ctx context.Context) (*Report, error) {
	rep := &Report{Faults: r.faults}
	zero := func(name, q string, args ...any) error {
		n, err := r.count(ctx, q, args...)
		if err != nil {
			return err
		}
		rep.add(name, fmt.Sprint(n), "0", n == 0)
		return nil
	}

	// Versions: every one terminal, each with the outcome its content calls for.
	byID := map[int64]Upload{}
	for _, u := range r.uploads {
		byID[u.VersionID] = u
	}
	rows, err := r.pool.Query(ctx, `SELECT id, validation_status::text, duplicate_of IS NOT NULL FROM file_versions WHERE generation_method = 'upload'`)
	if err != nil {
		return nil, err
	}
	statuses := map[string]int{}
	lost, wrong := 0, 0
	for rows.Next() {
		var id int64
		var st string
		var dup bool
		if err := rows.Scan(&id, &st, &dup); err != nil { // dup: see duplicate_groups_not_linked
			return nil, err
		}
		statuses[st]++
		if st == "pending" {
			lost++
		}
		if u, ok := byID[id]; ok {
			if st != u.Want && st != "pending" {
				wrong++
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rep.add("versions_registered", fmt.Sprint(len(r.uploads)), fmt.Sprint(r.cfg.Versions), len(r.uploads) == r.cfg.Versions)
	rep.add("versions_lost (not terminal)", fmt.Sprint(lost), "0", lost == 0)
	rep.add("versions_wrong_outcome", fmt.Sprint(wrong), "0", wrong == 0)
	keys := make([]string, 0, len(statuses))
	for k := range statuses {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, statuses[k]))
	}
	rep.add("versions_by_status", strings.Join(parts, " "), "", true)
	// Copies of the same bytes form one group; whichever validates first is the
	// original, and every other copy points at a member of the group.
	if err := zero("duplicate_groups_not_linked", `SELECT count(*) FROM (SELECT 1 FROM file_versions
		WHERE validation_status = 'valid' AND generation_method = 'upload'
		GROUP BY project_id, checksum HAVING count(duplicate_of) <> count(*) - 1) g`); err != nil {
		return nil, err
	}
	dups := 0
	for _, u := range r.uploads {
		if u.Kind == KindDuplicate {
			dups++
		}
	}
	linked, err := r.count(ctx, `SELECT count(*) FROM file_versions WHERE duplicate_of IS NOT NULL AND generation_method = 'upload'`)
	if err != nil {
		return nil, err
	}
	rep.add("duplicates_linked", fmt.Sprint(linked), fmt.Sprint(dups), linked == dups)

	// Exports: one completed export per request and per schedule tick, one object each.
	notDone, err := r.count(ctx, `SELECT count(*) FROM export_logs WHERE id = ANY($1) AND status <> 'completed'`, r.exportIDs)
	if err != nil {
		return nil, err
	}
	rep.add("exports_requested", fmt.Sprint(len(r.exportIDs)), fmt.Sprint(r.cfg.Exports), len(r.exportIDs) == r.cfg.Exports)
	rep.add("exports_not_completed", fmt.Sprint(notDone), "0", notDone == 0)
	ticks, err := r.count(ctx, `SELECT count(*) FROM export_logs WHERE schedule_id = $1`, r.scheduleID)
	if err != nil {
		return nil, err
	}
	rep.add("schedule_ticks_exported", fmt.Sprint(ticks), "> 0", ticks > 0)
	if err := zero("schedule_ticks_not_completed", `SELECT count(*) FROM export_logs WHERE schedule_id = $1 AND status <> 'completed'`, r.scheduleID); err != nil {
		return nil, err
	}
	if err := zero("schedule_ticks_with_two_exports", `SELECT count(*) FROM (SELECT 1 FROM export_logs WHERE schedule_id IS NOT NULL
		GROUP BY schedule_id, scheduled_for HAVING count(*) > 1) d`); err != nil {
		return nil, err
	}
	completed, err := r.count(ctx, `SELECT count(*) FROM export_logs WHERE status = 'completed'`)
	if err != nil {
		return nil, err
	}
	objects := 0
	for o := range r.env.Store.Client.ListObjects(ctx, r.env.Bucket, minio.ListObjectsOptions{Recursive: true, Prefix: fmt.Sprintf("orgs/%d/projects/%d/exports/", r.orgID, r.projectID)}) {
		if o.Err != nil {
			return nil, o.Err
		}
		objects++
	}
	rep.add("export_objects_vs_completed", fmt.Sprintf("%d/%d", objects, completed), "equal", objects == completed)

	// Matching.
	if err := zero("jobs_with_two_live_assignments_of_a_role", `SELECT count(*) FROM (SELECT 1 FROM assignments
		WHERE status IN ('assigned', 'accepted', 'in_progress') GROUP BY job_id, role HAVING count(*) > 1) d`); err != nil {
		return nil, err
	}
	unassigned, err := r.count(ctx, `SELECT count(*) FROM annotation_jobs j WHERE j.deleted_at IS NULL
		AND j.status IN ('not_started', 'in_progress') AND NOT EXISTS (SELECT 1 FROM assignments a
		WHERE a.job_id = j.id AND a.role = 'annotator' AND a.status IN ('assigned', 'accepted', 'in_progress'))`)
	if err != nil {
		return nil, err
	}
	rep.add("open_jobs_left_unassigned", fmt.Sprint(unassigned), "0", unassigned == 0)

	// Pre-annotation: no cache key paid twice.
	if err := zero("llm_cache_keys_paid_twice", `SELECT count(*) FROM (SELECT 1 FROM llm_runs WHERE status = 'succeeded'
		AND cached_from_id IS NULL GROUP BY cache_key HAVING count(*) > 1) d`); err != nil {
		return nil, err
	}
	paid, err := r.count(ctx, `SELECT count(*) FROM llm_runs WHERE status = 'succeeded' AND cached_from_id IS NULL`)
	if err != nil {
		return nil, err
	}
	hits, err := r.count(ctx, `SELECT count(*) FROM llm_runs WHERE cached_from_id IS NOT NULL`)
	if err != nil {
		return nil, err
	}
	st := r.env.LLM.Stats()
	rep.add("llm_paid_runs / cache_hits / provider_successes", fmt.Sprintf("%d / %d / %d", paid, hits, st.Succeeded), "", true)
	// A worker killed after the provider answered and before its commit pays again
	// on retry; the database never records two paid runs for one key.
	rep.add("llm_provider_calls_lost_to_kills", fmt.Sprint(max(st.Succeeded-paid, 0)), "", true)
	rep.add("llm_429_answered", fmt.Sprint(st.ByStatus[429]), "", true)

	// Every state change has its event.
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
	for _, c := range checks {
		if err := zero(c.name, c.q); err != nil {
			return nil, err
		}
	}

	// asynq: nothing left active.
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: r.env.Redis.Addr})
	defer insp.Close()
	active, archived := 0, 0
	for _, q := range queue.Names() {
		if info, err := insp.GetQueueInfo(q); err == nil {
			active += info.Active + info.Pending + info.Retry + info.Scheduled
			archived += info.Archived
		}
	}
	rep.add("asynq_tasks_left_active_or_pending", fmt.Sprint(active), "0", active == 0)
	rep.add("asynq_archived (bad input, by design)", fmt.Sprint(archived), "", true)

	kt := make([]string, 0, len(r.killTypes))
	for t, n := range r.killTypes {
		kt = append(kt, fmt.Sprintf("%s=%d", t, n))
	}
	sort.Strings(kt)
	rep.add("worker_kills (-9)", fmt.Sprint(r.kills), fmt.Sprintf(">= %d", r.cfg.Kills), r.kills >= r.cfg.Kills)
	rep.add("kills_with_task_type_in_flight", strings.Join(kt, " "), "", true)
	return rep, nil
}

// scanSecrets looks for every secret of the run in the processes' logs, every row of
// the database, every task asynq holds (payload and last error) and asynqmon's answers.
func (r *run) scanSecrets(ctx context.Context) (int, error) {
	secrets := []string{r.env.Secrets.S3Secret, r.env.Secrets.LLMKey, r.env.Secrets.OperatorPassword, r.env.Secrets.APIToken}
	hits := 0
	scan := func(where, text string) {
		for _, s := range secrets {
			if s != "" && strings.Contains(text, s) {
				hits++
				r.log("SECRET FOUND in %s", where)
			}
		}
	}
	for _, f := range r.env.Logs() {
		b, err := os.ReadFile(f)
		if err != nil {
			return 0, err
		}
		scan(f, string(b))
	}
	rows, err := r.pool.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`)
	if err != nil {
		return 0, err
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return 0, err
		}
		tables = append(tables, t)
	}
	for _, t := range tables {
		var text *string
		if err := r.pool.QueryRow(ctx, fmt.Sprintf(`SELECT string_agg(t::text, E'\n') FROM %q t`, t)).Scan(&text); err != nil {
			return 0, err
		}
		if text != nil {
			scan("table "+t, *text)
		}
	}
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: r.env.Redis.Addr})
	defer insp.Close()
	for _, q := range queue.Names() {
		for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){
			insp.ListPendingTasks, insp.ListActiveTasks, insp.ListScheduledTasks, insp.ListRetryTasks, insp.ListArchivedTasks, insp.ListCompletedTasks,
		} {
			tasks, err := list(q, asynq.PageSize(1000))
			if err != nil {
				continue
			}
			for _, t := range tasks {
				scan("asynq task "+t.ID, string(t.Payload)+" "+t.LastErr)
			}
		}
	}
	return hits, nil
}

// scanMonitoring reads asynqmon's answers (queues and every task list) as an operator.
func (r *run) scanMonitoring(ctx context.Context) (string, error) {
	var all strings.Builder
	get := func(path string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.env.HTTPAddr+"/monitoring/api"+path, nil)
		if err != nil {
			return err
		}
		req.SetBasicAuth("operator", r.env.Secrets.OperatorPassword)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		all.Write(b)
		return nil
	}
	if err := get("/queues"); err != nil {
		return "", err
	}
	for _, q := range queue.Names() {
		for _, state := range []string{"pending", "active", "scheduled", "retry", "archived", "completed"} {
			_ = get(fmt.Sprintf("/queues/%s/%s_tasks?size=1000", q, state))
		}
	}
	return all.String(), nil
}
