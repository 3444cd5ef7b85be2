package matching

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
)

// Solve assigns open annotation jobs to annotators: candidates with
// RoleAnnotator, where ReviewsInProject is a conflict and a job's
// PreviousAnnotators and CurrentAnnotators are excluded from it. A job gets
// up to Need different annotators (overlap). See the package documentation
// for the rules, the objective and the tie-breaks.
//
// The input slices are not modified and their order does not matter. An
// error wrapping ErrInvalidInput means the input is malformed; the only other
// error is ctx's.
func Solve(ctx context.Context, jobs []Job, candidates []Candidate, opts Options) (Result, error) {
	return solve(ctx, modeAnnotators, jobs, candidates, opts, false)
}

// SolveReviewers assigns reviewers with the same solver: candidates with
// RoleQC, where AnnotatesInProject is a conflict, and each job's AnnotatorID
// (and its PreviousAnnotators and CurrentAnnotators) are excluded from it.
// Jobs are the ones that need a reviewer; Remaining and Load count the
// candidates' review assignments. Overlap is for annotators only: every job
// gets at most one reviewer, and a Need above 1 is invalid input.
func SolveReviewers(ctx context.Context, jobs []Job, candidates []Candidate, opts Options) (Result, error) {
	return solve(ctx, modeReviewers, jobs, candidates, opts, false)
}

type mode int

const (
	modeAnnotators mode = iota
	modeReviewers
)

// maxMergedRounds bounds the rounds that merge jobs with exclusions into
// their class; the round after it splits them all, which is exact.
const maxMergedRounds = 3

// cand is a candidate reduced to what the solver needs.
type cand struct {
	id       int64
	avail    bool // right role, active, with availability
	conflict bool // works on the other side of the project
	capacity int32
	load     int64
	skillQA  int64            // 30·S + 30·A
	prof     map[string]int64 // quantised, lower-case keys
	best     int64            // best quantised proficiency
}

// inNetwork says whether the candidate can take any job at all in this run.
func (c *cand) inNetwork() bool { return c.avail && !c.conflict && c.capacity > 0 }

// class is a set of jobs with the same language and priority, which have the
// same score for every user, so the network needs one node for all of them.
// A split class also shares its exclusions and has no arcs to the excluded
// users; a merged one ignores its jobs' exclusions (see solveRound). An
// isolated job is split and alone in its class. A multi class has a job that
// needs more than one copy (see placeCopies).
type class struct {
	lang   int32
	weight int64
	split  bool
	multi  bool
	excl   []int32 // split classes: sorted candidate indices excluded from all its jobs
	jobs   []int32 // job indices, earliest due first
	node   int32   // network node, -1 when nobody can take these jobs
	users  []int32 // candidate indices the class has arcs to, in arc order
	arc0   int32   // first class → user arc
}

// solve is Solve and SolveReviewers. isolateAll gives every job a class of
// its own from the first round: the uncompressed network, exact without any
// relaxation, which tests compare the default against.
func solve(ctx context.Context, m mode, jobsIn []Job, candsIn []Candidate, opts Options, isolateAll bool) (Result, error) {
	pmin, err := opts.minUnits()
	if err != nil {
		return Result{}, err
	}
	if len(jobsIn) > MaxJobs {
		return Result{}, fmt.Errorf("%w: %d jobs exceed the limit of %d per run", ErrInvalidInput, len(jobsIn), MaxJobs)
	}
	if len(candsIn) > MaxCandidates {
		return Result{}, fmt.Errorf("%w: %d candidates exceed the limit of %d per run", ErrInvalidInput, len(candsIn), MaxCandidates)
	}

	// Canonical order first: everything below depends only on the sorted
	// input, which makes the result independent of the callers' order.
	jobs := slices.Clone(jobsIn)
	slices.SortFunc(jobs, func(x, y Job) int { return cmp.Compare(x.ID, y.ID) })
	need := make([]int32, len(jobs))
	var copies int64
	for i := range jobs {
		if i > 0 && jobs[i].ID == jobs[i-1].ID {
			return Result{}, fmt.Errorf("%w: job %d appears twice", ErrInvalidInput, jobs[i].ID)
		}
		if jobs[i].Priority.Weight() == 0 {
			return Result{}, fmt.Errorf("%w: job %d: unknown priority %q", ErrInvalidInput, jobs[i].ID, jobs[i].Priority)
		}
		switch n := jobs[i].Need; {
		case n < 0:
			return Result{}, fmt.Errorf("%w: job %d: negative need %d", ErrInvalidInput, jobs[i].ID, n)
		case n > 1 && m == modeReviewers:
			return Result{}, fmt.Errorf("%w: job %d: need %d, but a job gets one reviewer", ErrInvalidInput, jobs[i].ID, n)
		case n > MaxCopies:
			return Result{}, fmt.Errorf("%w: job %d: need %d exceeds the limit of %d copies per run", ErrInvalidInput, jobs[i].ID, n, MaxCopies)
		}
		need[i] = int32(max(jobs[i].Need, 1))
		copies += int64(need[i])
	}
	if copies > MaxCopies {
		return Result{}, fmt.Errorf("%w: %d copies exceed the limit of %d per run", ErrInvalidInput, copies, MaxCopies)
	}
	sortedCands := slices.Clone(candsIn)
	slices.SortFunc(sortedCands, func(x, y Candidate) int { return cmp.Compare(x.ID, y.ID) })
	cands := make([]cand, len(sortedCands))
	candIndex := make(map[int64]int32, len(cands))
	for i := range sortedCands {
		if i > 0 && sortedCands[i].ID == sortedCands[i-1].ID {
			return Result{}, fmt.Errorf("%w: candidate %d appears twice", ErrInvalidInput, sortedCands[i].ID)
		}
		c, err := prepareCandidate(m, &sortedCands[i], len(jobs))
		if err != nil {
			return Result{}, err
		}
		cands[i] = c
		candIndex[c.id] = int32(i)
	}

	p := &problem{mode: m, jobs: jobs, cands: cands, candIndex: candIndex, need: need, copies: copies}
	p.prepare(pmin)

	// Jobs with exclusions, and jobs that need several copies, first share
	// their language/priority class; see solveRound for why that is exact
	// and what happens when it fails.
	split := make([]bool, len(jobs))
	isolate := make([]bool, len(jobs))
	if isolateAll {
		for j := range isolate {
			isolate[j] = true
		}
	}
	var stats Stats
	for {
		stats.Rounds++
		pl, failed, err := p.solveRound(ctx, split, isolate, &stats)
		if err != nil {
			return Result{}, err
		}
		if len(failed.split) == 0 && len(failed.isolate) == 0 && len(failed.classes) == 0 {
			return p.result(pl, stats), nil
		}
		for _, j := range failed.split {
			split[j] = true
		}
		for _, j := range failed.isolate {
			isolate[j] = true
		}
		// A class whose copies could not be told apart gets all its jobs of
		// several copies isolated when that at most doubles the network, and
		// from maxMergedRounds on in any case (see solveRound).
		budget := stats.Arcs
		for _, fc := range failed.classes {
			if stats.Rounds >= maxMergedRounds || fc.arcs <= budget {
				budget -= fc.arcs
				for _, j := range fc.multi {
					isolate[j] = true
				}
			}
		}
		if stats.Rounds == maxMergedRounds {
			// Rounds that keep failing mean exclusions bind everywhere;
			// solve the exact problem once instead of splitting job by job.
			for j := range split {
				split[j] = len(p.jobExcl[j]) > 0
			}
		}
	}
}

// problem is the validated input in canonical order plus what every round
// needs.
type problem struct {
	mode      mode
	jobs      []Job  // sorted by id
	cands     []cand // sorted by id, so an index is also the id rank
	candIndex map[int64]int32
	jobLang   []int32
	order     []int32 // job indices by due rank
	dueRank   []int64
	need      []int32 // copies each job asks for, at least 1
	copies    int64   // sum of need
	// jobExcl lists, per job, the candidates excluded from it who could
	// otherwise take it (sorted indices). Excluding anyone else changes
	// nothing, so it is ignored.
	jobExcl [][]int32
	tab     langTable
}

func (p *problem) prepare(pmin int64) {
	// Languages: index 0 is "no language" (score on the best language, no
	// minimum); the others are the jobs' languages.
	langIndex := map[string]int32{"": 0}
	langs := []string{""}
	p.jobLang = make([]int32, len(p.jobs))
	for i := range p.jobs {
		l := languageKey(p.jobs[i].Language)
		li, ok := langIndex[l]
		if !ok {
			li = int32(len(langs))
			langIndex[l] = li
			langs = append(langs, l)
		}
		p.jobLang[i] = li
	}
	p.tab = newLangTable(langs, p.cands, pmin)

	// Due ranks: dated jobs before undated ones, earlier first, then lower id.
	p.order = make([]int32, len(p.jobs))
	for i := range p.order {
		p.order[i] = int32(i)
	}
	slices.SortStableFunc(p.order, func(x, y int32) int {
		dx, dy := p.jobs[x].DueDate, p.jobs[y].DueDate
		switch {
		case dx != nil && dy != nil:
			return dx.Compare(*dy) // stable: equal dates keep id order
		case dx != nil:
			return -1
		case dy != nil:
			return 1
		}
		return 0
	})
	p.dueRank = make([]int64, len(p.jobs))
	for r, j := range p.order {
		p.dueRank[j] = int64(r)
	}

	p.jobExcl = make([][]int32, len(p.jobs))
	for j := range p.jobs {
		job := &p.jobs[j]
		var excl []int32
		add := func(id int64) {
			u, ok := p.candIndex[id]
			if ok && p.cands[u].inNetwork() && p.tab.ok(p.jobLang[j], int(u)) {
				excl = append(excl, u)
			}
		}
		for _, id := range job.PreviousAnnotators {
			add(id)
		}
		for _, id := range job.CurrentAnnotators {
			add(id)
		}
		if p.mode == modeReviewers && job.AnnotatorID != 0 {
			add(job.AnnotatorID)
		}
		slices.Sort(excl)
		p.jobExcl[j] = slices.Compact(excl)
	}
}

// solveRound solves the flow problem once.
//
// A job whose exclusions matter is either split (a class of its own, or with
// jobs that have the same exclusions, whose arcs skip the excluded users) or
// merged into the class of its language and priority as if it had no
// exclusions. Merging is a relaxation: it only allows more, and it prices
// every assignment exactly as the true problem does, so the relaxed optimum
// is lexicographically at least as good as the true one. If the relaxed flow
// can be expanded into concrete pairs that respect every exclusion, it is
// feasible for the true problem with the same objective, hence optimal.
// Usually it can, because a class sends jobs to many users and an exclusion
// names one or two. The merged jobs that could not be placed are returned in
// failed.split; the caller splits them and solves again, and after
// maxMergedRounds it splits every job with exclusions, which is exact. So
// without overlap there are at most maxMergedRounds+1 rounds, typically one.
//
// Jobs that need several copies (overlap) are merged the same way: a class
// that holds one is a relaxation too (see placeCopies), and the jobs its
// flow cannot be expanded for are returned in failed.isolate, to get a class
// of their own, which is exact: the class's one job then has an arc of
// capacity 1 to each user, and a class of one job cannot fail. The failing
// class itself is returned in failed.classes; the caller isolates all its
// jobs of several copies, when that is cheap (such a class usually has few
// people, which is why it failed) and from maxMergedRounds on always. So
// after maxMergedRounds, when no job with exclusions is merged any more,
// every round that fails removes the last jobs of several copies from at
// least one class for good (classes only lose jobs), and a class without
// them never fails: the rounds end, at the latest when all such jobs are
// isolated, which is the exact uncompressed problem. Classes that never
// failed stay compressed, which the exact problem, with an arc per job and
// person, would not afford for a large backlog.
//
// Merging is what keeps the network small: a split job costs an arc to
// nearly every user.
func (p *problem) solveRound(ctx context.Context, split, isolate []bool, stats *Stats) (pl plan, failed retry, err error) {
	classes := p.buildClasses(split, isolate)

	// Users reachable from some class, and their useful capacity: never more
	// capacity units than jobs they could take (a user takes at most one
	// copy of each job).
	cands, tab := p.cands, p.tab
	reach := make([]int64, len(cands))
	for ci := range classes {
		cl := &classes[ci]
		for u := range cands {
			if cands[u].inNetwork() && tab.ok(cl.lang, u) && !containsSorted(cl.excl, int32(u)) {
				cl.users = append(cl.users, int32(u))
				reach[u] += int64(len(cl.jobs))
			}
		}
	}

	const source, sink = 0, 1
	nodes := int32(2)
	for ci := range classes {
		classes[ci].node = -1
		if len(classes[ci].users) > 0 {
			classes[ci].node = nodes
			nodes++
		}
	}
	userNode := make([]int32, len(cands))
	userCap := make([]int32, len(cands))
	for u := range cands {
		userNode[u] = -1
		if reach[u] > 0 {
			userNode[u] = nodes
			nodes++
			userCap[u] = int32(min(int64(cands[u].capacity), reach[u]))
		}
	}

	arcHint := len(p.jobs) + 1
	for ci := range classes {
		arcHint += len(classes[ci].users)
	}
	for u := range cands {
		arcHint += int(userCap[u])
	}
	nw := newNetwork(int(nodes), arcHint+int(nodes))

	n := int64(len(p.jobs))
	bigB := p.copies*n + 1 // see cost.go: one more assigned copy outweighs any due-rank sum
	jobArc := make([]int32, len(p.jobs))
	for i := range jobArc {
		jobArc[i] = -1
	}
	for ci := range classes {
		cl := &classes[ci]
		if cl.node < 0 {
			continue
		}
		for _, j := range cl.jobs {
			capacity := int32(1)
			if p.need[j] > 1 {
				// No more copies than different people who may take the
				// job: a bound of the true problem, so the network stays a
				// relaxation, and a tighter one.
				people := len(cl.users)
				if !cl.split {
					people -= len(p.jobExcl[j]) // all of them are among cl.users
				}
				if capacity = min(p.need[j], int32(people)); capacity <= 0 {
					continue
				}
			}
			jobArc[j] = nw.addArc(source, cl.node, capacity, p.dueRank[j]-bigB)
		}
	}
	nw.jobEnd = int32(len(nw.src))
	for ci := range classes {
		cl := &classes[ci]
		if cl.node < 0 {
			continue
		}
		cl.arc0 = int32(len(nw.src))
		for _, u := range cl.users {
			capacity := min(int32(len(cl.jobs)), userCap[u])
			nw.addArc(cl.node, userNode[u], capacity, -cl.weight*tab.quality(cl.lang, int(u)))
		}
	}
	nw.pairEnd = int32(len(nw.src))
	for u := range cands {
		if userNode[u] < 0 {
			continue
		}
		nw.nodeD[userNode[u]] = int64(u) // candidates are sorted by id: index = id rank
		for k := int64(1); k <= int64(userCap[u]); k++ {
			nw.addArc(userNode[u], sink, 1, cands[u].load+k)
		}
	}
	nw.slotEnd = int32(len(nw.src))
	nw.addArc(sink, source, capInf, 0)

	err = nw.run(ctx)
	stats.Classes = len(classes)
	stats.Nodes = int(nodes)
	stats.Arcs = int(nw.searchEnd)
	stats.Pivots += nw.pivots
	if err != nil {
		return plan{}, retry{}, fmt.Errorf("matching: %w", err)
	}
	pl, failed = p.expand(nw, classes, jobArc)
	return pl, failed, nil
}

// plan is a round's assignment: job j's users (candidate indices) are
// who[off[j] : off[j]+got[j]], room for need[j] of them.
type plan struct {
	off, got, who []int32
}

func (p *problem) newPlan() plan {
	pl := plan{off: make([]int32, len(p.jobs)), got: make([]int32, len(p.jobs)), who: make([]int32, p.copies)}
	off := int32(0)
	for j := range p.jobs {
		pl.off[j] = off
		off += p.need[j]
	}
	return pl
}

func (pl *plan) add(j, u int32) {
	pl.who[pl.off[j]+pl.got[j]] = u
	pl.got[j]++
}

func (pl *plan) users(j int) []int32 { return pl.who[pl.off[j] : pl.off[j]+pl.got[j]] }

// retry lists the jobs a round could not place: split ones get a class with
// their exclusions, isolated ones a class of their own. classes are the
// classes whose copies could not be placed.
type retry struct {
	split, isolate []int32
	classes        []failedClass
}

// failedClass is a class placeCopies failed for: its jobs that need several
// copies, and the arcs isolating them would cost.
type failedClass struct {
	multi []int32
	arcs  int
}

func (p *problem) result(pl plan, stats Stats) Result {
	res := Result{Stats: stats}
	var total int64
	for j := range p.jobs {
		users := pl.users(j)
		slices.Sort(users) // candidate index = id rank
		for _, u := range users {
			units := p.jobs[j].Priority.Weight() * p.tab.quality(p.jobLang[j], int(u))
			total += units
			res.Assignments = append(res.Assignments, Assignment{
				JobID:  p.jobs[j].ID,
				UserID: p.cands[u].id,
				Score:  float64(units) / unitsPerScore,
			})
		}
		if open := p.need[j] - int32(len(users)); open > 0 {
			res.Unassigned = append(res.Unassigned, Unassigned{JobID: p.jobs[j].ID, Reason: p.reason(j, users), Open: int(open)})
		}
	}
	res.TotalScore = float64(total) / unitsPerScore
	return res
}

func prepareCandidate(m mode, c *Candidate, nJobs int) (cand, error) {
	wantRole, conflict := RoleAnnotator, c.ReviewsInProject
	if m == modeReviewers {
		wantRole, conflict = RoleQC, c.AnnotatesInProject
	}
	if c.Load < 0 || c.Load > MaxLoad {
		return cand{}, fmt.Errorf("%w: candidate %d: load %d is outside [0, %d]", ErrInvalidInput, c.ID, c.Load, MaxLoad)
	}
	skillQA := int64(0)
	for _, v := range []struct {
		name string
		p    *float64
	}{{"skill score", c.SkillScore}, {"QA approval rate", c.QAApprovalRate}} {
		if v.p == nil {
			continue
		}
		if !(*v.p >= 0 && *v.p <= 1) {
			return cand{}, fmt.Errorf("%w: candidate %d: %s %v is outside [0, 1]", ErrInvalidInput, c.ID, v.name, *v.p)
		}
		skillQA += 30 * quantize(*v.p)
	}
	prof, best, err := quantizeProficiency(c)
	if err != nil {
		return cand{}, err
	}
	return cand{
		id:       c.ID,
		avail:    c.Role == wantRole && c.Active && c.HasAvailability,
		conflict: conflict,
		capacity: int32(min(max(c.Remaining, 0), nJobs)),
		load:     int64(c.Load),
		skillQA:  skillQA,
		prof:     prof,
		best:     best,
	}, nil
}

// langTable holds, per job language and candidate, whether the candidate
// meets the minimum and their quality (score of a weight-1 job) in units.
type langTable struct {
	nCands int
	okv    []bool
	qual   []int64
}

func newLangTable(langs []string, cands []cand, pmin int64) langTable {
	t := langTable{
		nCands: len(cands),
		okv:    make([]bool, len(langs)*len(cands)),
		qual:   make([]int64, len(langs)*len(cands)),
	}
	for li, l := range langs {
		for u := range cands {
			c := &cands[u]
			p, ok := c.best, true
			if l != "" {
				p = c.prof[l]
				ok = meetsMinimum(p, pmin)
			}
			t.okv[li*len(cands)+u] = ok
			t.qual[li*len(cands)+u] = quality(p, c.skillQA)
		}
	}
	return t
}

func (t langTable) ok(lang int32, u int) bool       { return t.okv[int(lang)*t.nCands+u] }
func (t langTable) quality(lang int32, u int) int64 { return t.qual[int(lang)*t.nCands+u] }

// buildClasses groups the jobs into classes, visiting them in due order so
// every class lists its jobs earliest first.
func (p *problem) buildClasses(split, isolate []bool) []class {
	var classes []class
	byKey := make(map[string]int32)
	var key []byte
	for _, j := range p.order {
		job := &p.jobs[j]
		key = strconv.AppendInt(key[:0], int64(p.jobLang[j]), 10)
		key = append(key, '/')
		key = append(key, job.Priority...)
		var excl []int32
		switch {
		case isolate[j]:
			excl = p.jobExcl[j]
			key = append(key, '#')
			key = strconv.AppendInt(key, int64(j), 10)
		case split[j]:
			excl = p.jobExcl[j]
			key = append(key, '/')
			for _, u := range excl {
				key = strconv.AppendInt(key, int64(u), 10)
				key = append(key, ',')
			}
		}
		ci, ok := byKey[string(key)]
		if !ok {
			ci = int32(len(classes))
			byKey[string(key)] = ci
			classes = append(classes, class{
				lang:   p.jobLang[j],
				weight: job.Priority.Weight(),
				split:  split[j] || isolate[j],
				excl:   excl,
			})
		}
		cl := &classes[ci]
		cl.jobs = append(cl.jobs, j)
		cl.multi = cl.multi || p.need[j] > 1
	}
	return classes
}

func containsSorted(s []int32, v int32) bool {
	_, found := slices.BinarySearch(s, v)
	return found
}

// expand turns the optimal flow into concrete pairs. Jobs of one class are
// interchangeable for every level of the objective, so the flow only says
// which of them are assigned (the earliest due: their source arcs are the
// cheapest) and how many go to each user. Merged jobs with exclusions are
// placed first, by augmenting paths (bipartite matching with the flow as
// capacities); those that cannot be placed are returned in failed.split.
// The rest then go out in due order, the earliest to the best-scoring user,
// ties to the less loaded, then the lower id. Classes with a job that needs
// several copies are expanded by placeCopies instead.
func (p *problem) expand(nw *network, classes []class, jobArc []int32) (pl plan, failed retry) {
	pl = p.newPlan()
	var takes []take
	var excluded []int32
	for ci := range classes {
		cl := &classes[ci]
		if cl.node < 0 {
			continue
		}
		takes = takes[:0]
		for i, u := range cl.users {
			if f := nw.flow[cl.arc0+int32(i)]; f > 0 {
				takes = append(takes, take{user: u, left: f})
			}
		}
		slices.SortFunc(takes, func(x, y take) int {
			if c := cmp.Compare(p.tab.quality(cl.lang, int(y.user)), p.tab.quality(cl.lang, int(x.user))); c != 0 {
				return c
			}
			if c := cmp.Compare(p.cands[x.user].load, p.cands[y.user].load); c != 0 {
				return c
			}
			return cmp.Compare(x.user, y.user)
		})
		if cl.multi {
			short := p.placeCopies(nw, cl, takes, jobArc, &pl)
			if len(short) > 0 {
				failed.isolate = append(failed.isolate, short...)
				fc := failedClass{}
				for _, j := range cl.jobs {
					if p.need[j] > 1 {
						fc.multi = append(fc.multi, j)
					}
				}
				fc.arcs = len(fc.multi) * len(cl.users)
				failed.classes = append(failed.classes, fc)
			}
			continue
		}
		excluded = excluded[:0]
		if !cl.split { // the merged jobs' exclusions are not in the arcs
			for _, j := range cl.jobs {
				if nw.flow[jobArc[j]] > 0 && len(p.jobExcl[j]) > 0 {
					excluded = append(excluded, j)
				}
			}
		}
		if len(excluded) > 0 {
			failed.split = append(failed.split, p.placeExcluded(takes, excluded, &pl)...)
		}
		t := 0
		for _, j := range cl.jobs {
			if nw.flow[jobArc[j]] == 0 || pl.got[j] > 0 || (!cl.split && len(p.jobExcl[j]) > 0) {
				continue
			}
			for takes[t].left == 0 {
				t++
			}
			pl.add(j, takes[t].user)
			takes[t].left--
		}
	}
	return pl, failed
}

// take is how many more jobs of the class a user receives.
type take struct {
	user int32
	left int32
	held []int32 // excluded-from-someone jobs placed here
}

// placeExcluded matches jobs with exclusions to users the flow sends the
// class to (Kuhn's augmenting paths, a user holding up to its flow), and
// returns the jobs it could not place.
func (p *problem) placeExcluded(takes []take, jobs []int32, pl *plan) (failed []int32) {
	visited := make([]bool, len(takes))
	var try func(j int32) bool
	try = func(j int32) bool {
		for t := range takes {
			if visited[t] || containsSorted(p.jobExcl[j], takes[t].user) {
				continue
			}
			visited[t] = true
			if takes[t].left > 0 {
				takes[t].left--
				takes[t].held = append(takes[t].held, j)
				return true
			}
			for i, k := range takes[t].held {
				if try(k) {
					takes[t].held[i] = j
					return true
				}
			}
		}
		return false
	}
	for _, j := range jobs {
		clear(visited)
		if !try(j) {
			failed = append(failed, j)
		}
	}
	if len(failed) > 0 {
		return failed
	}
	for t := range takes {
		for _, j := range takes[t].held {
			pl.add(j, takes[t].user)
		}
		takes[t].held = nil
	}
	return nil
}

// placeCopies expands the flow of a class in which some job needs several
// copies. The flow gives each job j a number of copies x_j (its source arc)
// and each user u a number of the class's jobs f_u (its class arc), and
// asks for a 0/1 matrix, jobs by users, with these row and column sums and
// no 1 where a merged job excludes the user: each copy a different person.
//
// The class node is a relaxation of the true problem: every true assignment
// gives a flow with the same cost vector (x_j ≤ the job's copies and the
// people who may take it, f_u ≤ the class's jobs because nobody takes one
// job twice, and the same scores, due ranks and capacity slots), but not
// every flow is a true assignment. One user with f_u = 2 and x = (2, 0) is
// not: the user would annotate the first job twice. So, as with merged
// exclusions, the flow is optimal for the true problem exactly when such a
// matrix exists; then every one of them has the same cost vector, since the
// levels read only x and f.
//
// The matrix is built as Havel–Hakimi builds a bipartite graph with given
// degrees: job by job, each takes the users with the most jobs left to
// receive (ties to the order of takes: better score, less load, lower id).
// Without exclusions this succeeds whenever any matrix exists (Gale–Ryser),
// because giving one row the largest columns never makes a realisable
// remainder unrealisable. Jobs with exclusions go first; a copy that finds
// no user then is placed by an augmenting path (a max-flow step on the
// bipartite graph, moving other jobs' copies between users), which finds
// one exactly when a matrix exists. The jobs that still miss copies are
// returned, for a class of their own in the next round, and nothing is
// placed for the class.
func (p *problem) placeCopies(nw *network, cl *class, takes []take, jobArc []int32, pl *plan) (failed []int32) {
	var jobs []int32
	for _, j := range cl.jobs {
		if jobArc[j] >= 0 && nw.flow[jobArc[j]] > 0 {
			jobs = append(jobs, j)
		}
	}
	merged := !cl.split
	constrained := func(j int32) bool { return merged && len(p.jobExcl[j]) > 0 }
	excluded := func(j int32, t int32) bool { return merged && containsSorted(p.jobExcl[j], takes[t].user) }
	slices.SortStableFunc(jobs, func(x, y int32) int {
		if cx, cy := constrained(x), constrained(y); cx != cy {
			if cx {
				return -1
			}
			return 1
		}
		return cmp.Compare(nw.flow[jobArc[y]], nw.flow[jobArc[x]])
	})

	left := make([]int32, len(takes))
	h := takeHeap{left: left}
	for t := range takes {
		left[t] = takes[t].left
		h.items = append(h.items, int32(t))
	}
	h.init()
	// holders[t] lists positions in jobs; copies[i] the takes job i holds.
	holders := make([][]int32, len(takes))
	copies := make([][]int32, len(jobs))
	give := func(i, t int32) {
		holders[t] = append(holders[t], i)
		copies[i] = append(copies[i], t)
	}
	var popped []int32
	var short []int32
	missing := make([]int32, len(jobs))
	for i, j := range jobs {
		want := nw.flow[jobArc[j]]
		popped = popped[:0]
		for want > 0 && len(h.items) > 0 {
			t := h.pop()
			popped = append(popped, t)
			if excluded(j, t) {
				continue
			}
			left[t]--
			give(int32(i), t)
			want--
		}
		for _, t := range popped {
			if left[t] > 0 {
				h.push(t)
			}
		}
		if want > 0 {
			missing[i] = want
			short = append(short, int32(i))
		}
	}

	visited := make([]bool, len(takes))
	var try func(i int32) bool
	try = func(i int32) bool {
		j := jobs[i]
		for t := range int32(len(takes)) {
			if visited[t] || excluded(j, t) || slices.Contains(copies[i], t) {
				continue
			}
			visited[t] = true
			if left[t] > 0 {
				left[t]--
				give(i, t)
				return true
			}
			for hi, k := range holders[t] {
				if try(k) { // k got another user; it gives t up to i
					holders[t][hi] = i
					copies[k] = slices.DeleteFunc(copies[k], func(x int32) bool { return x == t })
					copies[i] = append(copies[i], t)
					return true
				}
			}
		}
		return false
	}
	for _, i := range short {
		for ; missing[i] > 0; missing[i]-- {
			clear(visited)
			if !try(i) {
				failed = append(failed, jobs[i])
				break
			}
		}
	}
	if len(failed) > 0 {
		return failed
	}
	for t := range takes {
		for _, i := range holders[t] {
			pl.add(jobs[i], takes[t].user)
		}
	}
	return nil
}

// takeHeap pops the take with the most jobs left to receive, ties to the
// lower index.
type takeHeap struct {
	left  []int32
	items []int32
}

func (h *takeHeap) less(a, b int32) bool {
	if h.left[a] != h.left[b] {
		return h.left[a] > h.left[b]
	}
	return a < b
}

func (h *takeHeap) init() {
	for i := len(h.items)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h *takeHeap) push(t int32) {
	h.items = append(h.items, t)
	for i := len(h.items) - 1; i > 0; {
		parent := (i - 1) / 2
		if !h.less(h.items[i], h.items[parent]) {
			break
		}
		h.items[i], h.items[parent] = h.items[parent], h.items[i]
		i = parent
	}
}

func (h *takeHeap) pop() int32 {
	top := h.items[0]
	last := len(h.items) - 1
	h.items[0] = h.items[last]
	h.items = h.items[:last]
	h.down(0)
	return top
}

func (h *takeHeap) down(i int) {
	for {
		c := 2*i + 1
		if c >= len(h.items) {
			return
		}
		if c+1 < len(h.items) && h.less(h.items[c+1], h.items[c]) {
			c++
		}
		if !h.less(h.items[c], h.items[i]) {
			return
		}
		h.items[i], h.items[c] = h.items[c], h.items[i]
		i = c
	}
}

// reason explains why job j has copies open after it got users (candidate
// indices). It only runs for such jobs, so it may be linear in the
// candidates. Exclusions are taken from the job itself, not p.jobExcl: a
// previous annotator who is also out of capacity is a conflict, not a
// capacity problem. The users the job got in this run count as excluded
// too: they cannot take another copy.
func (p *problem) reason(j int, users []int32) Reason {
	job := &p.jobs[j]
	excluded := make(map[int32]bool, len(job.PreviousAnnotators)+len(job.CurrentAnnotators)+len(users)+1)
	for _, id := range job.PreviousAnnotators {
		if u, ok := p.candIndex[id]; ok {
			excluded[u] = true
		}
	}
	for _, id := range job.CurrentAnnotators {
		if u, ok := p.candIndex[id]; ok {
			excluded[u] = true
		}
	}
	for _, u := range users {
		excluded[u] = true
	}
	if p.mode == modeReviewers && job.AnnotatorID != 0 {
		if u, ok := p.candIndex[job.AnnotatorID]; ok {
			excluded[u] = true
		}
	}
	anyAvail, anyLang, anyFree := false, false, false
	for u := range p.cands {
		c := &p.cands[u]
		if !c.avail {
			continue
		}
		anyAvail = true
		if !p.tab.ok(p.jobLang[j], u) {
			continue
		}
		anyLang = true
		if c.conflict || excluded[int32(u)] {
			continue
		}
		anyFree = true
		break
	}
	switch {
	case !anyAvail:
		return ReasonNoAvailableAnnotator
	case !anyLang:
		return ReasonNoLanguageMatch
	case !anyFree:
		return ReasonAllConflict
	}
	return ReasonCapacityExhausted
}
