package validate_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
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

// fixture is one test's services with a handler over them.
type fixture struct {
	env     *testenv.Env
	h       *validate.Handler
	metrics *metrics.Metrics
	logs    *testenv.LogBuffer
	// s3c uploads the way a client that sends S3 additional checksums does
	// (trailing checksum headers), which storage's own client does not.
	s3c *minio.Client
}

func newFixture(t testing.TB, opts validate.Options) *fixture {
	t.Helper()
	env := testenv.New(t)
	log, logs := testenv.Logger(t)
	m := metrics.New()
	h := validate.NewHandler(validate.Deps{
		Pool: env.PG.Pool, Store: env.S3.Store, Metrics: m, Options: opts, Log: log,
		Storages: testenv.StorageResolver(t, env.PG, env.S3, testenv.StorageKeyring(t)),
	})
	s3c, err := minio.New(env.S3.Endpoint, &minio.Options{
		Creds: credentials.NewStaticV4(env.S3.AccessKey, env.S3.SecretKey, ""), Region: "us-east-1",
		TrailingHeaders: true,
	})
	require.NoError(t, err)
	return &fixture{env: env, h: h, metrics: m, logs: logs, s3c: s3c}
}

// process runs the handler on a version the way asynq would.
func (hs *fixture) process(t testing.TB, versionID int64) error {
	t.Helper()
	task, err := tasks.NewTask(tasks.Validate{VersionID: versionID})
	require.NoError(t, err)
	return tasks.Handle(hs.h.Work).ProcessTask(context.Background(), task)
}

func (hs *fixture) version(t testing.TB, id int64) db.FileVersion {
	t.Helper()
	v, err := hs.env.PG.Q.FileVersionGetByID(context.Background(), id)
	require.NoError(t, err)
	return v
}

func (hs *fixture) events(t testing.TB, v db.FileVersion) []db.EventLog {
	t.Helper()
	evs, err := hs.env.PG.Q.EventLogListByEntity(context.Background(), db.EventLogListByEntityParams{
		OrgID: v.OrgID, EntityType: db.EntityTypeFileVersion, EntityID: v.ID, MaxRows: 100,
	})
	require.NoError(t, err)
	return evs
}

// queuedAfter lists an organization's outbox rows after the given id.
func (hs *fixture) queuedAfter(t testing.TB, orgID, afterID int64) []db.Outbox {
	t.Helper()
	var out []db.Outbox
	for _, r := range testenv.OutboxRows(t, hs.env.PG.Pool, orgID) {
		if r.ID > afterID {
			out = append(out, r)
		}
	}
	return out
}

// lastQueuedID is the id of the organization's newest outbox row (0 with none).
func (hs *fixture) lastQueuedID(t testing.TB, orgID int64) int64 {
	t.Helper()
	rows := testenv.OutboxRows(t, hs.env.PG.Pool, orgID)
	if len(rows) == 0 {
		return 0
	}
	return rows[len(rows)-1].ID
}

func (hs *fixture) jobsFor(t testing.TB, v db.FileVersion) []db.AnnotationJob {
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

func (hs *fixture) file(t testing.TB, orgID, id int64) db.File {
	t.Helper()
	f, err := hs.env.PG.Q.FileGet(context.Background(), db.FileGetParams{ID: id, OrgID: orgID})
	require.NoError(t, err)
	return f
}

// put stores content under key with the given options, through the checksum-capable
// client when opts asks for a checksum.
func (hs *fixture) put(t testing.TB, key string, content []byte, opts minio.PutObjectOptions) minio.UploadInfo {
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
