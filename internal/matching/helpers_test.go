package matching_test

// Everything in this file is an independent re-statement of the rules and the
// objective from the package documentation, written without looking at the
// solver's internals: the tests judge the solver's output against it.

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/labelq/labelq/internal/matching"
)

type instance struct {
	reviewers bool
	jobs      []matching.Job
	cands     []matching.Candidate
	opts      matching.Options
}

func (in instance) solve() (matching.Result, error) {
	if in.reviewers {
		return matching.SolveReviewers(ctx, in.jobs, in.cands, in.opts)
	}
	return matching.Solve(ctx, in.jobs, in.cands, in.opts)
}

func (in instance) minProf() float64 {
	if in.opts.MinProficiency == 0 {
		return 3
	}
	return in.opts.MinProficiency
}

func weight(p matching.Priority) int64 {
	return map[matching.Priority]int64{"low": 1, "medium": 2, "high": 3}[p]
}

// prof is the candidate's proficiency in lang ("" = best language).
func prof(c *matching.Candidate, lang string) float64 {
	best := 0.0
	for l, p := range c.Proficiency {
		if lang == "" || strings.EqualFold(l, lang) {
			best = math.Max(best, p)
		}
	}
	return best
}

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}

// units is score × 1e8 on the 1e-6 input grid, an exact integer.
func units(j *matching.Job, c *matching.Candidate) int64 {
	q := func(x float64) int64 { return int64(math.Round(x * 1e6)) }
	return weight(j.Priority) * (8*q(prof(c, j.Language)) + 30*q(deref(c.SkillScore)) + 30*q(deref(c.QAApprovalRate)))
}

func score(j *matching.Job, c *matching.Candidate) float64 {
	return float64(weight(j.Priority)) * (0.4*prof(c, j.Language)/5 + 0.3*deref(c.SkillScore) + 0.3*deref(c.QAApprovalRate))
}

func (in instance) available(c *matching.Candidate) bool {
	role := matching.RoleAnnotator
	if in.reviewers {
		role = matching.RoleQC
	}
	return c.Role == role && c.Active && c.HasAvailability
}

func (in instance) langOK(j *matching.Job, c *matching.Candidate) bool {
	return j.Language == "" || prof(c, j.Language) >= in.minProf()
}

func (in instance) conflicts(j *matching.Job, c *matching.Candidate) bool {
	if in.reviewers && (c.AnnotatesInProject || j.AnnotatorID == c.ID) {
		return true
	}
	if !in.reviewers && c.ReviewsInProject {
		return true
	}
	return slices.Contains(j.PreviousAnnotators, c.ID) || slices.Contains(j.CurrentAnnotators, c.ID)
}

// need is how many copies the job asks for: Need, at least one.
func need(j *matching.Job) int { return max(j.Need, 1) }

// eligible ignores capacity.
func (in instance) eligible(j *matching.Job, c *matching.Candidate) bool {
	return in.available(c) && in.langOK(j, c) && !in.conflicts(j, c)
}

// objective is the lexicographic objective of the package documentation as
// a vector to minimise: −score, −assigned copies, Σ due rank, Σ (Load+k),
// Σ id rank, every sum over the assigned copies.
type objective [5]int64

func (x objective) less(y objective) bool { return slices.Compare(x[:], y[:]) < 0 }

func (x objective) add(y objective) objective {
	for i := range x {
		x[i] += y[i]
	}
	return x
}

func (x objective) sub(y objective) objective {
	for i := range x {
		x[i] -= y[i]
	}
	return x
}

// ranks gives the due rank of every job and the id rank of every candidate.
func (in instance) ranks() (due map[int64]int64, idRank map[int64]int64) {
	js := slices.Clone(in.jobs)
	slices.SortFunc(js, func(a, b matching.Job) int {
		switch {
		case a.DueDate != nil && b.DueDate != nil:
			if c := a.DueDate.Compare(*b.DueDate); c != 0 {
				return c
			}
		case a.DueDate != nil:
			return -1
		case b.DueDate != nil:
			return 1
		}
		return cmp.Compare(a.ID, b.ID)
	})
	due = map[int64]int64{}
	for i, j := range js {
		due[j.ID] = int64(i)
	}
	ids := make([]int64, len(in.cands))
	for i, c := range in.cands {
		ids[i] = c.ID
	}
	slices.Sort(ids)
	idRank = map[int64]int64{}
	for i, id := range ids {
		idRank[id] = int64(i)
	}
	return due, idRank
}

func (in instance) evaluate(res matching.Result) objective {
	due, idRank := in.ranks()
	jobs := map[int64]*matching.Job{}
	for i := range in.jobs {
		jobs[in.jobs[i].ID] = &in.jobs[i]
	}
	cands := map[int64]*matching.Candidate{}
	for i := range in.cands {
		cands[in.cands[i].ID] = &in.cands[i]
	}
	var o objective
	count := map[int64]int64{}
	for _, a := range res.Assignments {
		c := cands[a.UserID]
		count[a.UserID]++
		o[0] -= units(jobs[a.JobID], c)
		o[1]--
		o[2] += due[a.JobID]
		o[3] += int64(c.Load) + count[a.UserID]
		o[4] += idRank[a.UserID]
	}
	return o
}

// check verifies every hard rule and the bookkeeping of a result; it returns
// an error so benchmarks can use it too.
func (in instance) check(res matching.Result) error {
	jobs := map[int64]*matching.Job{}
	for i := range in.jobs {
		jobs[in.jobs[i].ID] = &in.jobs[i]
	}
	cands := map[int64]*matching.Candidate{}
	for i := range in.cands {
		cands[in.cands[i].ID] = &in.cands[i]
	}
	seen := map[int64]bool{}
	used := map[int64]int{}
	holders := map[int64][]int64{} // job → users given a copy in this run
	total := 0.0
	for i, a := range res.Assignments {
		if i > 0 {
			prev := res.Assignments[i-1]
			if prev.JobID > a.JobID || (prev.JobID == a.JobID && prev.UserID >= a.UserID) {
				// Strictly by (job, user): which also means nobody twice on one job.
				return errors.New("assignments not strictly ordered by job id, then user id")
			}
		}
		j, c := jobs[a.JobID], cands[a.UserID]
		if j == nil || c == nil {
			return fmt.Errorf("assignment %+v names an unknown job or user", a)
		}
		seen[a.JobID] = true
		used[a.UserID]++
		if slices.Contains(holders[a.JobID], a.UserID) {
			return fmt.Errorf("job %d given twice to user %d", j.ID, c.ID)
		}
		holders[a.JobID] = append(holders[a.JobID], a.UserID)
		switch {
		case len(holders[a.JobID]) > need(j):
			return fmt.Errorf("job %d got %d copies, needs %d", j.ID, len(holders[a.JobID]), need(j))
		case !in.available(c):
			return fmt.Errorf("job %d given to unavailable/inactive/wrong-role user %d", j.ID, c.ID)
		case !in.langOK(j, c):
			return fmt.Errorf("job %d (%q) given to user %d below the language minimum", j.ID, j.Language, c.ID)
		case in.conflicts(j, c):
			return fmt.Errorf("job %d given to conflicting or excluded user %d", j.ID, c.ID)
		case used[a.UserID] > c.Remaining:
			return fmt.Errorf("user %d over capacity %d", c.ID, c.Remaining)
		case math.Abs(a.Score-score(j, c)) > 1e-9:
			return fmt.Errorf("job %d user %d: score %v, want %v", j.ID, c.ID, a.Score, score(j, c))
		}
		total += a.Score
	}
	if math.Abs(total-res.TotalScore) > 1e-6 {
		return fmt.Errorf("total score %v, sum of assignments %v", res.TotalScore, total)
	}
	reported := map[int64]bool{}
	for i, u := range res.Unassigned {
		if i > 0 && res.Unassigned[i-1].JobID >= u.JobID {
			return errors.New("unassigned not strictly ordered by job id")
		}
		j := jobs[u.JobID]
		if j == nil {
			return fmt.Errorf("unassigned job %d unknown", u.JobID)
		}
		if want := need(j) - len(holders[j.ID]); u.Open != want || want <= 0 {
			return fmt.Errorf("job %d: %d copies reported open, %d needed and %d given", j.ID, u.Open, need(j), len(holders[j.ID]))
		}
		seen[u.JobID], reported[u.JobID] = true, true
		if want := in.reason(j, used, holders[j.ID]); u.Reason != want {
			return fmt.Errorf("job %d: reason %q, want %q", j.ID, u.Reason, want)
		}
	}
	for _, j := range in.jobs {
		if len(holders[j.ID]) < need(&j) && !reported[j.ID] {
			return fmt.Errorf("job %d got %d of %d copies and is not reported open", j.ID, len(holders[j.ID]), need(&j))
		}
	}
	if len(seen) != len(in.jobs) {
		return fmt.Errorf("%d jobs reported, %d given", len(seen), len(in.jobs))
	}
	return nil
}

// reason is the expected reason for a job with copies open, after the run
// gave copies to holders, who count as excluded from another one. For
// capacity_exhausted it also demands that every eligible user is full: a
// copy left open next to free capacity would not be optimal (assigning it
// never lowers the score and assigns one more copy).
func (in instance) reason(j *matching.Job, used map[int64]int, holders []int64) matching.Reason {
	var avail, lang, free bool
	for i := range in.cands {
		c := &in.cands[i]
		if !in.available(c) {
			continue
		}
		avail = true
		if !in.langOK(j, c) {
			continue
		}
		lang = true
		if in.conflicts(j, c) || slices.Contains(holders, c.ID) {
			continue
		}
		free = true
		if used[c.ID] < c.Remaining {
			return "eligible user with free capacity left unused"
		}
	}
	switch {
	case !avail:
		return matching.ReasonNoAvailableAnnotator
	case !lang:
		return matching.ReasonNoLanguageMatch
	case !free:
		return matching.ReasonAllConflict
	}
	return matching.ReasonCapacityExhausted
}

// bruteForce enumerates every legal assignment (each job: any set of at most
// need(job) eligible users, each with capacity left, each once) and returns
// the best objective.
func (in instance) bruteForce() objective {
	due, idRank := in.ranks()
	used := make([]int, len(in.cands))
	best := objective{}
	var cur objective
	// rec decides, for job j, whether users u, u+1, … take a copy; taken
	// copies of j so far.
	var rec func(j, u, taken int)
	rec = func(j, u, taken int) {
		if j == len(in.jobs) {
			if cur.less(best) {
				best = cur
			}
			return
		}
		if u == len(in.cands) {
			rec(j+1, 0, 0)
			return
		}
		rec(j, u+1, taken)
		job, c := &in.jobs[j], &in.cands[u]
		if taken == need(job) || used[u] >= c.Remaining || !in.eligible(job, c) {
			return
		}
		used[u]++
		step := objective{-units(job, c), -1, due[job.ID], int64(c.Load + used[u]), idRank[c.ID]}
		cur = cur.add(step)
		rec(j, u+1, taken+1)
		cur = cur.sub(step)
		used[u]--
	}
	rec(0, 0, 0)
	return best
}

// hungarian solves the same problem a second, independent way: the
// classical O(n²·m) Hungarian algorithm on the uncompressed problem, jobs as
// rows and columns for every capacity unit (user u's k-th job costs Load+k,
// so units are used in order) plus one free dummy column per job, which is
// "left open". Costs are objective vectors, which the algorithm handles like
// numbers since it only adds, subtracts and compares.
func (in instance) hungarian() objective {
	due, idRank := in.ranks()
	type slot struct{ user, k int }
	var slots []slot
	for u := range in.cands {
		for k := 1; k <= min(in.cands[u].Remaining, len(in.jobs)); k++ {
			slots = append(slots, slot{u, k})
		}
	}
	n, m := len(in.jobs), len(slots)+len(in.jobs)
	forbidden := objective{1 << 50}
	cost := func(i, j int) objective { // 1-based
		if j > len(slots) {
			return objective{}
		}
		s := slots[j-1]
		job, c := &in.jobs[i-1], &in.cands[s.user]
		if !in.eligible(job, c) {
			return forbidden
		}
		return objective{-units(job, c), -1, due[job.ID], int64(c.Load + s.k), idRank[c.ID]}
	}
	inf := objective{1 << 60}
	u := make([]objective, n+1)
	v := make([]objective, m+1)
	p := make([]int, m+1)
	way := make([]int, m+1)
	for i := 1; i <= n; i++ {
		p[0] = i
		j0 := 0
		minv := make([]objective, m+1)
		used := make([]bool, m+1)
		for j := range minv {
			minv[j] = inf
		}
		for {
			used[j0] = true
			i0, delta, j1 := p[j0], inf, 0
			for j := 1; j <= m; j++ {
				if used[j] {
					continue
				}
				cur := cost(i0, j).sub(u[i0]).sub(v[j])
				if cur.less(minv[j]) {
					minv[j], way[j] = cur, j0
				}
				if minv[j].less(delta) {
					delta, j1 = minv[j], j
				}
			}
			for j := 0; j <= m; j++ {
				if used[j] {
					u[p[j]] = u[p[j]].add(delta)
					v[j] = v[j].sub(delta)
				} else {
					minv[j] = minv[j].sub(delta)
				}
			}
			j0 = j1
			if p[j0] == 0 {
				break
			}
		}
		for j0 != 0 {
			j1 := way[j0]
			p[j0] = p[j1]
			j0 = j1
		}
	}
	var total objective
	for j := 1; j <= m; j++ {
		if p[j] != 0 {
			c := cost(p[j], j)
			if c == forbidden {
				panic("hungarian used a forbidden pair")
			}
			total = total.add(c)
		}
	}
	return total
}

// greedy is the baseline: take pairs by score, best first, when the job
// still needs a copy, the user has capacity and is not excluded from the job
// or already on it. Pairs with the same language, priority and user have the
// same score, so it walks (group, user) pairs instead of sorting every
// job × user pair, which for 20,000 × 2,000 would not fit in memory. Each
// (group, user) pair is walked once and visits each job of the group at most
// once, so nobody gets a job twice. It returns the score units and copies
// assigned.
func (in instance) greedy() (total int64, assigned int) {
	type group struct {
		lang    string
		prio    matching.Priority
		pending []int
	}
	var groups []*group
	byKey := map[string]*group{}
	jobs := slices.Clone(in.jobs)
	slices.SortFunc(jobs, func(a, b matching.Job) int { return cmp.Compare(a.ID, b.ID) })
	for i := range jobs {
		k := strings.ToLower(jobs[i].Language) + "/" + string(jobs[i].Priority)
		g := byKey[k]
		if g == nil {
			g = &group{lang: jobs[i].Language, prio: jobs[i].Priority}
			byKey[k] = g
			groups = append(groups, g)
		}
		g.pending = append(g.pending, i)
	}
	type pair struct {
		g     *group
		u     int
		units int64
	}
	var pairs []pair
	for _, g := range groups {
		probe := &matching.Job{Language: g.lang, Priority: g.prio}
		for u := range in.cands {
			c := &in.cands[u]
			if in.available(c) && in.langOK(probe, c) && !in.conflicts(probe, c) && c.Remaining > 0 {
				pairs = append(pairs, pair{g, u, units(probe, c)})
			}
		}
	}
	slices.SortStableFunc(pairs, func(a, b pair) int { return cmp.Compare(b.units, a.units) })
	left := make([]int, len(in.cands))
	for u := range in.cands {
		left[u] = in.cands[u].Remaining
	}
	open := make([]int, len(jobs))
	for j := range jobs {
		open[j] = need(&jobs[j])
	}
	for _, p := range pairs {
		c := &in.cands[p.u]
		kept := p.g.pending[:0]
		i := 0
		for ; i < len(p.g.pending) && left[p.u] > 0; i++ {
			j := p.g.pending[i]
			if slices.Contains(jobs[j].PreviousAnnotators, c.ID) || slices.Contains(jobs[j].CurrentAnnotators, c.ID) ||
				(in.reviewers && jobs[j].AnnotatorID == c.ID) {
				kept = append(kept, j)
				continue
			}
			left[p.u]--
			total += p.units
			assigned++
			if open[j]--; open[j] > 0 {
				kept = append(kept, j)
			}
		}
		p.g.pending = append(kept, p.g.pending[i:]...)
	}
	return total, assigned
}

type genParams struct {
	jobs, users   int
	maxCap        int
	langs         []string
	excludeChance float64 // chance that a job has previous annotators
	reviewers     bool
	quirks        bool // inactive, unavailable, wrong-role, conflicting users; odd capacities
	// overlap > 0 gives every job an overlap of 1..overlap, some of it
	// already held by current annotators, and Need the rest (at least 1).
	// It draws from the generator only after everything else, so instances
	// without it are the same as before overlap existed.
	overlap int
}

func ptr(x float64) *float64 { return &x }

// generate makes a random instance. Values sit on coarse grids so that ties
// (equal scores, equal due dates, equal loads) are common.
func generate(rng *rand.Rand, p genParams) instance {
	in := instance{reviewers: p.reviewers}
	ids := rng.Perm(p.users * 3)
	role := matching.RoleAnnotator
	if p.reviewers {
		role = matching.RoleQC
	}
	for u := range p.users {
		c := matching.Candidate{
			ID:              int64(ids[u] + 1),
			Role:            role,
			Active:          true,
			HasAvailability: true,
			Proficiency:     map[string]float64{},
			Remaining:       1 + rng.IntN(p.maxCap),
			Load:            rng.IntN(4),
		}
		for _, l := range p.langs {
			if l != "" && rng.IntN(3) > 0 {
				c.Proficiency[l] = float64(rng.IntN(11)) / 2
			}
		}
		if rng.IntN(5) > 0 {
			c.SkillScore = ptr(float64(rng.IntN(11)) / 10)
		}
		if rng.IntN(5) > 0 {
			c.QAApprovalRate = ptr(float64(rng.IntN(1001)) / 1000)
		}
		if p.quirks {
			c.Active = rng.IntN(12) > 0
			c.HasAvailability = rng.IntN(12) > 0
			c.AnnotatesInProject = rng.IntN(10) == 0
			c.ReviewsInProject = rng.IntN(10) == 0
			if rng.IntN(15) == 0 {
				c.Role = matching.RoleAnnotator
				if !p.reviewers {
					c.Role = matching.RoleQC
				}
			}
			if rng.IntN(10) == 0 {
				c.Remaining = rng.IntN(2) - 1 // 0 or -1: full or over-assigned
			}
		}
		in.cands = append(in.cands, c)
	}
	base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	jids := rng.Perm(p.jobs * 3)
	prios := []matching.Priority{matching.PriorityLow, matching.PriorityMedium, matching.PriorityHigh}
	for j := range p.jobs {
		job := matching.Job{
			ID:       int64(jids[j] + 1),
			Language: p.langs[rng.IntN(len(p.langs))],
			Priority: prios[rng.IntN(3)],
		}
		if rng.IntN(4) > 0 {
			d := base.Add(time.Duration(rng.IntN(max(p.jobs/2, 3))) * 24 * time.Hour)
			job.DueDate = &d
		}
		if rng.Float64() < p.excludeChance {
			for range 1 + rng.IntN(2) {
				job.PreviousAnnotators = append(job.PreviousAnnotators, in.cands[rng.IntN(p.users)].ID)
			}
		}
		if p.reviewers && rng.IntN(2) == 0 {
			job.AnnotatorID = in.cands[rng.IntN(p.users)].ID
		}
		in.jobs = append(in.jobs, job)
	}
	if p.overlap > 0 {
		for i := range in.jobs {
			j := &in.jobs[i]
			overlap := 1 + rng.IntN(p.overlap)
			for range rng.IntN(overlap) { // at most overlap−1 copies already held
				if id := in.cands[rng.IntN(p.users)].ID; !slices.Contains(j.CurrentAnnotators, id) && rng.IntN(2) == 0 {
					j.CurrentAnnotators = append(j.CurrentAnnotators, id)
				}
			}
			j.Need = overlap - len(j.CurrentAnnotators)
			if j.Need == 1 && rng.IntN(2) == 0 {
				j.Need = 0 // the same as 1
			}
		}
	}
	return in
}
