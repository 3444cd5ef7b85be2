package export_test

import (
	"context"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/worker/export"
)

// TestFormatSpillsToTheBucket: with a small SpillAfter, a yolo export's
// central directory and manifest go to the bucket in pieces beside the
// archive while it is written (they are there just before the upload
// completes), the archive is sound and its manifest whole, and no piece is
// left once the run is over.
func TestFormatSpillsToTheBucket(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.setLabelConfig(detectionConfig)
	const n = 400
	f.seedTasks(n, 2, "")
	e := f.newFormatExport("yolo", `{}`)
	h := f.handler(export.Options{SpillAfter: 1 << 10})
	st := f.s3.Store
	spilled := func(ctx context.Context) []string {
		var keys []string
		for o := range st.Client.ListObjects(ctx, st.Bucket, minio.ListObjectsOptions{Prefix: "orgs/", Recursive: true}) {
			require.NoError(t, o.Err)
			if strings.Contains(o.Key, ".zip.spill/") && strings.Contains(o.Key, "/exports/") {
				keys = append(keys, o.Key)
			}
		}
		return keys
	}
	var during []string
	export.SetFinishHook(h, func(ctx context.Context) { during = spilled(ctx) })
	require.NoError(t, f.run(context.Background(), h, e.ID))
	a := f.convertedArchive(e.ID)
	require.Len(t, a.manifest.Entries, n+2, "a label file per task, classes.txt, data.yaml")

	var dir, manifest int
	for _, k := range during {
		require.True(t, strings.HasPrefix(k, *f.row(e.ID).StoragePath+".spill/"), "piece %s beside the archive", k)
		switch {
		case strings.Contains(k, ".spill/central-directory."):
			dir++
		case strings.Contains(k, ".spill/spool/manifest.json."):
			manifest++
		}
	}
	require.GreaterOrEqual(t, dir, 2, "central directory pieces: %v", during)
	require.GreaterOrEqual(t, manifest, 2, "manifest pieces: %v", during)
	require.Empty(t, spilled(context.Background()), "pieces left after the run")
}
