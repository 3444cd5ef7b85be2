package formats_test

import (
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/formats"
	"github.com/labelq/labelq/internal/labelconfig"
)

type heapSample struct {
	tasks          int
	inuse, alloced uint64
}

func sampleHeap(tasks int) heapSample {
	runtime.GC()
	runtime.GC() // a second cycle frees what the first one's finalizers released
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return heapSample{tasks: tasks, inuse: m.HeapInuse, alloced: m.HeapAlloc}
}

// TestCOCOMemoryIsFlatInTheNumberOfTasks converts 200,000 generated tasks to
// COCO (both passes) into a writer that keeps nothing, and checks the live
// heap after a collection at 20,000 tasks and at the end: under 64 MiB, and
// at most 1.2× larger at the end. Tasks are generated one at a time, so only
// the converter can hold memory across them.
func TestCOCOMemoryIsFlatInTheNumberOfTasks(t *testing.T) {
	const total, early = 200_000, 20_000
	cfg := config(t, detectionConfig)
	w := &countWriter{}
	conv, err := formats.New("coco", cfg, w)
	require.NoError(t, err)
	ip := conv.(formats.ImagePass)

	gen := func(pass int, fn func(formats.Task) error) []heapSample {
		rng := rand.New(rand.NewPCG(42, 42)) // the same tasks in both passes
		var samples []heapSample
		for i := range total {
			task, _ := genImageTask(rng, i, 3, i%10 == 0)
			require.NoError(t, fn(task))
			if i+1 == early || i+1 == total {
				samples = append(samples, sampleHeap(i+1))
			}
		}
		t.Logf("pass %d: %v", pass, samples)
		return samples
	}
	start := time.Now()
	base := sampleHeap(0)
	adds := gen(1, conv.Add)
	images := gen(2, ip.AddImage)
	require.NoError(t, conv.Close())
	t.Logf("converted %d tasks (%d MiB of COCO) in %v; heap before: %d KiB in use, %d KiB live", total, w.bytes>>20, time.Since(start), base.inuse>>10, base.alloced>>10)
	require.Greater(t, w.bytes, int64(100<<20), "the file holds every annotation: 600,000 boxes and 20,000 polygons")

	for _, s := range append(adds, images...) {
		require.Less(t, s.inuse, uint64(64<<20), "heap in use at %d tasks", s.tasks)
	}
	for _, pass := range [][]heapSample{adds, images} {
		atEarly, atEnd := pass[0], pass[1]
		require.LessOrEqual(t, float64(atEnd.inuse), 1.2*float64(atEarly.inuse),
			"heap in use grew from %d KiB at %d tasks to %d KiB at %d", atEarly.inuse>>10, atEarly.tasks, atEnd.inuse>>10, atEnd.tasks)
		require.LessOrEqual(t, float64(atEnd.alloced), 1.2*float64(atEarly.alloced),
			"live heap grew from %d KiB at %d tasks to %d KiB at %d", atEarly.alloced>>10, atEarly.tasks, atEnd.alloced>>10, atEnd.tasks)
	}
}

// The micro-benchmarks below time the converters alone on 10,000 tasks of 10
// boxes each, in memory; the export benchmark with its zip baseline is the
// end-to-end figure.
func benchConvert(b *testing.B, format string) {
	cfg, err := labelconfig.Parse([]byte(detectionConfig))
	require.NoError(b, err)
	const n = 10_000
	rng := rand.New(rand.NewPCG(1, 1))
	tasks := make([]formats.Task, n)
	for i := range tasks {
		tasks[i], _ = genImageTask(rng, i, 10, false)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var out int64
	for range b.N {
		w := &countWriter{}
		conv, err := formats.New(format, cfg, w)
		if err != nil {
			b.Fatal(err)
		}
		for _, t := range tasks {
			if err := conv.Add(t); err != nil {
				b.Fatal(err)
			}
		}
		if ip, ok := conv.(formats.ImagePass); ok {
			for _, t := range tasks {
				if err := ip.AddImage(t); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := conv.Close(); err != nil {
			b.Fatal(err)
		}
		out = w.bytes
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tasks/s")
	b.ReportMetric(float64(out)/n, "bytes/task")
}

func BenchmarkMicroCOCO10kTasks(b *testing.B)        { benchConvert(b, "coco") }
func BenchmarkMicroYOLO10kTasks(b *testing.B)        { benchConvert(b, "yolo") }
func BenchmarkMicroLabelStudio10kTasks(b *testing.B) { benchConvert(b, "label_studio") }
