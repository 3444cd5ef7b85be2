package export_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/worker/export"
)

// BenchmarkExport2000x512KiB exports 2,000 files of 512 KiB from MinIO to
// MinIO through the real handler: 1,000 random "images" (labelled
// application/octet-stream, so the writer must sniff them) and their 1,000
// approved results of generated CSV text, the default export. In the same run
// it times Info-ZIP's "zip -r -6 -q" over the same files on local disk.
// Targets: time_ratio ≤ 0.5, size_ratio ≤ 1.02, peak_rss_MiB ≤ 128 (the
// whole test process, during the export; MinIO is a process of its own).
func BenchmarkExport2000x512KiB(b *testing.B) {
	zipBin := "/usr/bin/zip"
	if _, err := os.Stat(zipBin); err != nil {
		b.Fatalf("Info-ZIP's zip is required for the baseline (apt-get install zip, or `make tools`): %v", err)
	}
	f := newFixture(b)
	dir := b.TempDir()
	input := f.seedBulk(pairs(1000, 512<<10), dir)
	// Write back what the fixture left dirty, so that neither side pays for it.
	syscall.Sync()
	h := f.benchHandler()

	var exportTime, zipTime time.Duration
	var archiveSize, zipSize int64
	var peak float64
	b.ResetTimer()
	for range b.N {
		d, size, rss := f.timeExport(b, h)
		exportTime += d
		archiveSize = size
		peak = max(peak, rss)

		out := filepath.Join(b.TempDir(), "baseline.zip")
		cmd := exec.Command(zipBin, "-r", "-6", "-q", out, "annotations", "files")
		cmd.Dir = dir
		start := time.Now()
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("zip: %v: %s", err, msg)
		}
		zipTime += time.Since(start)
		fi, err := os.Stat(out)
		if err != nil {
			b.Fatal(err)
		}
		zipSize = fi.Size()
	}
	n := float64(b.N)
	b.ReportMetric(exportTime.Seconds()/n, "export_s")
	b.ReportMetric(zipTime.Seconds()/n, "zip_s")
	b.ReportMetric(exportTime.Seconds()/zipTime.Seconds(), "time_ratio")
	b.ReportMetric(float64(archiveSize)/float64(zipSize), "size_ratio")
	b.ReportMetric(peak, "peak_rss_MiB")
	b.ReportMetric(float64(input)/(1<<20)/(exportTime.Seconds()/n), "MiB/s")
	b.Logf("export: %d bytes in %v; zip -6: %d bytes in %v; peak RSS %.1f MiB",
		archiveSize, exportTime/time.Duration(b.N), zipSize, zipTime/time.Duration(b.N), peak)
}

// BenchmarkExport4x is the same export four times larger (8,000 files, 4 GiB):
// the peak RSS must not grow with the export (target ≤ 128 MiB).
func BenchmarkExport4x(b *testing.B) {
	f := newFixture(b)
	input := f.seedBulk(pairs(4000, 512<<10), "")
	syscall.Sync()
	h := f.benchHandler()
	var exportTime time.Duration
	var peak float64
	b.ResetTimer()
	for range b.N {
		d, _, rss := f.timeExport(b, h)
		exportTime += d
		peak = max(peak, rss)
	}
	n := float64(b.N)
	b.ReportMetric(exportTime.Seconds()/n, "export_s")
	b.ReportMetric(peak, "peak_rss_MiB")
	b.ReportMetric(float64(input)/(1<<20)/(exportTime.Seconds()/n), "MiB/s")
}

// benchHandler is the handler as production runs it: default options.
func (f *fixture) benchHandler() *export.Handler {
	return export.NewHandler(export.Deps{Pool: f.pg.Pool, Store: f.s3.Store, Storages: f.res, Metrics: f.metrics, Version: "bench"})
}

// timeExport runs one default export end to end and returns its wall time,
// the archive's size and the process's peak RSS while it ran.
func (f *fixture) timeExport(b *testing.B, h *export.Handler) (time.Duration, int64, float64) {
	b.Helper()
	e := f.newExport(`{}`)
	resetPeakRSS(b)
	start := time.Now()
	err := f.run(context.Background(), h, e.ID)
	d := time.Since(start)
	rss := peakRSSMiB(b)
	if err != nil {
		b.Fatal(err)
	}
	row := f.row(e.ID)
	if row.Status != db.ExportStatusCompleted {
		b.Fatalf("export %d is %s: %v", e.ID, row.Status, row.Error)
	}
	info, err := f.s3.Store.Client.StatObject(context.Background(), f.s3.Store.Bucket, *row.StoragePath, minio.StatObjectOptions{})
	if err != nil {
		b.Fatal(err)
	}
	if info.Size != *row.SizeBytes {
		b.Fatalf("object is %d bytes, row says %d", info.Size, *row.SizeBytes)
	}
	return d, *row.SizeBytes, rss
}

// resetPeakRSS returns freed memory to the system (the fixture's uploads left
// plenty) and resets the kernel's high-water mark, so that VmHWM afterwards is
// the peak of what follows.
func resetPeakRSS(b testing.TB) {
	runtime.GC()
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Fatalf("reset peak RSS: %v", err)
	}
}

// peakRSSMiB reads VmHWM, the process's peak resident set size.
func peakRSSMiB(b testing.TB) float64 {
	fh, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = fh.Close() }()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb / 1024
		}
	}
	b.Fatal("no VmHWM in /proc/self/status")
	return 0
}
