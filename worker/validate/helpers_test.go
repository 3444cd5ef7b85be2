package validate_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/metrics"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/worker/validate"
)

// harness is one test's services with a handler over them.
type harness struct {
	env     *testenv.Env
	h       *validate.Handler
	metrics *metrics.Metrics
	logs    *syncBuffer
	// s3c uploads the way a client that sends S3 additional checksums does
	// (trailing checksum headers), which storage's own client does not.
	s3c *minio.Client
}

func newHarness(t testing.TB, opts validate.Options) *harness {
	t.Helper()
	env := testenv.New(t)
	logs := &syncBuffer{}
	m := metrics.New()
	h := validate.NewHandler(validate.Deps{
		Pool: env.PG.Pool, Store: env.S3.Store, Metrics: m, Options: opts,
		Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	s3c, err := minio.New(env.S3.Endpoint, &minio.Options{
		Creds: credentials.NewStaticV4(env.S3.AccessKey, env.S3.SecretKey, ""), Region: "us-east-1",
		TrailingHeaders: true,
	})
	require.NoError(t, err)
	return &harness{env: env, h: h, metrics: m, logs: logs, s3c: s3c}
}

// process runs the handler on a version the way asynq would.
func (hs *harness) process(t testing.TB, versionID int64) error {
	t.Helper()
	task, err := tasks.NewTask(tasks.Validate{VersionID: versionID})
	require.NoError(t, err)
	return tasks.Handle(hs.h.Work).ProcessTask(context.Background(), task)
}

func (hs *harness) version(t testing.TB, id int64) db.FileVersion {
	t.Helper()
	v, err := hs.env.PG.Q.FileVersionGetByID(context.Background(), id)
	require.NoError(t, err)
	return v
}

func (hs *harness) events(t testing.TB, v db.FileVersion) []db.EventLog {
	t.Helper()
	evs, err := hs.env.PG.Q.EventLogListByEntity(context.Background(), db.EventLogListByEntityParams{
		OrgID: v.OrgID, EntityType: db.EntityTypeFileVersion, EntityID: v.ID, MaxRows: 100,
	})
	require.NoError(t, err)
	return evs
}

// outboxRow is what a test needs to know about a queued task.
type outboxRow struct {
	ID       int64
	TaskType string
	TaskID   string
}

// outbox lists an organization's outbox rows after the given id. (The outbox has no
// per-organization listing query: production code never needs one.)
func (hs *harness) outbox(t testing.TB, orgID, afterID int64) []outboxRow {
	t.Helper()
	rows, err := hs.env.PG.Pool.Query(context.Background(),
		"SELECT id, task_type, task_id FROM outbox WHERE org_id = $1 AND id > $2 ORDER BY id", orgID, afterID)
	require.NoError(t, err)
	defer rows.Close()
	var out []outboxRow
	for rows.Next() {
		var r outboxRow
		require.NoError(t, rows.Scan(&r.ID, &r.TaskType, &r.TaskID))
		out = append(out, r)
	}
	require.NoError(t, rows.Err())
	return out
}

func (hs *harness) lastOutboxID(t testing.TB) int64 {
	t.Helper()
	var id int64
	require.NoError(t, hs.env.PG.Pool.QueryRow(context.Background(), "SELECT COALESCE(max(id), 0) FROM outbox").Scan(&id))
	return id
}

func (hs *harness) jobsFor(t testing.TB, v db.FileVersion) []db.AnnotationJob {
	t.Helper()
	jobs, err := hs.env.PG.Q.AnnotationJobListByProject(context.Background(), db.AnnotationJobListByProjectParams{
		ProjectID: v.ProjectID, OrgID: v.OrgID, MaxRows: 1000,
	})
	require.NoError(t, err)
	var out []db.AnnotationJob
	for _, j := range jobs {
		if j.FileVersionID == v.ID {
			out = append(out, j)
		}
	}
	return out
}

func (hs *harness) file(t testing.TB, orgID, id int64) db.File {
	t.Helper()
	f, err := hs.env.PG.Q.FileGet(context.Background(), db.FileGetParams{ID: id, OrgID: orgID})
	require.NoError(t, err)
	return f
}

// put stores content under key with the given options, through the checksum-capable
// client when opts asks for a checksum.
func (hs *harness) put(t testing.TB, key string, content []byte, opts minio.PutObjectOptions) minio.UploadInfo {
	t.Helper()
	c := hs.env.S3.Store.Client
	if opts.Checksum.IsSet() || opts.AutoChecksum.IsSet() {
		c = hs.s3c
	}
	info, err := c.PutObject(context.Background(), hs.env.S3.Store.Bucket, key, bytes.NewReader(content), int64(len(content)), opts)
	require.NoError(t, err)
	return info
}

// Content makers.

func csvBytes(rows int) []byte {
	var b bytes.Buffer
	b.WriteString("id,label,comment\n")
	for i := range rows {
		fmt.Fprintf(&b, "%d,%s,row number %d of the sample\n", i, []string{"cat", "dog", "bird"}[i%3], i)
	}
	return b.Bytes()
}

type zipEntry struct {
	name   string
	body   []byte
	method uint16
}

func zipBytes(t testing.TB, entries ...zipEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, e := range entries {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: e.method})
		require.NoError(t, err)
		_, err = w.Write(e.body)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	return b.Bytes()
}

// elfBytes is the start of a 64-bit x86-64 Linux executable.
func elfBytes() []byte {
	h := make([]byte, 64)
	copy(h, "\x7fELF")
	h[4], h[5], h[6] = 2, 1, 1                  // 64-bit, little endian, version 1
	binary.LittleEndian.PutUint16(h[16:], 2)    // ET_EXEC
	binary.LittleEndian.PutUint16(h[18:], 0x3e) // x86-64
	binary.LittleEndian.PutUint32(h[20:], 1)    // EV_CURRENT
	binary.LittleEndian.PutUint16(h[52:], 64)   // header size
	return append(h, bytes.Repeat([]byte{0x90}, 4096)...)
}

func ptr[T any](v T) *T { return &v }

// syncBuffer collects log output written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
