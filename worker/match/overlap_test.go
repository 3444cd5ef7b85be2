package match_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
)

func overlapOf(n int32) func(*db.ProjectCreateParams) {
	return func(p *db.ProjectCreateParams) { p.Overlap = &n }
}

func goldRateOf(r float64) func(*db.ProjectCreateParams) {
	return func(p *db.ProjectCreateParams) { p.GoldRate = &r }
}

// copies is job id → the users holding a non-revoked annotator copy of it;
// it fails the test if anyone holds two copies of one job.
func (f *fixture) copies() map[int64][]int64 {
	f.t.Helper()
	m := map[int64][]int64{}
	seen := map[[2]int64]bool{}
	for _, a := range f.assignments(f.pr) {
		if a.Role != db.AssignmentRoleAnnotator || a.Status == db.AssignmentStatusRevoked {
			continue
		}
		k := [2]int64{a.JobID, a.UserID}
		require.False(f.t, seen[k], "user %d holds two copies of job %d", a.UserID, a.JobID)
		seen[k] = true
		m[a.JobID] = append(m[a.JobID], a.UserID)
	}
	return m
}

// TestOverlapGivesEachJobNDistinctAnnotators: with overlap 3 every job gets
// three different annotators; a revoked copy is replaced by someone else on
// the next run (not the person who gave it back); a completed copy still
// counts, so nobody gets a fourth; a run with nothing to do changes nothing.
func TestOverlapGivesEachJobNDistinctAnnotators(t *testing.T) {
	t.Parallel()
	f := newFixture(t, overlapOf(3))
	for range 5 {
		f.user(person{langs: `{"en": 5}`, skill: 0.8, qa: 0.8, capacity: 10})
	}
	var jobs []db.AnnotationJob
	for range 4 {
		jobs = append(jobs, f.job(f.pr, "en", db.JobPriorityMedium, nil))
	}
	f.mustProcess()
	got := f.copies()
	for _, j := range jobs {
		require.Len(t, got[j.ID], 3, "job %d", j.ID)
	}

	// A person gives a copy back: the next run finds someone else.
	var revoked db.Assignment
	for _, a := range f.assignments(f.pr) {
		if a.JobID == jobs[0].ID {
			revoked = a
			break
		}
	}
	f.revoke(revoked)
	require.Len(t, f.copies()[jobs[0].ID], 2)
	f.mustProcess()
	after := f.copies()[jobs[0].ID]
	require.Len(t, after, 3)
	require.NotContains(t, after, revoked.UserID, "the person who gave the copy back does not get it again")

	// A completed copy counts towards the overlap.
	_, err := f.pg.Pool.Exec(context.Background(),
		`UPDATE assignments SET status = 'completed' WHERE job_id = $1 AND status = 'assigned'`, jobs[1].ID)
	require.NoError(t, err)
	before := len(f.assignments(f.pr))
	f.mustProcess()
	require.Len(t, f.assignments(f.pr), before, "every job has its three copies: nothing to add")
	require.Len(t, f.copies()[jobs[1].ID], 3)
}

// TestGoldRateMixesInHoneypots: with gold_rate 0.25 and four free slots each,
// every annotator gets exactly one gold job among their four (the share is
// kept per person, not per project); gold jobs go to several annotators,
// nobody twice; the ordinary jobs fill the rest; open honeypots are not
// reported as unassigned backlog.
func TestGoldRateMixesInHoneypots(t *testing.T) {
	t.Parallel()
	f := newFixture(t, goldRateOf(0.25))
	var users []db.User
	for range 3 {
		users = append(users, f.user(person{langs: `{"en": 5}`, skill: 0.8, qa: 0.8, capacity: 4}))
	}
	gold := map[int64]bool{}
	for i := range 14 {
		j := f.job(f.pr, "en", db.JobPriorityMedium, nil)
		if i < 2 {
			_, err := f.pg.Pool.Exec(context.Background(), `UPDATE annotation_jobs SET gold = true WHERE id = $1`, j.ID)
			require.NoError(t, err)
			gold[j.ID] = true
		}
	}
	f.mustProcess()
	perUser := map[int64][2]int{} // gold, ordinary
	for job, us := range f.copies() {
		if !gold[job] {
			require.Len(t, us, 1, "an ordinary job gets one annotator (overlap 1)")
		}
		for _, u := range us {
			c := perUser[u]
			if gold[job] {
				c[0]++
			} else {
				c[1]++
			}
			perUser[u] = c
		}
	}
	require.Len(t, perUser, len(users))
	for _, u := range users {
		require.Equal(t, [2]int{1, 3}, perUser[u.ID], "user %d: one gold job in four", u.ID)
	}
	evs := f.events("match_completed")
	require.NotEmpty(t, evs)
	s := decodeSummary(t, evs[len(evs)-1])
	require.Equal(t, 9, s.Assigned, "ordinary copies")
	require.Equal(t, 3, s.Unassigned["capacity_exhausted"], "three ordinary jobs left; the honeypots are not counted")

	// Capacity freed by completing everything: the next run keeps the share
	// (two gold of eight each, the second honeypot each has not had).
	_, err := f.pg.Pool.Exec(context.Background(), `UPDATE assignments SET status = 'completed' WHERE project_id = $1`, f.pr.ID)
	require.NoError(t, err)
	f.mustProcess()
	goldPer := map[int64]int{}
	for job, us := range f.copies() {
		if gold[job] {
			require.LessOrEqual(t, len(us), len(users))
			for _, u := range us {
				goldPer[u]++
			}
		}
	}
	for _, u := range users {
		require.Equal(t, 2, goldPer[u.ID], "user %d: two gold of eight", u.ID)
	}
}
