package match_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/matching"
	"github.com/labelq/labelq/internal/metrics"
	"github.com/labelq/labelq/internal/queue"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/worker/match"
)

// threeLanguages is a small project worked out by hand: jobs in en, zh and de
// (plus one in fr that nobody speaks and one with no language), annotators of
// mixed languages, skills and capacities, and people who must get nothing: one
// who reviews in the project, one whose capacity is used up in another
// project, one with no availability windows, an inactive one, a QC user and an
// annotator of another organization.
//
// quality = 0.08·proficiency + 0.3·skill + 0.3·QA, score = weight × quality:
//
//	      proficiency         skill  QA   free slots  quality
//	A     en 5, zh 3.5        0.9    0.9  1           en .94  zh .82
//	B     en 4, de 3          0.5    0.6  2 (3 − 1)   en .65  de .57
//	C     zh 5, de 4.5        0.7    0.8  2           zh .85  de .81
//	D     en 2, de 2 (< 3)    1      1    5           only jobs with no language: .76
//
//	J1 en high (×3): A 2.82, B 1.95     J5 de medium (×2): B 1.14, C 1.62
//	J2 en low  (×1): A 0.94, B 0.65     J6 zh low    (×1): A 0.82, C 0.85
//	J3 zh medium (×2): A 1.64, C 1.70   J7 fr medium: nobody reaches 3 in fr
//	J4 de high (×3): B 1.71, C 2.43     J8 none, low: A .94, B .65, C .85, D .76
//
// A's single slot is worth most on J1 (2.82; the best alternative use, J3, gains
// 1.64 but hands J1 to B for 1.95, 0.87 less than A). Then C's two slots go to J3
// and J4 (4.13), which leaves B with J5 and J2 (1.79); D, who qualifies for no
// language job, takes J8. Total 2.82 + 0.65 + 1.70 + 2.43 + 1.14 + 0.76 = 9.50.
// J6 stays open (A and C, the zh speakers, are full) and J7 too (no fr speaker).
type threeLanguages struct {
	*fixture
	other                           db.Project
	a, b, c, d, f, g, h, i, qc, ext db.User
	jobs                            map[string]db.AnnotationJob
}

func newThreeLanguages(t testing.TB) *threeLanguages {
	t.Helper()
	x := &threeLanguages{fixture: newFixture(t), jobs: map[string]db.AnnotationJob{}}
	x.other = x.pg.Project(t, x.org.ID)
	x.a = x.user(person{langs: `{"en": 5, "zh": 3.5}`, skill: 0.9, qa: 0.9, capacity: 1})
	x.b = x.user(person{langs: `{"en": 4, "de": 3}`, skill: 0.5, qa: 0.6, capacity: 3})
	x.c = x.user(person{langs: `{"zh": 5, "de": 4.5}`, skill: 0.7, qa: 0.8, capacity: 2})
	x.d = x.user(person{langs: `{"en": 2, "de": 2}`, skill: 1, qa: 1, capacity: 5})
	perfect := `{"en": 5, "zh": 5, "de": 5}`
	x.f = x.user(person{langs: perfect, skill: 1, qa: 1, capacity: 5})                 // reviews in the project
	x.g = x.user(person{langs: perfect, skill: 1, qa: 1, capacity: 1})                 // full from another project
	x.h = x.user(person{langs: perfect, skill: 1, qa: 1, capacity: 5, noWindow: true}) // no availability
	x.i = x.user(person{langs: perfect, skill: 1, qa: 1, capacity: 5, inactive: true})
	x.qc = x.user(person{role: db.UserRoleQc, langs: perfect, skill: 1, qa: 1, capacity: 5})
	otherOrg := x.pg.Org(t)
	x.ext = x.pg.User(t, otherOrg.ID, func(u *db.UserCreateParams) {
		u.Role, u.Availability = db.UserRoleAnnotator, json.RawMessage(weekdays)
		u.LanguageExpertise, u.SkillScore, u.QaApprovalRate, u.MaxActiveJobs = json.RawMessage(perfect), ptr(1.0), ptr(1.0), 50
	})

	due := time.Date(2030, 1, 15, 12, 0, 0, 0, time.UTC)
	for _, j := range []struct {
		name, lang string
		prio       db.JobPriority
		due        *time.Time
	}{
		{"J1", "en", db.JobPriorityHigh, &due}, {"J2", "en", db.JobPriorityLow, nil},
		{"J3", "zh", db.JobPriorityMedium, nil}, {"J4", "de", db.JobPriorityHigh, nil},
		{"J5", "de", db.JobPriorityMedium, &due}, {"J6", "zh", db.JobPriorityLow, nil},
		{"J7", "fr", db.JobPriorityMedium, nil}, {"J8", "", db.JobPriorityLow, nil},
	} {
		x.jobs[j.name] = x.job(x.pr, j.lang, j.prio, j.due)
	}

	// F reviewed a finished job of this project: F may never annotate in it.
	done := x.job(x.pr, "en", db.JobPriorityMedium, nil)
	x.setJobStatus(done, db.JobStatusSubmitted)
	x.assign(x.pr, done.ID, x.f.ID, db.AssignmentRoleReviewer)
	// B and G work in another project: one of B's three slots and G's only one.
	for _, u := range []db.User{x.b, x.g} {
		x.assign(x.other, x.job(x.other, "en", db.JobPriorityLow, nil).ID, u.ID, db.AssignmentRoleAnnotator)
	}
	return x
}

// expected is the hand-computed optimum: job name → user.
func (x *threeLanguages) expected() map[int64]int64 {
	return map[int64]int64{
		x.jobs["J1"].ID: x.a.ID, x.jobs["J2"].ID: x.b.ID, x.jobs["J3"].ID: x.c.ID,
		x.jobs["J4"].ID: x.c.ID, x.jobs["J5"].ID: x.b.ID, x.jobs["J8"].ID: x.d.ID,
	}
}

// solverInput is the same instance written directly as the solver's input, as
// the handler should read it from the rows.
func (x *threeLanguages) solverInput() ([]matching.Job, []matching.Candidate) {
	var jobs []matching.Job
	for _, j := range x.jobs {
		jobs = append(jobs, matching.Job{ID: j.ID, Language: deref(j.Language), Priority: matching.Priority(j.Priority), DueDate: j.DueDate})
	}
	perfect := map[string]float64{"en": 5, "zh": 5, "de": 5}
	cand := func(u db.User, prof map[string]float64, skill, qa float64, remaining, load int) matching.Candidate {
		return matching.Candidate{ID: u.ID, Role: matching.RoleAnnotator, Active: true, HasAvailability: true,
			Proficiency: prof, SkillScore: &skill, QAApprovalRate: &qa, Remaining: remaining, Load: load}
	}
	cands := []matching.Candidate{
		cand(x.a, map[string]float64{"en": 5, "zh": 3.5}, 0.9, 0.9, 1, 0),
		cand(x.b, map[string]float64{"en": 4, "de": 3}, 0.5, 0.6, 2, 1),
		cand(x.c, map[string]float64{"zh": 5, "de": 4.5}, 0.7, 0.8, 2, 0),
		cand(x.d, map[string]float64{"en": 2, "de": 2}, 1, 1, 5, 0),
		cand(x.f, perfect, 1, 1, 4, 1),
		cand(x.g, perfect, 1, 1, 0, 1),
		cand(x.h, perfect, 1, 1, 5, 0),
	}
	cands[4].ReviewsInProject = true
	cands[6].HasAvailability = false
	return jobs, cands
}

func deref[T any](p *T) T {
	var zero T
	if p != nil {
		return *p
	}
	return zero
}

func TestMatchThreeLanguages(t *testing.T) {
	t.Parallel()
	x := newThreeLanguages(t)
	x.mustProcess()
	got := x.liveMap(db.AssignmentRoleAnnotator)

	t.Run("assigns the hand-computed optimum", func(t *testing.T) {
		require.Equal(t, x.expected(), got)
	})

	t.Run("stored scores are the objective and equal the solver's on the same input", func(t *testing.T) {
		var total float64
		scores := map[int64]float64{}
		for _, a := range x.assignments(x.pr) {
			if a.Role == db.AssignmentRoleAnnotator && live(a) {
				total += a.Score
				scores[a.JobID] = a.Score
			}
		}
		assert.InDelta(t, 9.50, total, 1e-9)
		assert.InDelta(t, 2.82, scores[x.jobs["J1"].ID], 1e-9)
		assert.InDelta(t, 2.43, scores[x.jobs["J4"].ID], 1e-9)
		assert.InDelta(t, 0.76, scores[x.jobs["J8"].ID], 1e-9)

		jobs, cands := x.solverInput()
		res, err := matching.Solve(context.Background(), jobs, cands, matching.Options{MinProficiency: 3})
		require.NoError(t, err)
		assert.InDelta(t, res.TotalScore, total, 1e-9)
		want := map[int64]int64{}
		for _, a := range res.Assignments {
			want[a.JobID] = a.UserID
		}
		assert.Equal(t, want, got, "the handler read the rows into a different problem")
	})

	t.Run("capacity counts live assignments in other projects", func(t *testing.T) {
		perUser := map[int64]int{}
		for _, u := range got {
			perUser[u]++
		}
		assert.Equal(t, 2, perUser[x.b.ID], "B has 3 slots and 1 is taken in another project")
		assert.Zero(t, perUser[x.g.ID], "G's only slot is taken in another project")
		assert.LessOrEqual(t, perUser[x.a.ID], 1)
		assert.LessOrEqual(t, perUser[x.c.ID], 2)
	})

	t.Run("conflicting, unavailable, inactive and foreign people get nothing", func(t *testing.T) {
		for _, u := range []db.User{x.f, x.g, x.h, x.i, x.qc, x.ext} {
			for job, got := range got {
				assert.NotEqual(t, u.ID, got, "job %d went to user %d", job, u.ID)
			}
		}
	})

	t.Run("one assigned event per assignment and one summary", func(t *testing.T) {
		assigned := x.events(match.EventAssigned)
		require.Len(t, assigned, 6)
		for _, ev := range assigned {
			assert.Equal(t, db.EntityTypeAssignment, ev.EntityType)
			require.NotNil(t, ev.DedupKey)
			require.NotNil(t, ev.UserID)
			assert.Contains(t, *ev.DedupKey, fmt.Sprintf(":annotator:%d:%d", *ev.UserID, ev.EntityID))
		}
		done := x.events(match.EventMatchCompleted)
		require.Len(t, done, 1)
		assert.Equal(t, db.EntityTypeProject, done[0].EntityType)
		assert.Equal(t, x.pr.ID, done[0].EntityID)
		sum := decodeSummary(t, done[0])
		assert.Equal(t, 6, sum.Assigned)
		assert.Equal(t, 8, sum.Jobs)
		assert.Equal(t, map[string]int{"capacity_exhausted": 1, "no_language_match": 1}, sum.Unassigned)
		assert.InDelta(t, 9.50, sum.TotalScore, 1e-9)
		assert.Nil(t, sum.Reviewers)
	})

	t.Run("running the task again changes nothing", func(t *testing.T) {
		before := x.assignments(x.pr)
		x.mustProcess()
		assert.Equal(t, before, x.assignments(x.pr))
		assert.Len(t, x.events(match.EventAssigned), 6)
		assert.Len(t, x.events(match.EventMatchCompleted), 1)
	})
}

func TestMatchConcurrentTriggersAssignOnce(t *testing.T) {
	t.Parallel()
	x := newThreeLanguages(t)
	// A second handler, as a second worker process would have.
	other := match.NewHandler(match.Deps{Pool: x.pg.Pool, Log: testLogger(t)})
	task, err := tasks.NewTask(tasks.Match{ProjectID: x.pr.ID})
	require.NoError(t, err)
	start := make(chan struct{})
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, h := range []*match.Handler{x.handler, other} {
		wg.Go(func() {
			<-start
			errs[i] = tasks.Handle(h.Work).ProcessTask(context.Background(), task)
		})
	}
	close(start)
	wg.Wait()
	// The loser either waited out nothing (the winner was done) or was told to
	// retry; its retry then finds nothing left to assign.
	for i, err := range errs {
		var busy *queue.RetryAfterError
		if errors.As(err, &busy) {
			require.NoError(t, tasks.Handle(x.handler.Work).ProcessTask(context.Background(), task), "retry of trigger %d", i)
			continue
		}
		require.NoError(t, err)
	}

	require.Equal(t, x.expected(), x.liveMap(db.AssignmentRoleAnnotator))
	assert.Len(t, x.assignments(x.pr), 6+1, "six new assignments next to F's review")
	assert.Len(t, x.events(match.EventAssigned), 6)
	assert.Len(t, x.events(match.EventMatchCompleted), 1)
}

func TestMatchRevokedAnnotatorIsNotReassigned(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	best := f.user(person{langs: `{"en": 5}`, skill: 1, qa: 1, capacity: 5})
	second := f.user(person{langs: `{"en": 4}`, skill: 0.5, qa: 0.5, capacity: 5})
	j := f.job(f.pr, "en", db.JobPriorityMedium, nil)

	f.mustProcess()
	require.Equal(t, map[int64]int64{j.ID: best.ID}, f.liveMap(db.AssignmentRoleAnnotator))

	var first db.Assignment
	for _, a := range f.assignments(f.pr) {
		first = a
	}
	f.revoke(first)
	f.mustProcess()
	assert.Equal(t, map[int64]int64{j.ID: second.ID}, f.liveMap(db.AssignmentRoleAnnotator),
		"the revoked annotator still has capacity and the best score, but is a previous annotator of the job")

	// With the second one revoked too nobody is left for the job.
	for _, a := range f.assignments(f.pr) {
		if live(a) {
			f.revoke(a)
		}
	}
	f.mustProcess()
	assert.Empty(t, f.liveMap(db.AssignmentRoleAnnotator))
	done := f.events(match.EventMatchCompleted)
	require.Len(t, done, 3)
	assert.Equal(t, map[string]int{"all_conflict": 1}, decodeSummary(t, done[2]).Unassigned)
}

func TestMatchReviewers(t *testing.T) {
	t.Parallel()
	f := newFixture(t, reviewersOn)
	ann := f.user(person{langs: `{"en": 4, "de": 4}`, skill: 0.8, qa: 0.8, capacity: 10})
	// The best QC user annotated in this project once: never a reviewer here.
	formerAnnotator := f.user(person{role: db.UserRoleQc, langs: `{"en": 5, "de": 5}`, skill: 1, qa: 1, capacity: 10})
	qcEN := f.user(person{role: db.UserRoleQc, langs: `{"en": 5}`, skill: 0.9, qa: 0.9, capacity: 10})
	qcDE := f.user(person{role: db.UserRoleQc, langs: `{"de": 4}`, skill: 0.6, qa: 0.6, capacity: 1})

	old := f.job(f.pr, "en", db.JobPriorityLow, nil)
	f.setJobStatus(old, db.JobStatusSubmitted)
	oldAssignment := f.assign(f.pr, old.ID, formerAnnotator.ID, db.AssignmentRoleAnnotator)
	_, err := f.pg.Pool.Exec(context.Background(), `UPDATE assignments SET status = 'completed' WHERE id = $1`, oldAssignment.ID)
	require.NoError(t, err)

	en1 := f.job(f.pr, "en", db.JobPriorityHigh, nil)
	en2 := f.job(f.pr, "en", db.JobPriorityMedium, nil)
	de1 := f.job(f.pr, "de", db.JobPriorityHigh, nil)
	de2 := f.job(f.pr, "de", db.JobPriorityLow, nil)

	f.mustProcess()
	assert.Equal(t, map[int64]int64{en1.ID: ann.ID, en2.ID: ann.ID, de1.ID: ann.ID, de2.ID: ann.ID},
		f.liveMap(db.AssignmentRoleAnnotator))
	// The submitted job waits for review too; qcDE has one slot and the
	// higher-priority de job wins it.
	assert.Equal(t, map[int64]int64{old.ID: qcEN.ID, en1.ID: qcEN.ID, en2.ID: qcEN.ID, de1.ID: qcDE.ID},
		f.liveMap(db.AssignmentRoleReviewer))

	sides := map[int64]map[db.AssignmentRole]bool{}
	for _, a := range f.assignments(f.pr) {
		if sides[a.UserID] == nil {
			sides[a.UserID] = map[db.AssignmentRole]bool{}
		}
		sides[a.UserID][a.Role] = true
	}
	for u, roles := range sides {
		assert.False(t, roles[db.AssignmentRoleAnnotator] && roles[db.AssignmentRoleReviewer], "user %d is on both sides", u)
	}

	done := f.events(match.EventMatchCompleted)
	require.Len(t, done, 1)
	sum := decodeSummary(t, done[0])
	require.NotNil(t, sum.Reviewers)
	assert.Equal(t, 4, sum.Assigned)
	assert.Equal(t, 4, sum.Reviewers.Assigned)
	assert.Equal(t, map[string]int{"capacity_exhausted": 1}, sum.Reviewers.Unassigned)
	assert.Len(t, f.events(match.EventAssigned), 8)

	// Again: nothing new, and the unchanged situation is not reported twice.
	f.mustProcess()
	assert.Len(t, f.events(match.EventAssigned), 8)
	assert.Len(t, f.events(match.EventMatchCompleted), 1)
}

func TestMatchBadInputIsPermanent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, tc := range []struct {
		name    string
		payload string
	}{
		{"not JSON", `project 1`},
		{"empty object", `{}`},
		{"negative id", `{"project_id": -4}`},
		{"id is a string", `{"project_id": "7"}`},
		{"unknown project", `{"project_id": 987654321}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tasks.Handle(f.handler.Work).ProcessTask(context.Background(), asynq.NewTask(tasks.Match{}.Kind(), []byte(tc.payload)))
			require.Error(t, err)
			assert.True(t, isPermanent(err), "%v should not be retried", err)
		})
	}
}

func TestMatchReportsOnlyWhatChanged(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.user(person{langs: `{"en": 5}`, skill: 1, qa: 1, capacity: 5})

	t.Run("a project with no open jobs writes nothing", func(t *testing.T) {
		f.mustProcess()
		assert.Empty(t, f.events(match.EventMatchCompleted))
	})
	t.Run("a job nobody can take is reported once", func(t *testing.T) {
		f.job(f.pr, "ja", db.JobPriorityHigh, nil)
		f.mustProcess()
		f.mustProcess()
		done := f.events(match.EventMatchCompleted)
		require.Len(t, done, 1)
		assert.Equal(t, map[string]int{"no_language_match": 1}, decodeSummary(t, done[0]).Unassigned)
	})
	t.Run("a new job nobody can take is reported again", func(t *testing.T) {
		f.job(f.pr, "ko", db.JobPriorityHigh, nil)
		f.mustProcess()
		done := f.events(match.EventMatchCompleted)
		require.Len(t, done, 2)
		assert.Equal(t, map[string]int{"no_language_match": 2}, decodeSummary(t, done[1]).Unassigned)
	})
	t.Run("an archived project gets no assignments", func(t *testing.T) {
		f.job(f.pr, "en", db.JobPriorityHigh, nil)
		_, err := f.pg.Q.ProjectUpdate(context.Background(), db.ProjectUpdateParams{
			ID: f.pr.ID, OrgID: f.pr.OrgID, Status: ptr(db.ProjectStatusArchived),
		})
		require.NoError(t, err)
		rep, err := f.handler.Run(context.Background(), f.pr.ID)
		require.NoError(t, err)
		assert.NotEmpty(t, rep.Skipped)
		assert.Empty(t, f.assignments(f.pr))
	})
}

// TestMatchSharedPeopleAcrossProjects: runs of two projects do not share the
// project lock, but they share people. A run that solved with a capacity
// another project's run has since used must not overbook.
func TestMatchSharedPeopleAcrossProjects(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	star := f.user(person{langs: `{"en": 5}`, skill: 1, qa: 1, capacity: 1})
	backup := f.user(person{langs: `{"en": 3}`, skill: 0.2, qa: 0.2, capacity: 5})
	j := f.job(f.pr, "en", db.JobPriorityHigh, nil)
	other := f.pg.Project(t, f.org.ID)
	jo := f.job(other, "en", db.JobPriorityHigh, nil)

	// Stand in for the other project's run at its last step: it holds star's
	// row lock and is about to commit star's only slot.
	ctx := context.Background()
	tx, err := f.pg.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	q := f.pg.Q.WithTx(tx)
	require.NoError(t, q.UserLockForAssignment(ctx, []int64{star.ID}))
	_, err = q.AssignmentCreateBatch(ctx, db.AssignmentCreateBatchParams{
		OrgID: other.OrgID, ProjectID: other.ID, Role: db.AssignmentRoleAnnotator,
		JobIds: []int64{jo.ID}, UserIds: []int64{star.ID}, Scores: []float64{3},
	})
	require.NoError(t, err)

	type result struct {
		rep match.Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := f.handler.Run(ctx, f.pr.ID)
		done <- result{rep, err}
	}()
	// Commit once this run has solved (star is free in its snapshot) and waits
	// for star's row.
	require.Eventually(t, func() bool {
		var waiting int
		err := f.pg.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%UserLockForAssignment%'`).Scan(&waiting)
		return err == nil && waiting == 1
	}, 20*time.Second, 10*time.Millisecond)
	require.NoError(t, tx.Commit(ctx))

	res := <-done
	require.NoError(t, res.err)
	assert.Equal(t, 2, res.rep.Attempts, "the first solution overbooked star and was solved again")
	assert.Equal(t, map[int64]int64{j.ID: backup.ID}, f.liveMap(db.AssignmentRoleAnnotator))
}

func TestMatchMetrics(t *testing.T) {
	t.Parallel()
	x := newThreeLanguages(t)
	m := metrics.New()
	h := match.NewHandler(match.Deps{Pool: x.pg.Pool, Log: testLogger(t), Metrics: m})
	_ = match.NewHandler(match.Deps{Pool: x.pg.Pool, Metrics: m}) // a second handler on one registry is fine
	_, err := h.Run(context.Background(), x.pr.ID)
	require.NoError(t, err)
	families, err := m.Registry.Gather()
	require.NoError(t, err)
	values := map[string]float64{}
	for _, fam := range families {
		for _, metric := range fam.GetMetric() {
			key := fam.GetName()
			for _, l := range metric.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case metric.GetCounter() != nil:
				values[key] = metric.GetCounter().GetValue()
			case metric.GetHistogram() != nil:
				values[key] = float64(metric.GetHistogram().GetSampleCount())
			}
		}
	}
	assert.Equal(t, 6.0, values["labelq_match_assignments_total,side=annotator"])
	assert.Equal(t, 1.0, values["labelq_match_unassigned_total,reason=capacity_exhausted,side=annotator"])
	assert.Equal(t, 1.0, values["labelq_match_solve_seconds,side=annotator"])
	assert.Contains(t, values, "labelq_match_capacity_retries_total")
}
