package match_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/labelq/labelq/internal/matching"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/worker/match"
)

// BenchmarkMatchHandler5000x500 times one whole project:match run (load, solve,
// write and commit) on a real database holding 5,000 open jobs and 500
// annotators with 10 free slots each, and puts the optimum beside a greedy
// assignment of the same loaded input computed in the same run.
func BenchmarkMatchHandler5000x500(b *testing.B) { benchmarkHandler(b, 5000, 500) }

func benchmarkHandler(b *testing.B, jobs, users int) {
	pg := testenv.Postgres(b)
	org := pg.Org(b)
	pr := pg.Project(b, org.ID)
	seedBacklog(b, pg.Pool, org.ID, pr.ID, jobs, users)
	h := match.NewHandler(match.Deps{Pool: pg.Pool})
	ctx := context.Background()

	var handler, solve, load, write time.Duration
	var rep match.Report
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		// Every iteration starts from the same open backlog.
		if _, err := pg.Pool.Exec(ctx, `DELETE FROM event_log; DELETE FROM assignments`); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		var err error
		rep, err = h.Run(ctx, pr.ID)
		handler += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		solve, load, write = solve+rep.Solve, load+rep.Load, write+rep.Write
	}
	b.StopTimer()

	side := rep.Annotators
	if len(side.Jobs) != jobs || side.Written != len(side.Result.Assignments) {
		b.Fatalf("run saw %d jobs and wrote %d of %d assignments", len(side.Jobs), side.Written, len(side.Result.Assignments))
	}
	var stored float64
	if err := pg.Pool.QueryRow(ctx, `SELECT COALESCE(sum(score), 0) FROM assignments`).Scan(&stored); err != nil {
		b.Fatal(err)
	}
	if d := stored - side.Result.TotalScore; d > 1e-6 || d < -1e-6 {
		b.Fatalf("stored scores sum to %v, the solver reported %v", stored, side.Result.TotalScore)
	}
	greedyScore, greedyAssigned := greedy(side.Jobs, side.Candidates, side.Options)
	if side.Result.TotalScore < greedyScore-1e-9 {
		b.Fatalf("objective %v below greedy %v", side.Result.TotalScore, greedyScore)
	}
	n := float64(b.N)
	b.ReportMetric(handler.Seconds()/n, "handler_s")
	b.ReportMetric(solve.Seconds()/n, "solve_s")
	b.ReportMetric(load.Seconds()/n, "load_s")
	b.ReportMetric(write.Seconds()/n, "write_s")
	b.ReportMetric(side.Result.TotalScore, "objective")
	b.ReportMetric(greedyScore, "greedy_objective")
	b.ReportMetric(side.Result.TotalScore/greedyScore, "objective_vs_greedy")
	b.ReportMetric(float64(len(side.Result.Assignments)), "assigned")
	b.ReportMetric(float64(greedyAssigned), "greedy_assigned")
}

// seedBacklog bulk-loads a project-sized backlog with COPY: annotators with one
// to three of four languages at random proficiencies (so some fall below the
// minimum), fine-grained skills, capacity 10, a few without availability or
// inactive; jobs in those languages or none, mixed priorities, half with a due
// date, 5% re-opened with one or two previous annotators. Explicit ids far above
// what the fixtures use keep the rows linkable without reading them back.
func seedBacklog(b *testing.B, pool *pgxpool.Pool, orgID, projectID int64, jobs, users int) {
	b.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, uint64(jobs)))
	const base = 1_000_000
	langs := []string{"en", "de", "zh", "es"}

	userRows := make([][]any, users)
	for i := range userRows {
		exp := map[string]float64{}
		for _, k := range rng.Perm(len(langs))[:1+rng.IntN(3)] {
			exp[langs[k]] = float64(1+rng.IntN(9)) / 2 // 0.5 to 4.5, a quarter of them raised to 5
			if rng.IntN(4) == 0 {
				exp[langs[k]] = 5
			}
		}
		expJSON, _ := json.Marshal(exp)
		avail := `{"timezone":"UTC","monday":["09:00-17:00"],"wednesday":["09:00-13:00"]}`
		if rng.IntN(40) == 0 {
			avail = `{"timezone":"UTC"}`
		}
		userRows[i] = []any{
			int64(base + i), orgID, fmt.Sprintf("bench%05d@example.test", i), fmt.Sprintf("Annotator %d", i), "annotator",
			avail, string(expJSON), float64(rng.IntN(1_000_001)) / 1e6, float64(rng.IntN(1_000_001)) / 1e6,
			int32(10), rng.IntN(50) != 0,
		}
	}
	fileRows := make([][]any, jobs)
	versionRows := make([][]any, jobs)
	jobRows := make([][]any, jobs)
	var prevRows [][]any
	prios := []string{"low", "medium", "high"}
	now := time.Now().UTC().Truncate(time.Second)
	for i := range jobs {
		id := int64(base + i)
		fileRows[i] = []any{id, orgID, projectID, fmt.Sprintf("bench-%05d.txt", i), "dataset"}
		versionRows[i] = []any{id, orgID, projectID, id, int32(1), fmt.Sprintf("uploads/bench/%d", i)}
		var lang *string
		if k := rng.IntN(len(langs) + 1); k < len(langs) {
			lang = &langs[k]
		}
		var due *time.Time
		if rng.IntN(2) == 0 {
			d := now.Add(time.Duration(rng.IntN(30*24)) * time.Hour)
			due = &d
		}
		jobRows[i] = []any{id, orgID, projectID, id, id, lang, prios[rng.IntN(len(prios))], due}
		if rng.IntN(20) == 0 {
			for _, u := range rng.Perm(users)[:1+rng.IntN(2)] {
				prevRows = append(prevRows, []any{id, int64(base + u), orgID})
			}
		}
	}

	conn, err := pool.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Release()
	// COPY's binary format needs the enum types' OIDs.
	for _, name := range []string{"user_role", "file_type", "job_priority"} {
		t, err := conn.Conn().LoadType(ctx, name)
		if err != nil {
			b.Fatal(err)
		}
		conn.Conn().TypeMap().RegisterType(t)
	}
	for _, c := range []struct {
		table string
		cols  []string
		rows  [][]any
	}{
		{"users", []string{"id", "org_id", "email", "name", "role", "availability", "language_expertise",
			"skill_score", "qa_approval_rate", "max_active_jobs", "is_active"}, userRows},
		{"files", []string{"id", "org_id", "project_id", "name", "file_type"}, fileRows},
		{"file_versions", []string{"id", "org_id", "project_id", "file_id", "version_number", "storage_path"}, versionRows},
		{"annotation_jobs", []string{"id", "org_id", "project_id", "file_id", "file_version_id", "language", "priority", "due_date"}, jobRows},
		{"job_previous_annotators", []string{"job_id", "user_id", "org_id"}, prevRows},
	} {
		n, err := conn.CopyFrom(ctx, pgx.Identifier{c.table}, c.cols, pgx.CopyFromRows(c.rows))
		if err != nil {
			b.Fatalf("copy %s: %v", c.table, err)
		}
		if int(n) != len(c.rows) {
			b.Fatalf("copy %s: %d of %d rows", c.table, n, len(c.rows))
		}
	}
	// COPY wrote the identity columns itself; move the sequences past it so a
	// later insert cannot collide.
	for _, table := range []string{"users", "files", "file_versions", "annotation_jobs"} {
		if _, err := conn.Exec(ctx, fmt.Sprintf(
			`SELECT setval(pg_get_serial_sequence('%s', 'id'), (SELECT max(id) FROM %s))`, table, table)); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, `ANALYZE`); err != nil {
		b.Fatal(err)
	}
}

// greedy is the baseline a project manager's spreadsheet would reach: every
// legal (job, annotator) pair by score, best first, taken while both are free.
// It applies the same hard rules as the solver and returns the total score and
// the number of jobs assigned.
func greedy(jobs []matching.Job, cands []matching.Candidate, opts matching.Options) (float64, int) {
	minProf := opts.MinProficiency
	if minProf == 0 {
		minProf = matching.DefaultMinProficiency
	}
	type pair struct {
		score float64
		job   int
		cand  int
	}
	var pairs []pair
	left := make([]int, len(cands))
	for u, c := range cands {
		if c.Role != matching.RoleAnnotator || !c.Active || !c.HasAvailability || c.ReviewsInProject {
			continue
		}
		left[u] = max(c.Remaining, 0)
	}
	for j, job := range jobs {
		lang := strings.ToLower(job.Language)
		for u, c := range cands {
			if left[u] == 0 || slices.Contains(job.PreviousAnnotators, c.ID) {
				continue
			}
			p := 0.0
			if lang == "" {
				for _, v := range c.Proficiency {
					p = max(p, v)
				}
			} else {
				p = c.Proficiency[lang]
				if p < minProf {
					continue
				}
			}
			q := 0.4*p/5 + 0.3*deref(c.SkillScore) + 0.3*deref(c.QAApprovalRate)
			pairs = append(pairs, pair{float64(job.Priority.Weight()) * q, j, u})
		}
	}
	slices.SortFunc(pairs, func(x, y pair) int {
		if c := cmp.Compare(y.score, x.score); c != 0 {
			return c
		}
		if c := cmp.Compare(jobs[x.job].ID, jobs[y.job].ID); c != 0 {
			return c
		}
		return cmp.Compare(cands[x.cand].ID, cands[y.cand].ID)
	})
	taken := make([]bool, len(jobs))
	total, n := 0.0, 0
	for _, p := range pairs {
		if taken[p.job] || left[p.cand] == 0 {
			continue
		}
		taken[p.job] = true
		left[p.cand]--
		total += p.score
		n++
	}
	return total, n
}
