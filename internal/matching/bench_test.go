package matching_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/labelq/labelq/internal/matching"
)

// benchInstance is a project-sized backlog: four languages plus jobs with no
// language, random skills, capacity 10 per annotator, 5% of the jobs
// re-opened with one or two previous annotators, and a sprinkling of
// inactive, unavailable, conflicting and already full users.
func benchInstance(jobs, users int) instance {
	rng := rand.New(rand.NewPCG(42, uint64(jobs)))
	in := generate(rng, genParams{
		jobs:          jobs,
		users:         users,
		maxCap:        1,
		langs:         []string{"", "en", "de", "zh", "es"},
		excludeChance: 0.05,
		quirks:        true,
	})
	for i := range in.cands {
		if in.cands[i].Remaining > 0 {
			in.cands[i].Remaining = 10
		}
		// Finer skills than the tests use: real scores rarely tie.
		in.cands[i].SkillScore = ptr(float64(rng.IntN(1_000_001)) / 1e6)
	}
	return in
}

// benchmarkSolve reports the solve time alone (solve_s) and the optimum
// against a greedy baseline measured on the same instance in the same run;
// every result must pass the hard-rule checker.
func benchmarkSolve(b *testing.B, jobs, users int) {
	in := benchInstance(jobs, users)
	var elapsed time.Duration
	var objective, greedy float64
	var pivots int
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		res, err := in.solve()
		elapsed += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := in.check(res); err != nil {
			b.Fatal(err)
		}
		greedyUnits, _ := in.greedy()
		objective, greedy, pivots = res.TotalScore, float64(greedyUnits)/1e8, res.Stats.Pivots
		if objective < greedy-1e-9 {
			b.Fatalf("objective %v below greedy %v", objective, greedy)
		}
		b.StartTimer()
	}
	b.ReportMetric(elapsed.Seconds()/float64(b.N), "solve_s")
	b.ReportMetric(objective, "objective")
	b.ReportMetric(greedy, "greedy_objective")
	b.ReportMetric(objective/greedy, "objective_vs_greedy")
	b.ReportMetric(float64(pivots), "pivots")
}

func BenchmarkSolve5000x500(b *testing.B)   { benchmarkSolve(b, 5000, 500) }
func BenchmarkSolve20000x2000(b *testing.B) { benchmarkSolve(b, 20000, 2000) }

// overlapBenchInstance is benchInstance with an overlap of 3: every job needs
// three different annotators, except that one job in ten already has one
// (a current annotator, so it needs two). Capacity is 30 per annotator, about
// as many copies as the jobs need, so the optimum has to choose which copies
// stay open as well as who takes the rest.
func overlapBenchInstance(jobs, users int) instance {
	in := benchInstance(jobs, users)
	rng := rand.New(rand.NewPCG(43, uint64(jobs)))
	for i := range in.cands {
		if in.cands[i].Remaining > 0 {
			in.cands[i].Remaining = 30
		}
	}
	for i := range in.jobs {
		in.jobs[i].Need = 3
		if rng.IntN(10) == 0 {
			in.jobs[i].CurrentAnnotators = []int64{in.cands[rng.IntN(users)].ID}
			in.jobs[i].Need = 2
		}
	}
	return in
}

// BenchmarkMatchOverlap reports the exact solver on 5,000 jobs × 500
// annotators with overlap 3 (solve_s, objective) beside the greedy baseline
// measured on the same instance in the same run (greedy_s,
// greedy_objective), and the ratios of the objectives and of the times.
// Every result must pass the hard-rule checker, nobody twice on one job
// included.
func BenchmarkMatchOverlap(b *testing.B) {
	in := overlapBenchInstance(5000, 500)
	var solveTime, greedyTime time.Duration
	var res matching.Result
	var greedyUnits int64
	var greedyCopies int
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		var err error
		res, err = in.solve()
		solveTime += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		greedyUnits, greedyCopies = in.greedy()
		greedyTime += time.Since(start)
		b.StopTimer()
		if err := in.check(res); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	objective, greedy := res.TotalScore, float64(greedyUnits)/1e8
	if objective < greedy-1e-9 {
		b.Fatalf("objective %v below greedy %v", objective, greedy)
	}
	solveS, greedyS := solveTime.Seconds()/float64(b.N), greedyTime.Seconds()/float64(b.N)
	b.ReportMetric(solveS, "solve_s")
	b.ReportMetric(objective, "objective")
	b.ReportMetric(float64(len(res.Assignments)), "copies")
	b.ReportMetric(greedyS, "greedy_s")
	b.ReportMetric(greedy, "greedy_objective")
	b.ReportMetric(float64(greedyCopies), "greedy_copies")
	b.ReportMetric(objective/greedy, "objective_vs_greedy")
	b.ReportMetric(solveS/greedyS, "time_vs_greedy")
	b.ReportMetric(float64(res.Stats.Pivots), "pivots")
	b.ReportMetric(float64(res.Stats.Rounds), "rounds")
}
