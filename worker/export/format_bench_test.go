package export_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/worker/export"
)

// Sizes of BenchmarkExportFormats: LABELQ_BENCH_FORMAT_IMAGES images (default
// 100,000) with 10 boxes each, and a tenth of that for the memory
// comparison.
const (
	defaultBenchFormatImages = 100_000
	benchBoxesPerImage       = 10
)

// BenchmarkExportFormats converts a project of 100,000 images with 1,000,000
// boxes (approved Label Studio results, generated here and stored in MinIO
// one object per image, as uploads are) to coco, yolo and label_studio, end
// to end through the handler into MinIO, without the images. In the same run
// it times Info-ZIP's "zip -r -6 -q" over the same result files on local
// disk (the baseline) and runs each format again on a project of 10,000
// images: the peak RSS (the whole test process during the export; MinIO is a
// process of its own) must stay flat in the number of tasks. Targets:
// peak_rss_MiB ≤ 256 and rss_ratio (100k ÷ 10k) ≤ 1.2.
func BenchmarkExportFormats(b *testing.B) {
	zipBin := "/usr/bin/zip"
	if _, err := os.Stat(zipBin); err != nil {
		b.Fatalf("Info-ZIP's zip is required for the baseline (apt-get install zip, or `make tools`): %v", err)
	}
	n := defaultBenchFormatImages
	if v := os.Getenv("LABELQ_BENCH_FORMAT_IMAGES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 10 {
			b.Fatalf("LABELQ_BENCH_FORMAT_IMAGES must be a number of images (at least 10): %q", v)
		}
	}
	type project struct {
		f       *fixture
		h       *export.Handler
		zipTime time.Duration
	}
	setup := func(images int) project {
		f := newFixture(b)
		f.setLabelConfig(detectionConfig)
		dir := b.TempDir()
		start := time.Now()
		f.seedTasks(images, benchBoxesPerImage, dir)
		b.Logf("%d images with %d boxes each seeded in %v", images, benchBoxesPerImage, time.Since(start).Round(time.Millisecond))
		syscall.Sync()
		out := filepath.Join(b.TempDir(), "baseline.zip")
		cmd := exec.Command(zipBin, "-r", "-6", "-q", out, "annotations")
		cmd.Dir = dir
		start = time.Now()
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("zip: %v: %s", err, msg)
		}
		p := project{f: f, h: f.benchHandler(), zipTime: time.Since(start)}
		// The seeding's statements of hundreds of thousands of rows leave
		// large buffers on the pool's connections: new ones for the exports.
		f.pg.Pool.Reset()
		// The baseline's files are not needed any more: free the disk.
		_ = os.RemoveAll(dir)
		return p
	}
	small, large := setup(n/10), setup(n)
	// The first export of the process grows what every later one reuses
	// (connections, pools, buffers): not what a figure should measure.
	small.f.timeFormatExport(b, small.h, "coco")

	for _, format := range []string{"coco", "yolo", "label_studio"} {
		b.Run(format, func(b *testing.B) {
			var d, dSmall time.Duration
			var size int64
			var peak, peakSmall float64
			for range b.N {
				ds, _, rs := small.f.timeFormatExport(b, small.h, format)
				dl, sl, rl := large.f.timeFormatExport(b, large.h, format)
				d, dSmall, size = d+dl, dSmall+ds, sl
				peak, peakSmall = max(peak, rl), max(peakSmall, rs)
			}
			runs := float64(b.N)
			b.ReportMetric(d.Seconds()/runs, "export_s")
			b.ReportMetric(large.zipTime.Seconds(), "zip_s")
			b.ReportMetric(d.Seconds()/runs/large.zipTime.Seconds(), "time_ratio")
			b.ReportMetric(peak, "peak_rss_MiB")
			b.ReportMetric(peakSmall, "peak_rss_10x_fewer_MiB")
			b.ReportMetric(peak/peakSmall, "rss_ratio")
			b.ReportMetric(float64(n)/(d.Seconds()/runs), "images/s")
			b.Logf("%s: %d images in %v (%d bytes), zip -6 of the results %v; %d images in %v (zip %v); peak RSS %.1f MiB, %.1f MiB at %d images",
				format, n, (d / time.Duration(b.N)).Round(time.Millisecond), size, large.zipTime.Round(time.Millisecond),
				n/10, (dSmall / time.Duration(b.N)).Round(time.Millisecond), small.zipTime.Round(time.Millisecond), peak, peakSmall, n/10)
		})
	}
}

// timeFormatExport runs one export in format end to end and returns its wall
// time, the archive's size and the process's peak RSS while it ran.
func (f *fixture) timeFormatExport(b *testing.B, h *export.Handler, format string) (time.Duration, int64, float64) {
	b.Helper()
	e := f.newFormatExport(format, `{}`)
	resetPeakRSS(b)
	cpu := testenv.CPUSnapshot()
	start := time.Now()
	err := f.run(context.Background(), h, e.ID)
	d := time.Since(start)
	rss := peakRSSMiB(b)
	b.Logf("%s, export %d: CPU %s", format, e.ID, testenv.CPUSnapshot().Since(cpu))
	if err != nil {
		b.Fatal(err)
	}
	row := f.row(e.ID)
	if row.Status != db.ExportStatusCompleted {
		b.Fatalf("export %d is %s: %v", e.ID, row.Status, row.Error)
	}
	if row.FileCount == nil || int(*row.FileCount) != int(row.FilesTotal) {
		b.Fatalf("export %d converted %v of %d tasks", e.ID, row.FileCount, row.FilesTotal)
	}
	return d, *row.SizeBytes, rss
}
