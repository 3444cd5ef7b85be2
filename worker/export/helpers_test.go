package export_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/metrics"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/worker/export"
)

// minPartSize is S3's smallest multipart part. Tests use it so that a few MiB
// of files already span several parts, and aborts happen with parts uploaded.
const minPartSize = 5 << 20

// fixture is one test's services, organization and project.
type fixture struct {
	t       testing.TB
	pg      *testenv.PG
	s3      *testenv.S3
	org     db.Organization
	pr      db.Project
	log     *slog.Logger
	logs    *testenv.LogBuffer
	metrics *metrics.Metrics
	// keys and res are the handler's storage resolver: labelq's bucket, and
	// what a test allows beside it (useRemote).
	keys *storage.Keyring
	res  *storage.Resolver
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	pg := testenv.Postgres(t)
	org := pg.Org(t)
	log, logs := testenv.Logger(t)
	f := &fixture{
		t: t, pg: pg, s3: testenv.MinIO(t), org: org, pr: pg.Project(t, org.ID),
		log: log, logs: logs, metrics: metrics.New(), keys: testenv.StorageKeyring(t),
	}
	f.res = testenv.StorageResolver(t, pg, f.s3, f.keys)
	return f
}

// useRemote returns a bucket on a second MinIO server, whose endpoint the
// fixture's resolver now allows: handlers built after this reach it.
func (f *fixture) useRemote() *testenv.S3 {
	f.t.Helper()
	remote := testenv.SecondMinIO(f.t)
	f.res = testenv.StorageResolver(f.t, f.pg, f.s3, f.keys, remote.Endpoint)
	return remote
}

// handler builds a project:export handler over the fixture's services. Tests
// write progress often, so that a cancel is noticed quickly.
func (f *fixture) handler(opts export.Options) *export.Handler {
	if opts.ProgressEvery == 0 {
		opts.ProgressEvery = 20 * time.Millisecond
	}
	if opts.PartSize == 0 {
		opts.PartSize = minPartSize
	}
	return export.NewHandler(export.Deps{
		Pool: f.pg.Pool, Store: f.s3.Store, Storages: f.res, Metrics: f.metrics, Version: "test", Options: opts,
		Log: f.log,
	})
}

// version is a stored, validated file version and the bytes it was validated with.
type version struct {
	db.FileVersion
	File    db.File
	Content []byte
}

// put stores content under a fresh key.
func (f *fixture) put(content []byte) string {
	key := fmt.Sprintf("uploads/%d/%s", f.pr.ID, randHex())
	f.s3.Put(f.t, key, content, minio.PutObjectOptions{})
	return key
}

// file creates a file of the given type in the project.
func (f *fixture) file(name string, typ db.FileType) db.File {
	f.t.Helper()
	fl, err := f.pg.Q.FileCreate(context.Background(), db.FileCreateParams{
		OrgID: f.org.ID, ProjectID: f.pr.ID, Name: name, FileType: typ,
	})
	require.NoError(f.t, err)
	return fl
}

// valid uploads content as the file's next version and marks it valid with the
// checksum, size and type a validator would have measured; dataset versions
// become the file's active version.
func (f *fixture) valid(fl db.File, content []byte, mime string) version {
	f.t.Helper()
	ctx := context.Background()
	v := f.pg.RegisterVersion(f.t, fl, f.put(content), testenv.Declared{})
	sum, size, now := testenv.SHA256Hex(content), int64(len(content)), time.Now()
	require.NoError(f.t, f.pg.Q.FileVersionMarkValid(ctx, db.FileVersionMarkValidParams{
		ID: v.ID, Checksum: &sum, SizeBytes: &size, MimeType: &mime, ValidatedAt: &now,
	}))
	v, err := f.pg.Q.FileVersionGetByID(ctx, v.ID)
	require.NoError(f.t, err)
	if fl.FileType == db.FileTypeDataset {
		_, err = f.pg.Q.FileActivateVersion(ctx, db.FileActivateVersionParams{
			VersionID: v.ID, MarkReady: true, FileID: fl.ID, VersionNumber: v.VersionNumber,
		})
		require.NoError(f.t, err)
	}
	return version{FileVersion: v, File: fl, Content: content}
}

// dataset creates a dataset file with one valid version.
func (f *fixture) dataset(name string, content []byte, mime string) version {
	return f.valid(f.file(name, db.FileTypeDataset), content, mime)
}

// approved gives raw an annotation job whose result (a new annotation_results
// file) is approved.
func (f *fixture) approved(raw version, resultName string, result []byte) version {
	f.t.Helper()
	res := f.valid(f.file(resultName, db.FileTypeAnnotationResults), result, "application/json")
	f.job(raw, db.ReviewStatusApproved, &res.ID)
	return res
}

// job creates raw's annotation job with the given review status and result.
func (f *fixture) job(raw version, review db.ReviewStatus, result *int64) {
	f.t.Helper()
	ctx := context.Background()
	j, err := f.pg.Q.AnnotationJobCreate(ctx, db.AnnotationJobCreateParams{
		OrgID: f.org.ID, ProjectID: f.pr.ID, FileID: raw.File.ID, FileVersionID: raw.ID, Priority: db.JobPriorityMedium,
	})
	require.NoError(f.t, err)
	status := db.JobStatusReviewed
	_, err = f.pg.Q.AnnotationJobUpdate(ctx, db.AnnotationJobUpdateParams{
		ID: j.ID, OrgID: f.org.ID, Status: &status, ReviewStatus: &review, ResultVersionID: result,
	})
	require.NoError(f.t, err)
}

// llm stores a model output made from src, as file:preannotate does.
func (f *fixture) llm(src version, content []byte) version {
	f.t.Helper()
	fl := f.file(src.File.Name+".llm.json", db.FileTypeLlmOutput)
	sum, size, mime, model := testenv.SHA256Hex(content), int64(len(content)), "application/json", "test-model"
	v, err := f.pg.Q.FileVersionCreateLLMOutput(context.Background(), db.FileVersionCreateLLMOutputParams{
		OrgID: f.org.ID, ProjectID: f.pr.ID, FileID: fl.ID, StoragePath: f.put(content), Checksum: &sum,
		SizeBytes: &size, MimeType: &mime, SourceFileVersionID: &src.ID, LlmModel: &model, LlmParams: json.RawMessage(`{}`),
	})
	require.NoError(f.t, err)
	return version{FileVersion: v, File: fl, Content: content}
}

// newExport requests an export with the given options (JSON), as the API does.
func (f *fixture) newExport(options string) db.ExportLog {
	f.t.Helper()
	e, err := f.pg.Q.ExportLogCreate(context.Background(), db.ExportLogCreateParams{
		OrgID: f.org.ID, ProjectID: f.pr.ID, Options: json.RawMessage(options),
	})
	require.NoError(f.t, err)
	return e
}

// run processes the export's task the way asynq would.
func (f *fixture) run(ctx context.Context, h *export.Handler, exportID int64) error {
	f.t.Helper()
	task, err := tasks.NewTask(tasks.Export{ExportID: exportID})
	require.NoError(f.t, err)
	return tasks.Handle(h.Work).ProcessTask(ctx, task)
}

func (f *fixture) row(id int64) db.ExportLog {
	f.t.Helper()
	e, err := f.pg.Q.ExportLogGet(context.Background(), db.ExportLogGetParams{ID: id, OrgID: f.org.ID})
	require.NoError(f.t, err)
	return e
}

// rowFromHook reads the row from a handler's goroutine, where a test may not
// stop itself: errors are reported and the zero row returned.
func (f *fixture) rowFromHook(id int64) db.ExportLog {
	e, err := f.pg.Q.ExportLogGet(context.Background(), db.ExportLogGetParams{ID: id, OrgID: f.org.ID})
	if err != nil {
		f.t.Errorf("read export %d: %v", id, err)
	}
	return e
}

// exportKey is where the export's latest run (the row's attempts) uploads:
// for a completed export, its archive.
func (f *fixture) exportKey(id int64) string {
	return f.attemptKey(id, f.row(id).Attempts)
}

// attemptKey is where run attempt of export id uploads.
func (f *fixture) attemptKey(id int64, attempt int32) string {
	return fmt.Sprintf("orgs/%d/projects/%d/exports/%d/attempt-%d.zip", f.org.ID, f.pr.ID, id, attempt)
}

// download reads a whole object.
func (f *fixture) download(key string) []byte {
	f.t.Helper()
	obj, err := f.s3.Store.Client.GetObject(context.Background(), f.s3.Store.Bucket, key, minio.GetObjectOptions{})
	require.NoError(f.t, err)
	defer func() { _ = obj.Close() }()
	b, err := io.ReadAll(obj)
	require.NoError(f.t, err, "read %s", key)
	return b
}

// objects lists the keys under prefix.
func (f *fixture) objects(prefix string) []string {
	f.t.Helper()
	var keys []string
	for o := range f.s3.Store.Client.ListObjects(context.Background(), f.s3.Store.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		require.NoError(f.t, o.Err)
		keys = append(keys, o.Key)
	}
	return keys
}

// exportObjects lists the project's export archives.
func (f *fixture) exportObjects() []string {
	return f.objects(fmt.Sprintf("orgs/%d/projects/%d/exports/", f.org.ID, f.pr.ID))
}

// incompleteUploads counts the multipart uploads of key that were neither
// completed nor aborted.
func (f *fixture) incompleteUploads(key string) int {
	f.t.Helper()
	n := 0
	for u := range f.s3.Store.Client.ListIncompleteUploads(context.Background(), f.s3.Store.Bucket, key, false) {
		require.NoError(f.t, u.Err)
		if u.Key == key {
			n++
		}
	}
	return n
}

func (f *fixture) requireNoArchive(id int64) {
	f.t.Helper()
	require.Empty(f.t, f.exportObjects(), "no archive may be left")
	for a := int32(1); a <= f.row(id).Attempts; a++ {
		require.Zero(f.t, f.incompleteUploads(f.attemptKey(id, a)), "no multipart upload may be left")
	}
}

func (f *fixture) events(id int64) map[string]int {
	f.t.Helper()
	evs, err := f.pg.Q.EventLogListByEntity(context.Background(), db.EventLogListByEntityParams{
		OrgID: f.org.ID, EntityType: db.EntityTypeExport, EntityID: id, MaxRows: 1000,
	})
	require.NoError(f.t, err)
	out := map[string]int{}
	for _, e := range evs {
		out[e.EventType]++
	}
	return out
}

func (f *fixture) exportedFiles(id int64) map[string]int64 {
	f.t.Helper()
	rows, err := f.pg.Q.ExportedFileListByExport(context.Background(), db.ExportedFileListByExportParams{ExportID: id, OrgID: f.org.ID})
	require.NoError(f.t, err)
	out := make(map[string]int64, len(rows))
	for _, r := range rows {
		out[r.ArchivePath] = r.FileVersionID
	}
	return out
}

// archive is a downloaded export, opened.
type archive struct {
	raw      []byte
	zr       *zip.Reader
	manifest manifest
	index    [][]string
}

type manifest struct {
	ExportID      int64           `json:"export_id"`
	ProjectID     int64           `json:"project_id"`
	ProjectName   string          `json:"project_name"`
	Options       json.RawMessage `json:"options"`
	Format        string          `json:"format"`
	CreatedAt     time.Time       `json:"created_at"`
	LabelqVersion string          `json:"labelq_version"`
	Entries       []struct {
		Path          string `json:"path"`
		FileID        int64  `json:"file_id"`
		VersionID     int64  `json:"version_id"`
		VersionNumber int32  `json:"version_number"`
		SHA256        string `json:"sha256"`
		Size          int64  `json:"size"`
		MIMEType      string `json:"mime_type"`
	} `json:"entries"`
}

// completedArchive checks that export id completed, that its row describes the
// object in the bucket exactly, and that the object is a sound ZIP (Go's
// reader and Info-ZIP's unzip -t agree) whose manifest matches its bytes.
func (f *fixture) completedArchive(id int64) *archive {
	f.t.Helper()
	e := f.row(id)
	require.Equal(f.t, db.ExportStatusCompleted, e.Status, "error: %v", e.Error)
	require.Equal(f.t, f.exportKey(id), *e.StoragePath)
	require.Nil(f.t, e.Error)
	require.NotNil(f.t, e.CompletedAt)
	raw := f.download(*e.StoragePath)
	require.Equal(f.t, testenv.SHA256Hex(raw), *e.ArchiveSha256, "archive_sha256 must be the stored object's")
	require.Equal(f.t, int64(len(raw)), *e.SizeBytes, "size_bytes must be the stored object's")
	require.Equal(f.t, e.FilesTotal, e.FilesDone, "progress must reach the file total")
	require.Equal(f.t, e.BytesTotal, e.BytesDone, "progress must reach the byte total")
	require.Equal(f.t, e.FilesTotal, *e.FileCount)
	unzipTest(f.t, raw)

	zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	require.NoError(f.t, err)
	a := &archive{raw: raw, zr: zr}
	require.GreaterOrEqual(f.t, len(zr.File), 2)
	require.Equal(f.t, "manifest.json", zr.File[0].Name, "the manifest comes first")
	require.Equal(f.t, "index.csv", zr.File[len(zr.File)-1].Name, "the index comes last")
	require.NoError(f.t, json.Unmarshal(a.read("manifest.json"), &a.manifest))
	require.Equal(f.t, id, a.manifest.ExportID)
	require.Equal(f.t, f.pr.ID, a.manifest.ProjectID)
	require.Equal(f.t, f.pr.Name, a.manifest.ProjectName)
	require.Equal(f.t, "test", a.manifest.LabelqVersion)
	require.Len(f.t, a.manifest.Entries, len(zr.File)-2, "one manifest entry per file")
	require.Equal(f.t, int(e.FilesTotal), len(a.manifest.Entries))

	// Every manifest sum and size is that of the bytes in the archive.
	var total int64
	for i, m := range a.manifest.Entries {
		zf := zr.File[i+1]
		require.Equal(f.t, m.Path, zf.Name, "manifest order is archive order")
		b := a.read(zf.Name)
		require.Equal(f.t, m.SHA256, testenv.SHA256Hex(b), "manifest sha256 of %s", m.Path)
		require.Equal(f.t, m.Size, int64(len(b)), "manifest size of %s", m.Path)
		total += m.Size
	}
	require.Equal(f.t, e.BytesTotal, total)

	// index.csv: a header and a row per file, in manifest order.
	ix := bytes.TrimPrefix(a.read("index.csv"), []byte("\ufeff"))
	a.index, err = csv.NewReader(bytes.NewReader(ix)).ReadAll()
	require.NoError(f.t, err)
	require.Equal(f.t, "path", a.index[0][0])
	require.Len(f.t, a.index, len(a.manifest.Entries)+1, "index.csv has a row per file")

	// exported_files names every packed version under its path.
	ef := f.exportedFiles(id)
	require.Len(f.t, ef, len(a.manifest.Entries))
	for _, m := range a.manifest.Entries {
		require.Equal(f.t, m.VersionID, ef[m.Path], "exported_files row for %s", m.Path)
	}
	require.Equal(f.t, 1, f.events(id)[export.EventExported], "one exported event")
	return a
}

func (a *archive) read(name string) []byte {
	for _, zf := range a.zr.File {
		if zf.Name == name {
			rc, err := zf.Open()
			if err != nil {
				panic(err)
			}
			defer func() { _ = rc.Close() }()
			b, err := io.ReadAll(rc) // checks the CRC-32 too
			if err != nil {
				panic(fmt.Sprintf("read %s: %v", name, err))
			}
			return b
		}
	}
	panic("no entry " + name)
}

func (a *archive) names() []string {
	out := make([]string, 0, len(a.zr.File))
	for _, zf := range a.zr.File {
		out = append(out, zf.Name)
	}
	return out
}

// paths maps each manifest path to its version id.
func (a *archive) paths() map[string]int64 {
	out := make(map[string]int64, len(a.manifest.Entries))
	for _, m := range a.manifest.Entries {
		out[m.Path] = m.VersionID
	}
	return out
}

// unzipTest runs Info-ZIP's integrity test over an archive.
func unzipTest(t testing.TB, raw []byte) {
	t.Helper()
	bin := "/usr/bin/unzip"
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("unzip is required (apt-get install unzip, or `make tools`): %v", err)
	}
	path := filepath.Join(t.TempDir(), "export.zip")
	require.NoError(t, os.WriteFile(path, raw, 0o644))
	out, err := exec.Command(bin, "-t", "-qq", path).CombinedOutput()
	require.NoError(t, err, "unzip -t: %s", out)
}

func randHex() string {
	var b [6]byte
	for i := range b {
		b[i] = byte(rand.IntN(256))
	}
	return hex.EncodeToString(b[:])
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
