package quality_test

import (
	"context"
	"fmt"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/labelq/labelq/internal/quality"
)

// BenchmarkDawidSkene fits 100,000 items × 50 annotators × 5 classes drawn
// from the model (accuracies in [0.55, 0.95], priors 0.3/0.25/0.2/0.15/0.1)
// at two densities:
//
//   - votes=5: each item labelled by 5 distinct random annotators (500,000
//     votes), the overlap a project sets for consensus; every annotator
//     then has about 10,000 votes;
//   - votes=50: every annotator labels every item (5,000,000 votes), the
//     worst case for one fit.
//
// Each is run with 1 and 2 workers to show what the parallel E- and M-steps
// buy on this machine. Reported per fit: fit_s (DawidSkene alone, the matrix
// already built), majority_s (MajorityVote over the same matrix in the same
// run, the baseline) and fit_vs_majority (their ratio), build_s
// (NewVoteMatrix), iterations and the time of one, the heap before the fit and its peak during
// an extra, untimed fit (runtime/metrics sampled every millisecond, so the
// sampler does not disturb fit_s), the bytes one fit allocates, and the
// consensus accuracy of both methods against the planted truth.
func BenchmarkDawidSkene(b *testing.B) {
	const items, annotators = 100_000, 50
	priors := []float64{0.3, 0.25, 0.2, 0.15, 0.1}
	for _, perItem := range []int{5, annotators} {
		p := consPlant(2026, items, annotators, perItem, priors, 0.55, 0.95)
		start := time.Now()
		m, err := quality.NewVoteMatrix(p.items, p.annotators, p.classes, p.votes)
		if err != nil {
			b.Fatal(err)
		}
		build := time.Since(start)
		for _, workers := range []int{1, 2} {
			name := fmt.Sprintf("items=%d/annotators=%d/classes=%d/votes=%d/workers=%d", items, annotators, len(priors), perItem, workers)
			b.Run(name, func(b *testing.B) { benchmarkDawidSkene(b, p, m, build, workers) })
		}
	}
}

func benchmarkDawidSkene(b *testing.B, p consPlanted, m *quality.VoteMatrix, build time.Duration, workers int) {
	ctx := context.Background()
	opts := quality.DawidSkeneOptions{Workers: workers}
	var fit, majority time.Duration
	var res *quality.DawidSkeneResult
	var mv []quality.MajorityLabel
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		r, err := quality.DawidSkene(ctx, m, opts)
		fit += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		v, err := quality.MajorityVote(m, nil)
		majority += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		res, mv = r, v
	}
	b.StopTimer()

	before, peak, alloc := consFitMemory(func() {
		if _, err := quality.DawidSkene(ctx, m, opts); err != nil {
			b.Fatal(err)
		}
	})
	dsRight, mvRight := 0, 0
	for i, k := range p.truth {
		if res.Labels[i].Class == k {
			dsRight++
		}
		if mv[i].Class == k {
			mvRight++
		}
	}
	n := float64(b.N)
	b.ReportMetric(fit.Seconds()/n, "fit_s")
	b.ReportMetric(majority.Seconds()/n, "majority_s")
	b.ReportMetric(fit.Seconds()/majority.Seconds(), "fit_vs_majority")
	b.ReportMetric(build.Seconds(), "build_s")
	b.ReportMetric(float64(res.Iterations), "iterations")
	b.ReportMetric(fit.Seconds()/n/float64(res.Iterations), "iteration_s")
	b.ReportMetric(before, "heap_before_MiB")
	b.ReportMetric(peak, "peak_heap_MiB")
	b.ReportMetric(alloc, "fit_alloc_MiB")
	b.ReportMetric(float64(dsRight)/float64(p.items), "ds_accuracy")
	b.ReportMetric(float64(mvRight)/float64(p.items), "majority_accuracy")
	if !res.Converged {
		b.Errorf("did not converge in %d iterations", res.Iterations)
	}
}

// consFitMemory runs fn once after a GC and returns, in MiB, the live heap
// before it, the highest heap seen while it ran (sampled every millisecond)
// and the bytes it allocated.
func consFitMemory(fn func()) (before, peak, alloc float64) {
	const mib = 1 << 20
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	heap := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	total := ms.TotalAlloc
	base := heap()
	top := base
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				top = max(top, heap())
			}
		}
	})
	fn()
	close(stop)
	wg.Wait()
	top = max(top, heap())
	runtime.ReadMemStats(&ms)
	return float64(base) / mib, float64(top) / mib, float64(ms.TotalAlloc-total) / mib
}
