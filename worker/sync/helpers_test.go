package storagesync_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
	storagesync "github.com/labelq/labelq/worker/sync"
)

// fixture is one test's database, bucket, organization and project, with a
// resolver that reaches the test's MinIO both as labelq's own bucket and as a
// tenant's endpoint.
type fixture struct {
	pg   *testenv.PG
	s3   *testenv.S3
	org  db.Organization
	pr   db.Project
	log  *slog.Logger
	logs *testenv.LogBuffer
	keys *storage.Keyring
	res  *storage.Resolver
	// pool is the handlers' pool: every connection flushes its statistics
	// when it goes back to the pool, so pg_stat_user_tables is exact as soon
	// as a handler returns.
	pool *pgxpool.Pool
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	pg := testenv.Postgres(t)
	s3 := testenv.MinIO(t)
	org := pg.Org(t)
	log, logs := testenv.Logger(t)
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	keys, err := storage.ParseKeyring("test:" + base64.StdEncoding.EncodeToString(raw))
	require.NoError(t, err)
	allow, err := storage.ParseAllowlist(s3.Endpoint+","+unreachable, s3.Endpoint)
	require.NoError(t, err)
	cfg, err := pgxpool.ParseConfig(pg.URL)
	require.NoError(t, err)
	cfg.MaxConns = 4
	cfg.AfterRelease = func(c *pgx.Conn) bool {
		_, err := c.Exec(context.Background(), "SELECT pg_stat_force_next_flush()")
		return err == nil
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	f := &fixture{pg: pg, s3: s3, org: org, pr: pg.Project(t, org.ID), log: log, logs: logs, keys: keys, pool: pool}
	f.res = storage.NewResolver(s3.Store, keys, allow, db.New(pool))
	return f
}

var seq atomic.Int64

// unreachable is an allowed endpoint nothing listens on (a port of the
// discard-range nobody binds in these tests).
const unreachable = "127.0.0.1:9"

// storageRow is what a test may set on a storage it creates.
type storageRow struct {
	Endpoint, Bucket, Prefix, Region string
	Creds                            *storage.Credentials
	KeyFilter, KeyFilterKind         string
	FileType                         db.FileType
	Rules                            string
	ArchiveGone                      bool
}

// ownStorage is a storage in labelq's own bucket under a fresh prefix of the
// organization's namespace.
func (f *fixture) ownStorage(t testing.TB, mod func(*storageRow)) db.Storage {
	t.Helper()
	r := storageRow{Prefix: storage.OwnPrefix(f.org.ID) + fmt.Sprintf("in-%d/", seq.Add(1)), FileType: db.FileTypeDataset, Rules: "[]", KeyFilterKind: "glob"}
	if mod != nil {
		mod(&r)
	}
	return f.createStorage(t, r)
}

// remoteStorage is a storage on the test's MinIO reached as a tenant's endpoint,
// with the given keys.
func (f *fixture) remoteStorage(t testing.TB, creds storage.Credentials, mod func(*storageRow)) db.Storage {
	t.Helper()
	r := storageRow{
		Endpoint: f.s3.Endpoint, Bucket: f.s3.Store.Bucket, Prefix: "remote/", Region: "us-east-1",
		Creds: &creds, FileType: db.FileTypeDataset, Rules: "[]", KeyFilterKind: "glob",
	}
	if mod != nil {
		mod(&r)
	}
	return f.createStorage(t, r)
}

func (f *fixture) createStorage(t testing.TB, r storageRow) db.Storage {
	t.Helper()
	var sealed []byte
	var kid *string
	hint := ""
	if r.Creds != nil {
		s, k, err := f.res.SealCredentials(f.org.ID, *r.Creds)
		require.NoError(t, err)
		sealed, kid, hint = s, &k, r.Creds.Hint()
	}
	var id int64
	err := f.pg.Pool.QueryRow(context.Background(), `
		INSERT INTO storages (org_id, project_id, name, endpoint, bucket, prefix, region, use_tls,
		    access_key_hint, credentials, credentials_key_id, key_filter, key_filter_kind, file_type, rules, archive_gone)
		VALUES ($1, $2, $3, $4, $5, $6, $7, false, $8, $9, $10, $11, $12, $13, $14::jsonb, $15)
		RETURNING id`,
		f.org.ID, f.pr.ID, fmt.Sprintf("storage %d", seq.Add(1)), r.Endpoint, r.Bucket, r.Prefix, r.Region,
		hint, sealed, kid, r.KeyFilter, r.KeyFilterKind, r.FileType, r.Rules, r.ArchiveGone,
	).Scan(&id)
	require.NoError(t, err)
	st, err := f.pg.Q.StorageGetByID(context.Background(), id)
	require.NoError(t, err)
	return st
}

// newRun is a pending sync run of st.
func (f *fixture) newRun(t testing.TB, st db.Storage) int64 {
	t.Helper()
	var id int64
	require.NoError(t, f.pg.Pool.QueryRow(context.Background(),
		`INSERT INTO sync_runs (org_id, project_id, storage_id) VALUES ($1, $2, $3) RETURNING id`,
		st.OrgID, st.ProjectID, st.ID).Scan(&id))
	return id
}

func (f *fixture) handler(d storagesync.Deps) *storagesync.Handler {
	d.Pool, d.Storages = f.pool, f.res
	if d.Log == nil {
		d.Log = f.log
	}
	if d.PageSize == 0 {
		d.PageSize = 10
	}
	return storagesync.NewHandler(d)
}

// process runs the handler on a run the way asynq would.
func process(t testing.TB, h *storagesync.Handler, runID int64) error {
	t.Helper()
	return processCtx(context.Background(), t, h, runID)
}

func processCtx(ctx context.Context, t testing.TB, h *storagesync.Handler, runID int64) error {
	t.Helper()
	task, err := tasks.NewTask(tasks.StorageSync{RunID: runID})
	require.NoError(t, err)
	return tasks.Handle(h.Work).ProcessTask(ctx, task)
}

// sync creates a run of st and runs it to its end with h, which must succeed.
func (f *fixture) sync(t testing.TB, h *storagesync.Handler, st db.Storage) db.SyncRun {
	t.Helper()
	id := f.newRun(t, st)
	require.NoError(t, process(t, h, id))
	r := f.run(t, id)
	require.Equal(t, db.SyncRunStatusCompleted, r.Status, "error: %v", r.Error)
	return r
}

func (f *fixture) run(t testing.TB, id int64) db.SyncRun {
	t.Helper()
	var r db.SyncRun
	rows, err := f.pg.Pool.Query(context.Background(), `SELECT * FROM sync_runs WHERE id = $1`, id)
	require.NoError(t, err)
	r, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[db.SyncRun])
	require.NoError(t, err)
	return r
}

// put stores content at key in the test's bucket.
func (f *fixture) put(t testing.TB, key string, content []byte) minio.UploadInfo {
	t.Helper()
	return f.s3.Put(t, key, content, minio.PutObjectOptions{})
}

func (f *fixture) remove(t testing.TB, key string) {
	t.Helper()
	require.NoError(t, f.s3.Store.Client.RemoveObject(context.Background(), f.s3.Store.Bucket, key, minio.RemoveObjectOptions{}))
}

// putN stores n small objects under prefix, named k000.txt, k001.txt, ...
func (f *fixture) putN(t testing.TB, prefix string, n int) []string {
	t.Helper()
	keys := make([]string, n)
	for i := range n {
		keys[i] = fmt.Sprintf("%sk%03d.txt", prefix, i)
		f.put(t, keys[i], []byte(fmt.Sprintf("object %d of %s", i, prefix)))
	}
	return keys
}

// link is a storage link with its version.
type link struct {
	Key           string
	FileID        int64
	VersionID     int64
	Etag          string
	Size          int64
	Gone          bool
	Name          string
	FileType      db.FileType
	FileDeleted   bool
	VersionNumber int32
	StoragePath   string
	StorageID     *int64
	ExpectedSize  *int64
	JobLanguage   *string
	JobPriority   *db.JobPriority
}

func (f *fixture) links(t testing.TB, st db.Storage) map[string]link {
	t.Helper()
	rows, err := f.pg.Pool.Query(context.Background(), `
		SELECT l.key, l.file_id, l.version_id, l.etag, l.size_bytes, l.gone_at IS NOT NULL,
		       fi.name, fi.file_type, fi.deleted_at IS NOT NULL,
		       v.version_number, v.storage_path, v.storage_id, v.expected_size, v.job_language, v.job_priority
		FROM storage_links l JOIN files fi ON fi.id = l.file_id JOIN file_versions v ON v.id = l.version_id
		WHERE l.storage_id = $1 ORDER BY l.key`, st.ID)
	require.NoError(t, err)
	out := map[string]link{}
	for rows.Next() {
		var l link
		require.NoError(t, rows.Scan(&l.Key, &l.FileID, &l.VersionID, &l.Etag, &l.Size, &l.Gone,
			&l.Name, &l.FileType, &l.FileDeleted, &l.VersionNumber, &l.StoragePath, &l.StorageID, &l.ExpectedSize,
			&l.JobLanguage, &l.JobPriority))
		out[l.Key] = l
	}
	require.NoError(t, rows.Err())
	return out
}

func (f *fixture) count(t testing.TB, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	require.NoError(t, f.pg.Pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// writes is rows inserted and updated per table, from pg_stat_user_tables.
type writes map[string][2]int64

var watched = []string{"files", "file_versions", "storage_links", "outbox"}

// writes reads the statistics of the tables a sync writes. The handlers' pool
// flushes its statistics on every release, and each query here is a
// transaction of its own, so the figures are current.
func (f *fixture) writes(t testing.TB) writes {
	t.Helper()
	// The flush runs as the pool's AfterRelease, on a goroutine of its own,
	// while the connection still counts as acquired.
	require.Eventually(t, func() bool { return f.pool.Stat().AcquiredConns() == 0 }, time.Minute, time.Millisecond)
	rows, err := f.pg.Pool.Query(context.Background(),
		`SELECT relname, n_tup_ins, n_tup_upd FROM pg_stat_user_tables WHERE relname = ANY($1)`, watched)
	require.NoError(t, err)
	w := writes{}
	for rows.Next() {
		var name string
		var ins, upd int64
		require.NoError(t, rows.Scan(&name, &ins, &upd))
		w[name] = [2]int64{ins, upd}
	}
	require.NoError(t, rows.Err())
	require.Len(t, w, len(watched))
	return w
}

// since is what was written between before and w.
func (w writes) since(before writes) writes {
	d := writes{}
	for _, n := range watched {
		d[n] = [2]int64{w[n][0] - before[n][0], w[n][1] - before[n][1]}
	}
	return d
}

func skippedOf(t testing.TB, r db.SyncRun) []map[string]string {
	t.Helper()
	var out []map[string]string
	require.NoError(t, json.NewDecoder(bytes.NewReader(r.Skipped)).Decode(&out))
	return out
}
