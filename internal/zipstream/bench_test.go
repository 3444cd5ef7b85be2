package zipstream

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/klauspost/compress/flate"

	"github.com/labelq/labelq/internal/testenv"
)

// BenchmarkPack2000x512KiB packs 2,000 files of 512 KiB (half generated
// CSV-like text, half random bytes labelled application/octet-stream) from
// local files into a file on disk, and in the same run times Info-ZIP
// ("zip -r -6 -q") over the same files as the baseline. Targets:
// time_ratio ≤ 0.5 and size_ratio ≤ 1.02.
func BenchmarkPack2000x512KiB(b *testing.B) {
	zipBin, err := exec.LookPath("zip")
	if err != nil {
		b.Fatalf("zip (Info-ZIP) is required for the baseline: %v", err)
	}
	const (
		files = 2000
		size  = 512 << 10
	)
	dir := b.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		b.Fatal(err)
	}
	entries := make([]Entry, files)
	for i := range entries {
		name := "file-" + strconv.Itoa(i)
		var data []byte
		mime := "application/octet-stream"
		if i%2 == 0 {
			data, mime, name = testenv.TextBytes(uint64(i), size), "text/csv", name+".csv"
		} else {
			data, name = testenv.RandomBytes(uint64(i), size), name+".bin"
		}
		path := filepath.Join(src, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			b.Fatal(err)
		}
		entries[i] = Entry{
			Path: "src/" + name, Size: size, SHA256: sha256Hex(data), MIMEType: mime,
			Open: func(context.Context) (io.ReadCloser, error) { return os.Open(path) },
		}
	}
	runtime.GC()

	var labelqTime, zipTime time.Duration
	var labelqSize, zipSize int64
	var peak uint64
	b.ResetTimer()
	for range b.N {
		out := filepath.Join(dir, "labelq.zip")
		f, err := os.Create(out)
		if err != nil {
			b.Fatal(err)
		}
		stop := heapPeak()
		start := time.Now()
		_, err = Pack(context.Background(), f, entries, Options{Modified: testModified})
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		labelqTime += time.Since(start)
		peak = max(peak, stop())
		if err != nil {
			b.Fatal(err)
		}
		labelqSize = fileSize(b, out)

		zipOut := filepath.Join(dir, "baseline.zip")
		_ = os.Remove(zipOut) // zip would otherwise update the old archive
		cmd := exec.Command(zipBin, "-r", "-6", "-q", zipOut, "src")
		cmd.Dir = dir
		start = time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("zip: %v: %s", err, out)
		}
		zipTime += time.Since(start)
		zipSize = fileSize(b, zipOut)
	}
	n := float64(b.N)
	b.ReportMetric(labelqTime.Seconds()/n, "labelq_s")
	b.ReportMetric(zipTime.Seconds()/n, "zip_s")
	b.ReportMetric(labelqTime.Seconds()/zipTime.Seconds(), "time_ratio")
	b.ReportMetric(float64(labelqSize)/float64(zipSize), "size_ratio")
	b.ReportMetric(float64(peak)/(1<<20), "peak_heap_MiB")
	b.Logf("labelq %d bytes in %v, zip -6 %d bytes in %v", labelqSize, labelqTime/time.Duration(b.N), zipSize, zipTime/time.Duration(b.N))
}

func fileSize(b *testing.B, path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return fi.Size()
}

// BenchmarkSampleEntropy times what chooseMethod does with the first chunk
// of an entry whose type does not decide its method, the order-0 entropy of
// the sample, against a trial deflate of the same bytes at DefaultLevel, on
// random bytes (which the histogram sends to Store) and on generated CSV
// text (Deflate). Reports entropy_us, deflate_us and deflate_vs_entropy
// (above 1: the histogram is the cheaper).
func BenchmarkSampleEntropy(b *testing.B) {
	for _, tc := range []struct {
		name   string
		sample []byte
		store  bool
	}{
		{"random", testenv.RandomBytes(7, chunkSize), true},
		{"text", testenv.TextBytes(7, chunkSize), false},
	} {
		b.Run(tc.name, func(b *testing.B) { benchmarkSampleEntropy(b, tc.sample, tc.store) })
	}
}

func benchmarkSampleEntropy(b *testing.B, sample []byte, store bool) {
	// Each iteration repeats both many times, so that make bench's single
	// iteration is not one noisy sample of a few microseconds.
	const rounds = 200
	fw, err := flate.NewWriter(io.Discard, DefaultLevel)
	if err != nil {
		b.Fatal(err)
	}
	var entropyTime, deflateTime time.Duration
	var h float64
	iterations := 0
	for b.Loop() {
		iterations++
		start := time.Now()
		for range rounds {
			h = entropy(sample)
		}
		entropyTime += time.Since(start)
		start = time.Now()
		for range rounds {
			fw.Reset(io.Discard)
			if _, err := fw.Write(sample); err != nil {
				b.Fatal(err)
			}
			if err := fw.Close(); err != nil {
				b.Fatal(err)
			}
		}
		deflateTime += time.Since(start)
	}
	if (h > incompressibleBits) != store {
		b.Fatalf("sample entropy %.3f against the %v threshold: not the method the benchmark assumes", h, incompressibleBits)
	}
	n := float64(iterations * rounds)
	b.ReportMetric(entropyTime.Seconds()/n*1e6, "entropy_us")
	b.ReportMetric(deflateTime.Seconds()/n*1e6, "deflate_us")
	b.ReportMetric(deflateTime.Seconds()/entropyTime.Seconds(), "deflate_vs_entropy")
}
