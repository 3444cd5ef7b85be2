package export_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/worker/export"
)

// TestExportZIP64ManyEntries proves the whole path (MinIO, multipart upload,
// archive/zip's ZIP64 records, unzip) with more entries than a classic ZIP can
// count: 70,000 files plus the manifest and the index. zipstream's own tests
// prove ZIP64 at the writer, including entries over 4 GiB. This one takes about
// a minute and a half, so it runs in make test's pass without the race detector.
func TestExportZIP64ManyEntries(t *testing.T) {
	testenv.SkipUnderRace(t)
	f := newFixture(t)
	start := time.Now()
	f.seedBulk(pairs(35_000, 100), "")
	t.Logf("seeded 70,000 objects in %v", time.Since(start).Round(time.Second))

	e := f.newExport(`{}`)
	h := f.handler(export.Options{Concurrency: 16, ProgressEvery: time.Second, PartSize: export.DefaultPartSize})
	resetPeakRSS(t)
	start = time.Now()
	require.NoError(t, f.run(context.Background(), h, e.ID))
	t.Logf("exported in %v, peak RSS %.0f MiB", time.Since(start).Round(time.Second), peakRSSMiB(t))

	a := f.completedArchive(e.ID)
	require.Len(t, a.zr.File, 70_002)
	require.True(t, bytes.Contains(a.raw[len(a.raw)-200:], []byte("PK\x06\x06")), "the archive ends with a ZIP64 end of central directory record")
	require.Equal(t, "annotations/item-00000.csv", a.zr.File[1].Name)
	require.Equal(t, "files/item-34999.bin", a.zr.File[70_000].Name)
}
