package matching_test

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/matching"
)

func day(d int) *time.Time {
	t := time.Date(2025, 6, d, 12, 0, 0, 0, time.UTC)
	return &t
}

// user is an available annotator with capacity 1 and no load unless changed.
func user(id int64, prof map[string]float64, skill float64) matching.Candidate {
	return matching.Candidate{
		ID:              id,
		Role:            matching.RoleAnnotator,
		Active:          true,
		HasAvailability: true,
		Proficiency:     prof,
		SkillScore:      ptr(skill),
		Remaining:       1,
	}
}

func job(id int64, lang string, prio matching.Priority) matching.Job {
	return matching.Job{ID: id, Language: lang, Priority: prio}
}

func en(p float64) map[string]float64 { return map[string]float64{"en": p} }

// pairs maps job id to user id.
func pairs(res matching.Result) map[int64]int64 {
	m := map[int64]int64{}
	for _, a := range res.Assignments {
		m[a.JobID] = a.UserID
	}
	return m
}

func reasons(res matching.Result) map[int64]matching.Reason {
	m := map[int64]matching.Reason{}
	for _, u := range res.Unassigned {
		m[u.JobID] = u.Reason
	}
	return m
}

func solveChecked(t *testing.T, in instance) matching.Result {
	t.Helper()
	res, err := in.solve()
	require.NoError(t, err)
	require.NoError(t, in.check(res))
	return res
}

func TestScore(t *testing.T) {
	j := job(1, "en", matching.PriorityHigh)
	u := user(7, map[string]float64{"en": 4.5, "de": 5}, 0.8)
	res := solveChecked(t, instance{jobs: []matching.Job{j}, cands: []matching.Candidate{u}})
	require.Len(t, res.Assignments, 1)
	// 3 × (0.4·4.5/5 + 0.3·0.8 + 0.3·0) = 3 × 0.6
	require.InDelta(t, 1.8, res.Assignments[0].Score, 1e-12)
	require.InDelta(t, 1.8, res.TotalScore, 1e-12)

	// Without a language the best language counts: 3 × (0.4·5/5 + 0.24).
	j.Language = ""
	res = solveChecked(t, instance{jobs: []matching.Job{j}, cands: []matching.Candidate{u}})
	require.InDelta(t, 1.92, res.Assignments[0].Score, 1e-12)
}

func TestTieBreaks(t *testing.T) {
	sameJobs := func(due ...*time.Time) []matching.Job {
		var js []matching.Job
		for i, d := range due {
			j := job(int64(10+i), "en", matching.PriorityMedium)
			j.DueDate = d
			js = append(js, j)
		}
		return js
	}
	loaded := func(c matching.Candidate, load, remaining int) matching.Candidate {
		c.Load, c.Remaining = load, remaining
		return c
	}
	tests := []struct {
		name  string
		jobs  []matching.Job
		cands []matching.Candidate
		want  map[int64]int64
	}{
		{
			name:  "earlier due date wins the only slot",
			jobs:  sameJobs(day(5), day(2), day(9)),
			cands: []matching.Candidate{user(1, en(4), 0.5)},
			want:  map[int64]int64{11: 1},
		},
		{
			name:  "dated job beats undated one",
			jobs:  sameJobs(nil, day(20)),
			cands: []matching.Candidate{user(1, en(4), 0.5)},
			want:  map[int64]int64{11: 1},
		},
		{
			name:  "same due date: lower job id",
			jobs:  sameJobs(day(3), day(3)),
			cands: []matching.Candidate{user(1, en(4), 0.5)},
			want:  map[int64]int64{10: 1},
		},
		{
			name: "earliest due date across languages with equal scores",
			jobs: []matching.Job{
				{ID: 10, Language: "en", Priority: matching.PriorityMedium, DueDate: day(8)},
				{ID: 5, Language: "de", Priority: matching.PriorityMedium, DueDate: day(4)},
				{ID: 3, Language: "", Priority: matching.PriorityMedium, DueDate: day(6)},
			},
			cands: []matching.Candidate{user(1, map[string]float64{"en": 4, "de": 4}, 0.5)},
			want:  map[int64]int64{5: 1},
		},
		{
			name:  "less loaded user wins",
			jobs:  sameJobs(day(1)),
			cands: []matching.Candidate{loaded(user(1, en(4), 0.5), 3, 5), loaded(user(2, en(4), 0.5), 0, 5)},
			want:  map[int64]int64{10: 2},
		},
		{
			name:  "equal users: lower id wins",
			jobs:  sameJobs(day(1)),
			cands: []matching.Candidate{user(7, en(4), 0.5), user(3, en(4), 0.5)},
			want:  map[int64]int64{10: 3},
		},
		{
			// Load+k per job: user 1 costs 1,2,3,…, user 2 costs 2,3,4,…; the
			// fourth job ties at 3 and goes to the lower id.
			name:  "work spreads over equal users",
			jobs:  sameJobs(day(1), day(2), day(3), day(4)),
			cands: []matching.Candidate{loaded(user(2, en(4), 0.5), 0, 10), loaded(user(1, en(4), 0.5), 1, 10)},
			want:  map[int64]int64{10: 2, 11: 2, 12: 1, 13: 1},
		},
		{
			name:  "score beats due date",
			jobs:  []matching.Job{{ID: 1, Language: "en", Priority: matching.PriorityLow, DueDate: day(1)}, {ID: 2, Language: "en", Priority: matching.PriorityHigh}},
			cands: []matching.Candidate{user(1, en(4), 0.5)},
			want:  map[int64]int64{2: 1},
		},
		{
			name:  "score beats load",
			jobs:  sameJobs(day(1)),
			cands: []matching.Candidate{loaded(user(1, en(4), 0.5), 9, 1), loaded(user(2, en(4), 0.49), 0, 1)},
			want:  map[int64]int64{10: 1},
		},
		{
			// Job 1 alone on user 1 scores 0.4; job 1 on user 2 plus job 2 on
			// user 1 also scores 0.4 and serves one more job, even though
			// job 2 is due later.
			name: "one more job beats due dates",
			jobs: []matching.Job{
				{ID: 1, Language: "en", Priority: matching.PriorityLow, DueDate: day(1)},
				{ID: 2, Language: "fr", Priority: matching.PriorityLow, DueDate: day(30)},
			},
			cands: []matching.Candidate{
				user(1, map[string]float64{"en": 5, "fr": 2.5}, 0),
				user(2, en(2.5), 0),
			},
			want: map[int64]int64{1: 2, 2: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := instance{jobs: tt.jobs, cands: tt.cands, opts: matching.Options{MinProficiency: 2}}
			require.Equal(t, tt.want, pairs(solveChecked(t, in)))
		})
	}
}

func TestZeroScorePairIsAssigned(t *testing.T) {
	nobody := matching.Candidate{ID: 4, Role: matching.RoleAnnotator, Active: true, HasAvailability: true, Remaining: 3}
	in := instance{jobs: []matching.Job{job(1, "", matching.PriorityHigh)}, cands: []matching.Candidate{nobody}}
	res := solveChecked(t, in)
	require.Equal(t, []matching.Assignment{{JobID: 1, UserID: 4, Score: 0}}, res.Assignments)
}

func TestReasons(t *testing.T) {
	inactive := user(1, en(5), 1)
	inactive.Active = false
	noWindows := user(2, en(5), 1)
	noWindows.HasAvailability = false
	qc := user(3, en(5), 1)
	qc.Role = matching.RoleQC
	reviewer := user(4, en(5), 1)
	reviewer.ReviewsInProject = true
	full := user(5, en(5), 1)
	full.Remaining = 0
	weak := user(6, map[string]float64{"en": 2.9, "zh": 5}, 1)
	previous := user(7, en(4), 1)

	reopened := job(1, "en", matching.PriorityHigh)
	reopened.PreviousAnnotators = []int64{7}

	tests := []struct {
		name  string
		jobs  []matching.Job
		cands []matching.Candidate
		want  map[int64]matching.Reason
	}{
		{"no candidates", []matching.Job{job(1, "en", matching.PriorityLow)}, nil,
			map[int64]matching.Reason{1: matching.ReasonNoAvailableAnnotator}},
		{"nobody active, available and of the role", []matching.Job{job(1, "", matching.PriorityLow)}, []matching.Candidate{inactive, noWindows, qc},
			map[int64]matching.Reason{1: matching.ReasonNoAvailableAnnotator}},
		{"below the language minimum", []matching.Job{job(1, "en", matching.PriorityLow), job(2, "de", matching.PriorityLow)}, []matching.Candidate{weak, inactive},
			map[int64]matching.Reason{1: matching.ReasonNoLanguageMatch, 2: matching.ReasonNoLanguageMatch}},
		{"language is checked before conflicts", []matching.Job{job(1, "zh", matching.PriorityLow)}, []matching.Candidate{reviewer},
			map[int64]matching.Reason{1: matching.ReasonNoLanguageMatch}},
		{"reviewer of the project", []matching.Job{job(1, "en", matching.PriorityLow)}, []matching.Candidate{reviewer, weak},
			map[int64]matching.Reason{1: matching.ReasonAllConflict}},
		{"previous annotator", []matching.Job{reopened}, []matching.Candidate{previous, reviewer},
			map[int64]matching.Reason{1: matching.ReasonAllConflict}},
		{"previous annotator who is also full", []matching.Job{reopened}, []matching.Candidate{func() matching.Candidate { c := previous; c.Remaining = 0; return c }()},
			map[int64]matching.Reason{1: matching.ReasonAllConflict}},
		{"eligible user without capacity", []matching.Job{job(1, "en", matching.PriorityLow)}, []matching.Candidate{full, reviewer},
			map[int64]matching.Reason{1: matching.ReasonCapacityExhausted}},
		{"capacity went to a better job", []matching.Job{job(1, "en", matching.PriorityLow), job(2, "en", matching.PriorityHigh)}, []matching.Candidate{previous},
			map[int64]matching.Reason{1: matching.ReasonCapacityExhausted}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := solveChecked(t, instance{jobs: tt.jobs, cands: tt.cands})
			require.Equal(t, tt.want, reasons(res))
		})
	}
}

func TestLanguageRules(t *testing.T) {
	j := job(1, "EN", matching.PriorityLow)
	u := user(1, map[string]float64{"En": 3.5}, 0.5)
	res := solveChecked(t, instance{jobs: []matching.Job{j}, cands: []matching.Candidate{u}})
	require.Equal(t, map[int64]int64{1: 1}, pairs(res), "language codes compare case-insensitively; 3.5 meets the default 3.0")

	in := instance{jobs: []matching.Job{j}, cands: []matching.Candidate{u}, opts: matching.Options{MinProficiency: 4}}
	res = solveChecked(t, in)
	require.Equal(t, map[int64]matching.Reason{1: matching.ReasonNoLanguageMatch}, reasons(res))

	u.Proficiency = map[string]float64{"en": 3}
	res = solveChecked(t, instance{jobs: []matching.Job{j}, cands: []matching.Candidate{u}})
	require.Len(t, res.Assignments, 1, "the minimum itself is enough")
}

func TestReviewers(t *testing.T) {
	qc := func(id int64, skill float64) matching.Candidate {
		c := user(id, en(5), skill)
		c.Role = matching.RoleQC
		c.Remaining = 5
		return c
	}
	alsoAnnotates := qc(1, 1.0)
	alsoAnnotates.AnnotatesInProject = true
	ownAnnotator := qc(2, 0.9)
	fine := qc(3, 0.2)
	annotator := user(4, en(5), 1.0)
	annotator.Remaining = 5
	reviewsHere := qc(5, 0.1)
	reviewsHere.ReviewsInProject = true // a reviewer of this project may review

	j1 := job(1, "en", matching.PriorityHigh)
	j1.AnnotatorID = 2
	j2 := job(2, "en", matching.PriorityLow)
	j2.AnnotatorID = 3
	j3 := job(3, "en", matching.PriorityLow)
	j3.AnnotatorID = 3
	j3.PreviousAnnotators = []int64{2}

	in := instance{
		reviewers: true,
		jobs:      []matching.Job{j1, j2, j3},
		cands:     []matching.Candidate{alsoAnnotates, ownAnnotator, fine, annotator, reviewsHere},
	}
	res := solveChecked(t, in)
	require.Equal(t, map[int64]int64{1: 3, 2: 2, 3: 5}, pairs(res))

	// The same candidates, matched as annotators: only user 4 qualifies.
	in.reviewers = false
	res = solveChecked(t, in)
	require.Equal(t, map[int64]int64{1: 4, 2: 4, 3: 4}, pairs(res))

	// A job whose only possible reviewer is its annotator.
	in = instance{reviewers: true, jobs: []matching.Job{j2}, cands: []matching.Candidate{fine, alsoAnnotates}}
	res = solveChecked(t, in)
	require.Equal(t, map[int64]matching.Reason{2: matching.ReasonAllConflict}, reasons(res))
}

func TestBeatsGreedy(t *testing.T) {
	// The best single pair is job 1 with user 1 (0.40). Greedy takes it and
	// job 2, in French, is left with nobody. The optimum gives job 1 to
	// user 2 (0.24) and job 2 to user 1 (0.32): 0.56 against 0.40.
	in := instance{
		jobs: []matching.Job{job(1, "en", matching.PriorityLow), job(2, "fr", matching.PriorityLow)},
		cands: []matching.Candidate{
			user(1, map[string]float64{"en": 5, "fr": 4}, 0),
			user(2, en(3), 0),
		},
	}
	res := solveChecked(t, in)
	require.Equal(t, map[int64]int64{1: 2, 2: 1}, pairs(res))
	require.InDelta(t, 0.56, res.TotalScore, 1e-12)

	greedyUnits, greedyAssigned := in.greedy()
	require.Equal(t, 1, greedyAssigned)
	require.InDelta(t, 0.40, float64(greedyUnits)/1e8, 1e-12)
	require.Greater(t, res.TotalScore, float64(greedyUnits)/1e8)
}

func TestDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	in := generate(rng, genParams{jobs: 300, users: 40, maxCap: 8, langs: []string{"", "en", "de"}, excludeChance: 0.2, quirks: true})
	first := solveChecked(t, in)
	again := solveChecked(t, in)
	require.Equal(t, first, again)

	shuffled := instance{jobs: append([]matching.Job(nil), in.jobs...), cands: append([]matching.Candidate(nil), in.cands...)}
	rng.Shuffle(len(shuffled.jobs), func(i, j int) { shuffled.jobs[i], shuffled.jobs[j] = shuffled.jobs[j], shuffled.jobs[i] })
	rng.Shuffle(len(shuffled.cands), func(i, j int) { shuffled.cands[i], shuffled.cands[j] = shuffled.cands[j], shuffled.cands[i] })
	for i := range shuffled.jobs {
		prev := append([]int64(nil), shuffled.jobs[i].PreviousAnnotators...)
		rng.Shuffle(len(prev), func(a, b int) { prev[a], prev[b] = prev[b], prev[a] })
		shuffled.jobs[i].PreviousAnnotators = prev
	}
	require.Equal(t, first, solveChecked(t, shuffled))
}

func TestInvalidInput(t *testing.T) {
	valid := func() instance {
		return instance{
			jobs:  []matching.Job{job(1, "en", matching.PriorityLow), job(2, "", matching.PriorityHigh)},
			cands: []matching.Candidate{user(1, en(4), 0.5), user(2, en(4), 0.5)},
		}
	}
	_, err := valid().solve()
	require.NoError(t, err)

	tests := []struct {
		name   string
		mutate func(*instance)
	}{
		{"duplicate job", func(in *instance) { in.jobs[1].ID = 1 }},
		{"duplicate candidate", func(in *instance) { in.cands[1].ID = 1 }},
		{"unknown priority", func(in *instance) { in.jobs[0].Priority = "urgent" }},
		{"proficiency above 5", func(in *instance) { in.cands[0].Proficiency["en"] = 5.5 }},
		{"proficiency NaN", func(in *instance) { in.cands[0].Proficiency["en"] = math.NaN() }},
		{"skill above 1", func(in *instance) { in.cands[0].SkillScore = ptr(1.2) }},
		{"negative QA rate", func(in *instance) { in.cands[0].QAApprovalRate = ptr(-0.1) }},
		{"negative load", func(in *instance) { in.cands[0].Load = -1 }},
		{"minimum above 5", func(in *instance) { in.opts.MinProficiency = 6 }},
		{"negative minimum", func(in *instance) { in.opts.MinProficiency = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := valid()
			tt.mutate(&in)
			_, err := in.solve()
			require.ErrorIs(t, err, matching.ErrInvalidInput)
		})
	}
}

func TestEmptyInput(t *testing.T) {
	res, err := matching.Solve(ctx, nil, []matching.Candidate{user(1, en(4), 0.5)}, matching.Options{})
	require.NoError(t, err)
	require.Empty(t, res.Assignments)
	require.Empty(t, res.Unassigned)
	require.Zero(t, res.TotalScore)
}

func TestCancelledContext(t *testing.T) {
	c, cancel := context.WithCancel(ctx)
	cancel()
	_, err := matching.Solve(c, []matching.Job{job(1, "en", matching.PriorityLow)}, []matching.Candidate{user(1, en(4), 0.5)}, matching.Options{})
	require.ErrorIs(t, err, context.Canceled)
}

func TestInputNotModified(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	in := generate(rng, genParams{jobs: 50, users: 10, maxCap: 5, langs: []string{"", "en"}, excludeChance: 0.3, quirks: true})
	jobs := append([]matching.Job(nil), in.jobs...)
	cands := append([]matching.Candidate(nil), in.cands...)
	solveChecked(t, in)
	require.Equal(t, jobs, in.jobs)
	require.Equal(t, cands, in.cands)
}
