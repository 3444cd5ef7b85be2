package matching_test

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/matching"
)

// copies maps job id to the users given a copy of it, in user id order.
func copies(res matching.Result) map[int64][]int64 {
	m := map[int64][]int64{}
	for _, a := range res.Assignments {
		m[a.JobID] = append(m[a.JobID], a.UserID)
	}
	return m
}

func openCopies(res matching.Result) map[int64]int {
	m := map[int64]int{}
	for _, u := range res.Unassigned {
		m[u.JobID] = u.Open
	}
	return m
}

func withNeed(j matching.Job, need int, due int) matching.Job {
	j.Need, j.DueDate = need, day(due)
	return j
}

func withRemaining(c matching.Candidate, remaining int) matching.Candidate {
	c.Remaining = remaining
	return c
}

func TestOverlapSmallMatchesBruteForce(t *testing.T) {
	runs := 3000
	if matching.RaceEnabled {
		runs = 1000
	}
	multiRound := 0
	for seed := range uint64(runs) {
		rng := rand.New(rand.NewPCG(seed, 11))
		jobs := 1 + rng.IntN(4)
		in := generate(rng, genParams{
			jobs:          jobs,
			users:         1 + rng.IntN(min(4, 16/jobs)),
			maxCap:        3,
			langs:         []string{"", "en", "de", "En"},
			excludeChance: 0.3,
			quirks:        seed%2 == 0,
			overlap:       3,
		})
		res, err := in.solve()
		require.NoError(t, err, "seed %d", seed)
		require.NoError(t, in.check(res), "seed %d", seed)
		require.Equal(t, in.bruteForce(), in.evaluate(res), "seed %d: objective (−score, −copies, Σdue, Σload, Σid)", seed)
		if res.Stats.Rounds > 1 {
			multiRound++
		}
	}
	// The relaxation must have failed somewhere, or the rounds that repair
	// it went untested.
	require.Positive(t, multiRound, "no instance needed a second round")
}

// TestOverlapMatchesPerJobNetwork compares the compressed solver with the
// uncompressed network (a node per job, an arc per job and person) on
// instances too large to enumerate, with scarce and with ample capacity.
func TestOverlapMatchesPerJobNetwork(t *testing.T) {
	runs := 40
	if matching.RaceEnabled {
		runs = 10
	}
	for seed := range uint64(runs) {
		rng := rand.New(rand.NewPCG(seed, 12))
		in := generate(rng, genParams{
			jobs:          40 + rng.IntN(200),
			users:         3 + rng.IntN(30),
			maxCap:        []int{3, 8, 30}[seed%3],
			langs:         []string{"", "en", "de", "zh"},
			excludeChance: 0.2,
			quirks:        seed%2 == 0,
			overlap:       1 + int(seed%4),
		})
		res, err := in.solve()
		require.NoError(t, err, "seed %d", seed)
		require.NoError(t, in.check(res), "seed %d", seed)
		exact, err := matching.SolvePerJob(ctx, in.jobs, in.cands, in.opts)
		require.NoError(t, err, "seed %d", seed)
		require.NoError(t, in.check(exact), "seed %d", seed)
		require.Equal(t, in.evaluate(exact), in.evaluate(res), "seed %d: objective (−score, −copies, Σdue, Σload, Σid)", seed)
		require.Equal(t, len(in.jobs), exact.Stats.Classes, "seed %d: the reference has a class per job", seed)
	}
}

func TestOverlapNobodyTwiceOnOneJob(t *testing.T) {
	t.Run("one person, two jobs that need two each", func(t *testing.T) {
		// Merged, the two jobs are one class to which the person sends two
		// copies, and the earlier job's arc would take both. The person
		// annotates each job once instead.
		in := instance{
			jobs:  []matching.Job{withNeed(job(1, "en", matching.PriorityLow), 2, 1), withNeed(job(2, "en", matching.PriorityLow), 2, 2)},
			cands: []matching.Candidate{withRemaining(user(7, en(4), 0.5), 5)},
		}
		res := solveChecked(t, in)
		require.Equal(t, map[int64][]int64{1: {7}, 2: {7}}, copies(res))
		require.Equal(t, map[int64]int{1: 1, 2: 1}, openCopies(res))
		require.Equal(t, map[int64]matching.Reason{1: matching.ReasonAllConflict, 2: matching.ReasonAllConflict}, reasons(res))
	})
	t.Run("earliest job first, as far as distinct people allow", func(t *testing.T) {
		// Seven copies fit (3 + 3 + 1 capacity). Three copies of job 1 need
		// all three people, which leaves c with nothing for job 2: the
		// earliest-due spread is (3, 2, 2), not (3, 3, 1).
		three := func(id int64) matching.Job { return withNeed(job(id, "en", matching.PriorityMedium), 3, int(id)) }
		in := instance{
			jobs: []matching.Job{three(1), three(2), three(3)},
			cands: []matching.Candidate{
				withRemaining(user(1, en(4), 0.5), 3),
				withRemaining(user(2, en(4), 0.5), 3),
				withRemaining(user(3, en(4), 0.5), 1),
			},
		}
		res := solveChecked(t, in)
		require.Equal(t, map[int64][]int64{1: {1, 2, 3}, 2: {1, 2}, 3: {1, 2}}, copies(res))
		require.Equal(t, map[int64]int{2: 1, 3: 1}, openCopies(res))
		require.Equal(t, in.bruteForce(), in.evaluate(res))
	})
}

func TestOverlapCapacity(t *testing.T) {
	// Five jobs need three copies each; three people can take two copies
	// each. The two earliest jobs get all three people, the rest wait.
	var jobs []matching.Job
	for id := int64(1); id <= 5; id++ {
		jobs = append(jobs, withNeed(job(id, "de", matching.PriorityHigh), 3, int(id)))
	}
	de := map[string]float64{"de": 4}
	in := instance{jobs: jobs, cands: []matching.Candidate{
		withRemaining(user(1, de, 0.2), 2), withRemaining(user(2, de, 0.4), 2), withRemaining(user(3, de, 0.6), 2),
	}}
	res := solveChecked(t, in)
	require.Equal(t, map[int64][]int64{1: {1, 2, 3}, 2: {1, 2, 3}}, copies(res))
	require.Equal(t, map[int64]int{3: 3, 4: 3, 5: 3}, openCopies(res))
	require.Equal(t, map[int64]matching.Reason{
		3: matching.ReasonCapacityExhausted, 4: matching.ReasonCapacityExhausted, 5: matching.ReasonCapacityExhausted,
	}, reasons(res))
	// 2 jobs × 3 × (0.4·4/5 + 0.3·s) over s = 0.2, 0.4, 0.6.
	require.InDelta(t, 2*3*(3*0.32+0.3*1.2), res.TotalScore, 1e-9)
}

func TestOverlapCurrentAnnotators(t *testing.T) {
	j := withNeed(job(1, "en", matching.PriorityLow), 2, 1)
	j.CurrentAnnotators = []int64{1} // holds the first copy
	in := instance{jobs: []matching.Job{j}, cands: []matching.Candidate{
		withRemaining(user(1, en(5), 1), 5), user(2, en(4), 0.1), user(3, en(4), 0.3), user(4, en(4), 0.2),
	}}
	res := solveChecked(t, in)
	require.Equal(t, map[int64][]int64{1: {3, 4}}, copies(res), "the best two who do not hold a copy yet")
	require.Empty(t, res.Unassigned)

	// Only the holder qualifies: the copy stays open, a conflict.
	in.cands = in.cands[:1]
	res = solveChecked(t, in)
	require.Empty(t, res.Assignments)
	require.Equal(t, []matching.Unassigned{{JobID: 1, Reason: matching.ReasonAllConflict, Open: 2}}, res.Unassigned)

	// A reviewer never reviews a copy they annotated.
	rj := job(1, "en", matching.PriorityLow)
	rj.CurrentAnnotators = []int64{5}
	qc := user(5, en(5), 1)
	qc.Role = matching.RoleQC
	res = solveChecked(t, instance{reviewers: true, jobs: []matching.Job{rj}, cands: []matching.Candidate{qc}})
	require.Equal(t, map[int64]matching.Reason{1: matching.ReasonAllConflict}, reasons(res))
}

func TestOverlapAfterRevocation(t *testing.T) {
	// The worker's view over two runs: a job with overlap 3, whose copy the
	// second person revokes after the first run. The revoker becomes a
	// previous annotator, the other two current ones, and the job needs one
	// more copy, which goes to the best person who never held one.
	cands := []matching.Candidate{user(1, en(4), 0.9), user(2, en(4), 0.8), user(3, en(4), 0.7), user(4, en(4), 0.6), user(5, en(4), 0.5)}
	for i := range cands {
		cands[i].Remaining = 3
	}
	first := solveChecked(t, instance{jobs: []matching.Job{withNeed(job(1, "en", matching.PriorityMedium), 3, 1)}, cands: cands})
	require.Equal(t, map[int64][]int64{1: {1, 2, 3}}, copies(first))

	again := withNeed(job(1, "en", matching.PriorityMedium), 1, 1)
	again.PreviousAnnotators = []int64{2}
	again.CurrentAnnotators = []int64{1, 3}
	for _, id := range again.CurrentAnnotators {
		cands[id-1].Load, cands[id-1].Remaining = 1, 2
	}
	second := solveChecked(t, instance{jobs: []matching.Job{again}, cands: cands})
	require.Equal(t, map[int64][]int64{1: {4}}, copies(second))
}

// TestOverlapOneIsDefault: a Need of 1 is the zero value's behaviour, on the
// random instances of TestRandomSmallMatchesBruteForce and on instances with
// overlap.
func TestOverlapOneIsDefault(t *testing.T) {
	for seed := range uint64(500) {
		rng := rand.New(rand.NewPCG(seed, 1))
		in := generate(rng, genParams{
			jobs: 1 + rng.IntN(7), users: 1 + rng.IntN(4), maxCap: 3, langs: []string{"", "en", "de", "En"},
			excludeChance: 0.3, reviewers: seed%3 == 0, quirks: true,
		})
		zero := solveChecked(t, in)
		for i := range in.jobs {
			in.jobs[i].Need = 1
		}
		require.Equal(t, zero, solveChecked(t, in), "seed %d", seed)

		rng = rand.New(rand.NewPCG(seed, 13))
		in = generate(rng, genParams{jobs: 20, users: 6, maxCap: 5, langs: []string{"", "en"}, excludeChance: 0.2, overlap: 3})
		before := solveChecked(t, in)
		for i := range in.jobs {
			switch in.jobs[i].Need {
			case 0:
				in.jobs[i].Need = 1
			case 1:
				in.jobs[i].Need = 0
			}
		}
		require.Equal(t, before, solveChecked(t, in), "seed %d", seed)
	}
}

func TestOverlapDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	in := generate(rng, genParams{jobs: 300, users: 40, maxCap: 8, langs: []string{"", "en", "de"}, excludeChance: 0.2, quirks: true, overlap: 3})
	first := solveChecked(t, in)
	shuffled := instance{jobs: append([]matching.Job(nil), in.jobs...), cands: append([]matching.Candidate(nil), in.cands...)}
	rng.Shuffle(len(shuffled.jobs), func(i, j int) { shuffled.jobs[i], shuffled.jobs[j] = shuffled.jobs[j], shuffled.jobs[i] })
	rng.Shuffle(len(shuffled.cands), func(i, j int) { shuffled.cands[i], shuffled.cands[j] = shuffled.cands[j], shuffled.cands[i] })
	for i := range shuffled.jobs {
		cur := append([]int64(nil), shuffled.jobs[i].CurrentAnnotators...)
		rng.Shuffle(len(cur), func(a, b int) { cur[a], cur[b] = cur[b], cur[a] })
		shuffled.jobs[i].CurrentAnnotators = cur
	}
	require.Equal(t, first, solveChecked(t, shuffled))
}

func TestOverlapInvalidInput(t *testing.T) {
	c := []matching.Candidate{user(1, en(4), 0.5)}
	tests := []struct {
		name      string
		reviewers bool
		jobs      []matching.Job
	}{
		{"negative need", false, []matching.Job{withNeed(job(1, "en", matching.PriorityLow), -1, 1)}},
		{"reviewers get one each", true, []matching.Job{withNeed(job(1, "en", matching.PriorityLow), 2, 1)}},
		{"one job beyond the copy limit", false, []matching.Job{withNeed(job(1, "en", matching.PriorityLow), matching.MaxCopies+1, 1)}},
		{"copies together beyond the limit", false, []matching.Job{
			withNeed(job(1, "en", matching.PriorityLow), matching.MaxCopies/2, 1),
			withNeed(job(2, "en", matching.PriorityLow), matching.MaxCopies/2, 1),
			job(3, "en", matching.PriorityLow), // counts as one
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := instance{reviewers: tt.reviewers, jobs: tt.jobs, cands: c}.solve()
			require.ErrorIs(t, err, matching.ErrInvalidInput)
		})
	}
	// At the limit it solves.
	_, err := instance{jobs: tests[3].jobs[:2], cands: c}.solve()
	require.NoError(t, err)
}
