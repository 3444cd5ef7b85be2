package export_test

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode"

	"github.com/hibiken/asynq"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/internal/zipstream"
	"github.com/labelq/labelq/worker/export"
)

const allButLLM = `{"include_files":true,"include_annotations":true,"include_llm":false}`

// TestExportPacksApprovedResultsWithTheirFiles is the default export: approved
// results under annotations/, the raw versions their jobs were made for under
// files/, manifest first and index last, all of it checked against the bucket.
func TestExportPacksApprovedResultsWithTheirFiles(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()

	scan := f.dataset("scan.txt", testenv.TextBytes(1, 300<<10), "text/plain")
	photo := f.dataset("photo.jpg", testenv.RandomBytes(2, 200<<10), "image/jpeg")
	table := f.dataset("nested/dir/table.csv", testenv.TextBytes(3, 64<<10), "text/csv")
	empty := f.dataset("empty.txt", nil, "text/plain")
	rScan := f.approved(scan, "scan.json", []byte(`{"labels":["invoice"]}`))
	rPhoto := f.approved(photo, "photo.json", []byte(`{"boxes":[[1,2,3,4]]}`))
	rTable := f.approved(table, "table.json", []byte(`{"rows":12}`))
	rEmpty := f.approved(empty, "empty.json", []byte(`{}`))

	// Not exported: jobs pending review or rejected, an approved job without
	// a result, and a result that never became valid (its raw file still goes).
	pending := f.dataset("pending.txt", []byte("pending"), "text/plain")
	f.job(pending, db.ReviewStatusPending, nil)
	rejected := f.dataset("rejected.txt", []byte("rejected"), "text/plain")
	rRejected := f.valid(f.file("rejected.json", db.FileTypeAnnotationResults), []byte(`{}`), "application/json")
	f.job(rejected, db.ReviewStatusRejected, &rRejected.ID)
	noResult := f.dataset("no-result.txt", []byte("no result"), "text/plain")
	f.job(noResult, db.ReviewStatusApproved, nil)
	unchecked := f.dataset("unchecked.txt", []byte("unchecked"), "text/plain")
	rUnchecked := f.pg.RegisterVersion(t, f.file("unchecked.json", db.FileTypeAnnotationResults), f.put([]byte(`{}`)), testenv.Declared{})
	f.job(unchecked, db.ReviewStatusApproved, &rUnchecked.ID)
	// A model output is not packed unless asked for.
	f.llm(scan, []byte(`{"guess":"invoice"}`))

	e := f.newExport(allButLLM)
	require.NoError(t, f.run(ctx, f.handler(export.Options{}), e.ID))

	a := f.completedArchive(e.ID)
	want := map[string]version{
		"annotations/empty.json": rEmpty, "annotations/photo.json": rPhoto,
		"annotations/scan.json": rScan, "annotations/table.json": rTable,
		"files/empty.txt": empty, "files/nested/dir/table.csv": table, "files/photo.jpg": photo,
		"files/scan.txt": scan, "files/unchecked.txt": unchecked,
	}
	require.Len(t, a.manifest.Entries, len(want))
	for _, m := range a.manifest.Entries {
		v, ok := want[m.Path]
		require.True(t, ok, "unexpected entry %s", m.Path)
		require.Equal(t, v.ID, m.VersionID, m.Path)
		require.Equal(t, v.File.ID, m.FileID, m.Path)
		require.Equal(t, v.VersionNumber, m.VersionNumber, m.Path)
		require.Equal(t, sha256Hex(v.Content), m.SHA256, m.Path)
		require.True(t, bytes.Equal(v.Content, a.read(m.Path)), m.Path)
	}
	// Folders in order, names bytewise within them.
	require.Equal(t, []string{
		"manifest.json",
		"annotations/empty.json", "annotations/photo.json", "annotations/scan.json", "annotations/table.json",
		"files/empty.txt", "files/nested/dir/table.csv", "files/photo.jpg", "files/scan.txt", "files/unchecked.txt",
		"index.csv",
	}, a.names())
	// The options as packed: the request's, with the defaults filled in.
	require.JSONEq(t, `{"include_files":true,"include_annotations":true,"include_llm":false,"include_consensus":false}`, string(a.manifest.Options))
	require.True(t, a.manifest.CreatedAt.Equal(e.RequestedAt), "the manifest's time is the request's")

	// Text is deflated; images and empty files are stored.
	methods := map[string]uint16{}
	for _, zf := range a.zr.File {
		methods[zf.Name] = zf.Method
	}
	require.Equal(t, zip.Deflate, methods["files/scan.txt"])
	require.Equal(t, zip.Deflate, methods["files/nested/dir/table.csv"])
	require.Equal(t, zip.Store, methods["files/photo.jpg"])
	require.Equal(t, zip.Store, methods["files/empty.txt"])

	// index.csv keeps the name as uploaded next to the path.
	require.Equal(t, []string{"path", "file_id", "file_name", "version_id", "version_number", "sha256", "size", "mime_type"}, a.index[0])
	require.Equal(t, "files/nested/dir/table.csv", a.index[6][0])
	require.Equal(t, "nested/dir/table.csv", a.index[6][2])

	var m dto.Metric
	require.NoError(t, f.metrics.ExportBytes.Write(&m))
	require.Equal(t, float64(len(a.raw)), m.GetCounter().GetValue(), "ExportBytes counts the archive's bytes")
	require.Equal(t, map[string]int{export.EventStarted: 1, export.EventExported: 1}, f.events(e.ID))
	require.Equal(t, int32(1), f.row(e.ID).Attempts)
	require.Contains(t, f.logs.String(), "versions left out of the export")
	require.Zero(t, f.incompleteUploads(f.exportKey(e.ID)))
}

// TestExportOptions covers what each option set packs. Without annotations,
// files are every active valid dataset version (approved or not); model
// outputs follow the raw versions the export is about.
func TestExportOptions(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.dataset("a.txt", []byte("raw a"), "text/plain")
	b := f.dataset("b.txt", []byte("raw b"), "text/plain")
	c := f.dataset("c.txt", []byte("raw c, never annotated"), "text/plain")
	f.approved(a, "a.json", []byte(`{"a":1}`))
	f.approved(b, "b.json", []byte(`{"b":1}`))
	f.llm(a, []byte(`{"llm":"a"}`))
	f.llm(c, []byte(`{"llm":"c"}`))
	// b's newer version is active but has no approved job: the default
	// export keeps the version its result was made for.
	b2 := f.valid(b.File, []byte("raw b, second upload"), "text/plain")
	// A version that failed validation is never exported, even when active.
	bad := f.dataset("bad.txt", []byte("corrupt"), "text/plain")
	_, err := f.pg.Pool.Exec(context.Background(),
		`UPDATE file_versions SET validation_status = 'corrupt', validation_error = 'checksum mismatch' WHERE id = $1`, bad.ID)
	require.NoError(t, err)

	cases := []struct {
		name    string
		options string
		want    map[string]int64
	}{
		{"defaults", `{}`, map[string]int64{
			"annotations/a.json": 0, "annotations/b.json": 0, "files/a.txt": a.ID, "files/b.txt": b.ID,
		}},
		{"annotations only", `{"include_files":false,"include_annotations":true,"include_llm":false}`, map[string]int64{
			"annotations/a.json": 0, "annotations/b.json": 0,
		}},
		{"files only", `{"include_files":true,"include_annotations":false,"include_llm":false}`, map[string]int64{
			"files/a.txt": a.ID, "files/b.txt": b2.ID, "files/c.txt": c.ID,
		}},
		{"everything", `{"include_files":true,"include_annotations":true,"include_llm":true}`, map[string]int64{
			"annotations/a.json": 0, "annotations/b.json": 0, "files/a.txt": a.ID, "files/b.txt": b.ID,
			"llm/a.txt.llm.json": 0,
		}},
		{"files and llm", `{"include_files":true,"include_annotations":false,"include_llm":true}`, map[string]int64{
			"files/a.txt": a.ID, "files/b.txt": b2.ID, "files/c.txt": c.ID,
			"llm/a.txt.llm.json": 0, "llm/c.txt.llm.json": 0,
		}},
	}
	h := f.handler(export.Options{})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := f.newExport(tc.options)
			require.NoError(t, f.run(context.Background(), h, e.ID))
			got := f.completedArchive(e.ID).paths()
			require.Len(t, got, len(tc.want), "%v", got)
			for p, id := range tc.want {
				require.Contains(t, got, p)
				if id != 0 {
					require.Equal(t, id, got[p], p)
				}
			}
		})
	}

	t.Run("nothing approved yet gives a manifest-only archive", func(t *testing.T) {
		g := newFixture(t)
		g.dataset("waiting.txt", []byte("not reviewed"), "text/plain")
		e := g.newExport(`{}`)
		require.NoError(t, g.run(context.Background(), g.handler(export.Options{}), e.ID))
		a := g.completedArchive(e.ID)
		require.Equal(t, []string{"manifest.json", "index.csv"}, a.names())
	})

	t.Run("options that include nothing fail the export", func(t *testing.T) {
		e := f.newExport(`{"include_files":false,"include_annotations":false,"include_llm":false}`)
		err := f.run(context.Background(), h, e.ID)
		require.ErrorIs(t, err, asynq.SkipRetry)
		row := f.row(e.ID)
		require.Equal(t, db.ExportStatusFailed, row.Status)
		require.Contains(t, *row.Error, "include nothing")
	})
}

// TestExportSanitisesHostileNames uploads files whose names try to escape the
// extraction directory, hide their extension or collide on case-insensitive
// file systems, and extracts the archive with Info-ZIP to prove they cannot.
func TestExportSanitisesHostileNames(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// The database already refuses ASCII control characters in file names
	// (files_name_check); what it accepts is the sanitiser's to make safe.
	names := map[string]string{
		"../../etc/passwd":      "files/etc/passwd",
		"/abs/path.txt":         "files/abs/path.txt",
		`a\b.txt`:               "files/a/b.txt",
		`..\..\windows\win.ini`: "files/windows/win.ini",
		"invoice\u202egpj.exe":  "files/invoicegpj.exe",
		"..／..／fullwidth.txt":   "files/.._.._fullwidth.txt",
		"CON.txt":               "files/_CON.txt",
		`what?.txt`:             "files/what_.txt",
		"trailing dots...":      "files/trailing dots",
		// Bytewise order decides who keeps a name: "CAT" < "Cat" < "cat".
		"CAT.jpg": "files/CAT.jpg",
		"Cat.JPG": "files/Cat (2).JPG",
		"cat.jpg": "files/cat (3).jpg",
		// A directory keeps the spelling it was first given.
		"DIR/y.txt":                          "files/DIR/y.txt",
		"dir/x.txt":                          "files/DIR/x.txt",
		"line\u2028separator.txt":            "files/line\u2028separator.txt",
		strings.Repeat("long", 100) + ".txt": "",
	}
	byName := map[string]version{}
	for n := range names {
		byName[n] = f.dataset(n, []byte("content of "+n), "text/plain")
	}
	e := f.newExport(`{"include_files":true,"include_annotations":false}`)
	require.NoError(t, f.run(context.Background(), f.handler(export.Options{}), e.ID))
	a := f.completedArchive(e.ID)

	paths := a.paths()
	seen := map[string]bool{}
	for _, p := range a.names() {
		require.NoError(t, zipstream.ValidPath(p), p)
		require.False(t, strings.HasPrefix(p, "/"), p)
		require.NotContains(t, p, `\`, p)
		for _, c := range strings.Split(p, "/") {
			require.NotEqual(t, "..", c, p)
		}
		for _, r := range p {
			require.False(t, unicode.IsControl(r) || unicode.Is(unicode.Cf, r), "%q has a control or format character", p)
		}
		fold := strings.ToLower(p)
		require.False(t, seen[fold], "%q collides with another entry on a case-insensitive file system", p)
		seen[fold] = true
	}
	for n, p := range names {
		if p == "" {
			continue
		}
		require.Equal(t, byName[n].ID, paths[p], "%q should be packed as %q; got %v", n, p, paths)
		require.Equal(t, byName[n].Content, a.read(p))
	}

	// Extracting with Info-ZIP puts everything under the target directory.
	dir := t.TempDir()
	zipPath := filepath.Join(t.TempDir(), "export.zip")
	require.NoError(t, os.WriteFile(zipPath, a.raw, 0o644))
	out, err := exec.Command("/usr/bin/unzip", "-qq", zipPath, "-d", dir).CombinedOutput()
	require.NoError(t, err, "unzip: %s", out)
	count := 0
	require.NoError(t, filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		require.NoError(t, err)
		rel, err := filepath.Rel(dir, p)
		require.NoError(t, err)
		require.False(t, strings.HasPrefix(rel, ".."), "%s escaped the extraction directory", p)
		if fi.Mode().IsRegular() {
			count++
		}
		return nil
	}))
	require.Equal(t, len(names)+2, count, "every file extracted as its own file")
}

// TestExportFailsOnBytesChangedAfterValidation: the object behind a valid
// version changed (or vanished) after it was validated. The export fails for
// good, naming the file and version and what to do, and leaves nothing in the
// bucket, even though parts of the archive had already been uploaded.
func TestExportFailsOnBytesChangedAfterValidation(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		tamper func(f *fixture, v version)
		reason string
	}{
		{"same size, other bytes", func(f *fixture, v version) {
			f.s3.Put(f.t, v.StoragePath, testenv.RandomBytes(99, len(v.Content)), minio.PutObjectOptions{})
		}, "stored bytes no longer match the recorded SHA-256"},
		{"longer", func(f *fixture, v version) {
			f.s3.Put(f.t, v.StoragePath, append(append([]byte{}, v.Content...), 'x'), minio.PutObjectOptions{})
		}, "the stored object is longer than the recorded"},
		{"shorter", func(f *fixture, v version) {
			f.s3.Put(f.t, v.StoragePath, v.Content[:len(v.Content)-10], minio.PutObjectOptions{})
		}, "the recorded size is"},
		{"deleted", func(f *fixture, v version) {
			require.NoError(f.t, f.s3.Store.Client.RemoveObject(context.Background(), f.s3.Store.Bucket, v.StoragePath, minio.RemoveObjectOptions{}))
		}, "the stored object is missing from the bucket"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			// 12 MiB ahead of the bad file: two parts are uploaded before
			// the pack reaches it, so the abort has something to abort.
			for i := range 6 {
				f.dataset("a"+string(rune('0'+i))+".bin", testenv.RandomBytes(uint64(i), 2<<20), "image/png")
			}
			cat := f.dataset("cat.jpg", testenv.RandomBytes(7, 256<<10), "image/jpeg")
			f.dataset("zebra.txt", []byte("after the bad file"), "text/plain")
			tc.tamper(f, cat)

			e := f.newExport(`{"include_files":true,"include_annotations":false}`)
			var maxArchive atomic.Int64
			h := f.handler(export.Options{Concurrency: 2})
			export.SetProgressHook(h, func(_ context.Context, p zipstream.Progress) { maxArchive.Store(p.ArchiveBytes) })
			err := f.run(context.Background(), h, e.ID)
			require.Error(t, err)
			require.ErrorIs(t, err, asynq.SkipRetry, "a corrupt file is not retried")

			row := f.row(e.ID)
			require.Equal(t, db.ExportStatusFailed, row.Status)
			require.Contains(t, *row.Error, "files/cat.jpg (version ")
			require.Contains(t, *row.Error, tc.reason)
			require.Contains(t, *row.Error, "re-upload")
			require.Nil(t, row.StoragePath)
			require.Nil(t, row.ArchiveSha256)
			require.Greater(t, maxArchive.Load(), int64(2*minPartSize), "parts were uploaded before the failure")
			f.requireNoArchive(e.ID)
			require.Empty(t, f.exportedFiles(e.ID))
			require.Equal(t, map[string]int{export.EventStarted: 1, export.EventFailed: 1}, f.events(e.ID))

			// A redelivery of the failed task changes nothing.
			require.NoError(t, f.run(context.Background(), h, e.ID))
			require.Equal(t, row, f.row(e.ID))
		})
	}
}

// TestExportCancel: a cancel through the API stops the run and leaves no
// archive, whether it arrives mid-pack, at the very end, or before the run.
func TestExportCancel(t *testing.T) {
	t.Parallel()
	setup := func(t *testing.T) (*fixture, db.ExportLog) {
		f := newFixture(t)
		for i := range 8 {
			f.dataset("f"+string(rune('a'+i))+".bin", testenv.RandomBytes(uint64(i), 1<<20), "image/png")
		}
		return f, f.newExport(`{"include_files":true,"include_annotations":false}`)
	}
	// cancel is what the API's cancel does. Hooks run on the handler's
	// goroutines, so it reports with Errorf rather than stopping the test.
	cancel := func(f *fixture, id int64) {
		if _, err := f.pg.Q.ExportLogCancel(context.Background(), db.ExportLogCancelParams{ID: id, OrgID: f.org.ID}); err != nil {
			f.t.Errorf("cancel export %d: %v", id, err)
		}
	}
	requireCancelled := func(f *fixture, id int64) {
		f.t.Helper()
		row := f.row(id)
		require.Equal(f.t, db.ExportStatusCancelled, row.Status)
		require.Nil(f.t, row.StoragePath)
		require.Nil(f.t, row.ArchiveSha256)
		f.requireNoArchive(id)
		require.Empty(f.t, f.exportedFiles(id))
		require.Zero(f.t, f.events(id)[export.EventExported])
	}

	t.Run("mid-pack", func(t *testing.T) {
		t.Parallel()
		f, e := setup(t)
		h := f.handler(export.Options{})
		var stopped, once atomic.Bool
		export.SetProgressHook(h, func(ctx context.Context, p zipstream.Progress) {
			if p.FilesDone != 3 || !once.CompareAndSwap(false, true) {
				return
			}
			cancel(f, e.ID)
			// Hold the archive here until the run notices; it must, by
			// itself, within a few progress intervals.
			select {
			case <-ctx.Done():
				stopped.Store(true)
			case <-time.After(10 * time.Second):
			}
		})
		require.NoError(t, f.run(context.Background(), h, e.ID), "a cancelled export is not an error")
		require.True(t, stopped.Load(), "the run noticed the cancel while packing")
		requireCancelled(f, e.ID)
		require.Contains(t, f.logs.String(), "export cancelled")
	})

	t.Run("after the last file", func(t *testing.T) {
		t.Parallel()
		f, e := setup(t)
		h := f.handler(export.Options{ProgressEvery: time.Hour}) // only the completion can notice
		export.SetProgressHook(h, func(_ context.Context, p zipstream.Progress) {
			if p.FilesDone == p.FilesTotal && p.FilesTotal > 0 && f.rowFromHook(e.ID).Status == db.ExportStatusRunning {
				cancel(f, e.ID)
			}
		})
		require.NoError(t, f.run(context.Background(), h, e.ID))
		requireCancelled(f, e.ID)
	})

	t.Run("while the upload completes in the bucket", func(t *testing.T) {
		t.Parallel()
		f, e := setup(t)
		h := f.handler(export.Options{ProgressEvery: time.Hour})
		inS3, release := make(chan struct{}), make(chan struct{})
		export.SetFinishHook(h, func(context.Context) {
			close(inS3)
			<-release
		})
		runDone := make(chan error, 1)
		go func() { runDone <- f.run(context.Background(), h, e.ID) }()
		<-inS3
		// The cancel must not wait on the S3 step: it returns, within its
		// bound, while that step is still held.
		ctx, stop := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := f.pg.Q.ExportLogCancel(ctx, db.ExportLogCancelParams{ID: e.ID, OrgID: f.org.ID})
		stop()
		if err != nil {
			close(release)
			t.Fatalf("the cancel waited on the export's S3 step: %v (the run: %v)", err, <-runDone)
		}
		select {
		case err := <-runDone:
			t.Fatalf("the run ended before its S3 step was released: %v", err)
		default:
		}
		close(release)
		require.NoError(t, <-runDone)
		requireCancelled(f, e.ID)
	})

	t.Run("redelivered after a run left an archive", func(t *testing.T) {
		t.Parallel()
		for _, status := range []string{"cancelled", "failed"} {
			f, e := setup(t)
			// A run completed its upload and died before recording it; the
			// export was then cancelled (or failed) and its task delivered
			// again.
			f.s3.Put(t, f.attemptKey(e.ID, 1), []byte("PK orphan archive"), minio.PutObjectOptions{})
			f.s3.Put(t, fmt.Sprintf("orgs/%d/projects/%d/exports/%d.zip", f.org.ID, f.pr.ID, e.ID), []byte("PK old layout"), minio.PutObjectOptions{})
			_, err := f.pg.Pool.Exec(context.Background(),
				`UPDATE export_logs SET status = $2, attempts = 1, error = 'test', completed_at = now() WHERE id = $1`, e.ID, status)
			require.NoError(t, err)
			require.NoError(t, f.run(context.Background(), f.handler(export.Options{}), e.ID))
			require.Empty(t, f.exportObjects(), "a %s export keeps no archive", status)
		}
	})

	t.Run("before the run", func(t *testing.T) {
		t.Parallel()
		f, e := setup(t)
		cancel(f, e.ID)
		require.NoError(t, f.run(context.Background(), f.handler(export.Options{}), e.ID))
		requireCancelled(f, e.ID)
		require.Zero(t, f.row(e.ID).Attempts, "a cancelled export is not started")
	})

	t.Run("removes an archive a crashed attempt uploaded", func(t *testing.T) {
		t.Parallel()
		f, e := setup(t)
		// An earlier attempt completed its upload and died before recording
		// it: the row says running and the object exists.
		f.s3.Put(t, f.attemptKey(e.ID, 1), []byte("PK stale archive"), minio.PutObjectOptions{})
		_, err := f.pg.Pool.Exec(context.Background(), `UPDATE export_logs SET status = 'running', attempts = 1 WHERE id = $1`, e.ID)
		require.NoError(t, err)
		h := f.handler(export.Options{})
		var once atomic.Bool
		export.SetProgressHook(h, func(ctx context.Context, p zipstream.Progress) {
			if p.FilesDone == 2 && once.CompareAndSwap(false, true) {
				cancel(f, e.ID)
				<-ctx.Done()
			}
		})
		require.NoError(t, f.run(context.Background(), h, e.ID))
		requireCancelled(f, e.ID)
	})
}

// TestExportKilledMidwayCompletesOnce: a run cut off mid-archive (the worker
// died; here its context ends) leaves the row running and no object, and the
// redelivery starts over and completes: one object, one set of exported
// files, one exported event.
func TestExportKilledMidwayCompletesOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for i := range 10 {
		f.dataset("img"+string(rune('a'+i))+".png", testenv.RandomBytes(uint64(i), 1<<20), "image/png")
	}
	raw := f.dataset("notes.txt", testenv.TextBytes(5, 200<<10), "text/plain")
	f.approved(raw, "notes.json", []byte(`{"ok":true}`))
	e := f.newExport(`{"include_files":true,"include_annotations":false}`)
	h := f.handler(export.Options{})

	ctx, kill := context.WithCancel(context.Background())
	export.SetProgressHook(h, func(pctx context.Context, p zipstream.Progress) {
		if p.ArchiveBytes > minPartSize+(1<<20) { // a part is in the bucket
			kill()
			<-pctx.Done()
		}
	})
	err := f.run(ctx, h, e.ID)
	require.Error(t, err)
	require.NotErrorIs(t, err, asynq.SkipRetry, "an interrupted export is retried")
	row := f.row(e.ID)
	require.Equal(t, db.ExportStatusRunning, row.Status, "left for the redelivery")
	require.Equal(t, int32(1), row.Attempts)
	require.Less(t, row.FilesDone, row.FilesTotal)
	f.requireNoArchive(e.ID)

	// A worker that is killed outright cannot abort its upload: leave one
	// behind, as it would, for the redelivery to clean up.
	core := minio.Core{Client: f.s3.Store.Client}
	uploadID, err := core.NewMultipartUpload(context.Background(), f.s3.Store.Bucket, f.exportKey(e.ID), minio.PutObjectOptions{})
	require.NoError(t, err)
	_, err = core.PutObjectPart(context.Background(), f.s3.Store.Bucket, f.exportKey(e.ID), uploadID, 1,
		bytes.NewReader(testenv.RandomBytes(1, minPartSize)), minPartSize, minio.PutObjectPartOptions{})
	require.NoError(t, err)
	require.Equal(t, 1, f.incompleteUploads(f.exportKey(e.ID)))

	export.SetProgressHook(h, nil)
	require.NoError(t, f.run(context.Background(), h, e.ID))
	a := f.completedArchive(e.ID)
	require.Len(t, a.manifest.Entries, 11)
	require.Equal(t, []string{f.exportKey(e.ID)}, f.exportObjects(), "exactly one object")
	require.Zero(t, f.incompleteUploads(f.attemptKey(e.ID, 1)), "the dead worker's upload was aborted")
	require.Equal(t, int32(2), f.row(e.ID).Attempts)
	require.Equal(t, map[string]int{export.EventStarted: 2, export.EventExported: 1}, f.events(e.ID))
	require.NotNil(t, f.row(e.ID).StartedAt)
}

// TestExportRedeliveryOfFinishedExportIsNoop: a completed export delivered
// again keeps its row, object and events as they are.
func TestExportRedeliveryOfFinishedExportIsNoop(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	raw := f.dataset("a.txt", testenv.TextBytes(9, 100<<10), "text/plain")
	f.approved(raw, "a.json", []byte(`{}`))
	e := f.newExport(`{}`)
	h := f.handler(export.Options{})
	require.NoError(t, f.run(context.Background(), h, e.ID))
	before := f.row(e.ID)
	info, err := f.s3.Store.Client.StatObject(context.Background(), f.s3.Store.Bucket, f.exportKey(e.ID), minio.StatObjectOptions{})
	require.NoError(t, err)

	for range 2 {
		require.NoError(t, f.run(context.Background(), h, e.ID))
	}
	require.Equal(t, before, f.row(e.ID))
	again, err := f.s3.Store.Client.StatObject(context.Background(), f.s3.Store.Bucket, f.exportKey(e.ID), minio.StatObjectOptions{})
	require.NoError(t, err)
	require.Equal(t, info.ETag, again.ETag)
	require.Equal(t, info.LastModified, again.LastModified, "the object was not rewritten")
	require.Equal(t, map[string]int{export.EventStarted: 1, export.EventExported: 1}, f.events(e.ID))
	f.completedArchive(e.ID)
}

// TestExportTakenOverByNewerRun: while a run is stalled (its worker lost the
// task's lease, say), the export is delivered again and the new run completes
// it. The old run must then neither record nor overwrite anything.
func TestExportTakenOverByNewerRun(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for i := range 4 {
		f.dataset("x"+string(rune('a'+i))+".bin", testenv.RandomBytes(uint64(i), 512<<10), "image/png")
	}
	e := f.newExport(`{"include_files":true,"include_annotations":false}`)

	old := f.handler(export.Options{})
	paused, resume := make(chan struct{}), make(chan struct{})
	var once atomic.Bool
	export.SetProgressHook(old, func(_ context.Context, p zipstream.Progress) {
		if p.FilesDone == 2 && once.CompareAndSwap(false, true) {
			close(paused)
			<-resume
		}
	})
	oldDone := make(chan error, 1)
	go func() { oldDone <- f.run(context.Background(), old, e.ID) }()
	<-paused

	require.NoError(t, f.run(context.Background(), f.handler(export.Options{}), e.ID))
	completed := f.row(e.ID)
	require.Equal(t, db.ExportStatusCompleted, completed.Status)
	require.Equal(t, int32(2), completed.Attempts)

	close(resume)
	require.NoError(t, <-oldDone, "the overtaken run stops quietly")
	require.Equal(t, completed, f.row(e.ID), "the overtaken run changed nothing")
	f.completedArchive(e.ID) // the object is still the one the row describes
	require.Equal(t, []string{f.exportKey(e.ID)}, f.exportObjects())
	require.Contains(t, f.logs.String(), "export taken over by a newer run")
}

// TestExportProgressIsVisibleWhileRunning: the row's progress moves during the
// run, not only at the end.
func TestExportProgressIsVisibleWhileRunning(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for i := range 6 {
		f.dataset("p"+string(rune('a'+i))+".bin", testenv.RandomBytes(uint64(i), 64<<10), "image/png")
	}
	e := f.newExport(`{"include_files":true,"include_annotations":false}`)
	h := f.handler(export.Options{ProgressEvery: 10 * time.Millisecond})
	var seen atomic.Pointer[db.ExportLog]
	export.SetProgressHook(h, func(_ context.Context, p zipstream.Progress) {
		if p.FilesDone != 4 || seen.Load() != nil { // manifest + 3 files
			return
		}
		// The row catches up with what is packed within a few intervals.
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if row := f.rowFromHook(e.ID); row.FilesDone == 3 {
				seen.Store(&row)
				return
			}
		}
	})
	require.NoError(t, f.run(context.Background(), h, e.ID))
	row := seen.Load()
	require.NotNil(t, row, "progress was written while the export ran")
	require.Equal(t, db.ExportStatusRunning, row.Status)
	require.Equal(t, int32(6), row.FilesTotal)
	require.Equal(t, int64(3*64<<10), row.BytesDone)
	require.Equal(t, int64(6*64<<10), row.BytesTotal)
	f.completedArchive(e.ID)
}

// TestExportBadTasks: tasks that can never succeed end for good, with the
// reason in their error, instead of being retried.
func TestExportBadTasks(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := f.handler(export.Options{})
	cases := []struct {
		name    string
		payload string
		log     string
	}{
		{"not JSON", `{`, "bad project:export payload: not a JSON object"},
		{"no export id", `{}`, "bad project:export payload: export_id is missing"},
		{"unknown export", `{"export_id": 987654321}`, "export 987654321: export not found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tasks.Handle(h.Work).ProcessTask(context.Background(), asynq.NewTask(tasks.Export{}.Kind(), []byte(tc.payload)))
			require.ErrorIs(t, err, asynq.SkipRetry)
			require.ErrorContains(t, err, tc.log)
		})
	}

	t.Run("deleted project", func(t *testing.T) {
		e := f.newExport(`{}`)
		_, err := f.pg.Pool.Exec(context.Background(), `UPDATE projects SET deleted_at = now() WHERE id = $1`, f.pr.ID)
		require.NoError(t, err)
		err = f.run(context.Background(), h, e.ID)
		require.ErrorIs(t, err, asynq.SkipRetry)
		row := f.row(e.ID)
		require.Equal(t, db.ExportStatusFailed, row.Status)
		require.Contains(t, *row.Error, "no longer exists")
	})
}

// TestExportStorageUnreachableIsRetried: when the bucket cannot be reached the
// run fails transiently: asynq retries it, the row stays running and says why.
func TestExportStorageUnreachableIsRetried(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	raw := f.dataset("a.txt", []byte("hello"), "text/plain")
	f.approved(raw, "a.json", []byte(`{}`))
	e := f.newExport(`{}`)
	// A port nobody listens on, with one try per request instead of minio-go's ten.
	client, err := minio.New(testenv.FreeAddr(t), &minio.Options{
		Creds: credentials.NewStaticV4("x", "y", ""), Region: "us-east-1", MaxRetries: 1,
	})
	require.NoError(t, err)
	dead := &storage.Store{Client: client, Bucket: f.s3.Store.Bucket}
	h := export.NewHandler(export.Deps{Pool: f.pg.Pool, Store: dead, Options: export.Options{ProgressEvery: 10 * time.Millisecond}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = f.run(ctx, h, e.ID)
	require.Error(t, err)
	require.NotErrorIs(t, err, asynq.SkipRetry)
	row := f.row(e.ID)
	require.Equal(t, db.ExportStatusRunning, row.Status)
	require.NotNil(t, row.Error)
	require.Contains(t, *row.Error, "attempt 1 did not finish, retrying")

	// With the bucket back, the retry completes.
	require.NoError(t, f.run(context.Background(), f.handler(export.Options{}), e.ID))
	f.completedArchive(e.ID)
	require.Equal(t, int32(2), f.row(e.ID).Attempts)
}

// TestExportGivesUpAfterMaxAttempts: an export that keeps dying is failed once
// it used its attempts, instead of being requeued forever.
func TestExportGivesUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	e := f.newExport(`{}`)
	_, err := f.pg.Pool.Exec(context.Background(),
		`UPDATE export_logs SET status = 'running', attempts = 3, error = 'attempt 3 did not finish, retrying: boom' WHERE id = $1`, e.ID)
	require.NoError(t, err)
	err = f.run(context.Background(), f.handler(export.Options{MaxAttempts: 3}), e.ID)
	require.ErrorIs(t, err, asynq.SkipRetry)
	row := f.row(e.ID)
	require.Equal(t, db.ExportStatusFailed, row.Status)
	require.Contains(t, *row.Error, "gave up after 3 attempts")
	require.Contains(t, *row.Error, "boom")
}
