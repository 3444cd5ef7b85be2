package api_test

// Issue 15, item 4: bucket notifications register or retire just the keys in
// the message, authenticated by the storage's own secret.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/notification"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/admin"
	"github.com/labelq/labelq/internal/app"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
)

// rowCounts counts what a notification can write for an organization.
func rowCounts(t *testing.T, env *testenv.Env, orgID int64) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, table := range []string{"files", "file_versions", "storage_links", "outbox", "event_log", "sync_runs"} {
		var n int
		require.NoError(t, env.PG.Pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table+" WHERE org_id = $1", orgID).Scan(&n))
		out[table] = n
	}
	var gone int
	require.NoError(t, env.PG.Pool.QueryRow(context.Background(), "SELECT count(*) FROM storage_links WHERE org_id = $1 AND gone_at IS NOT NULL", orgID).Scan(&gone))
	out["storage_links gone"] = gone
	return out
}

// link is a storage_links row as a test reads it.
type link struct {
	FileID, VersionID int64
	ETag              string
	Size              int64
	Gone              bool
}

func readLink(t *testing.T, env *testenv.Env, storageID int64, key string) (link, bool) {
	t.Helper()
	var l link
	err := env.PG.Pool.QueryRow(context.Background(),
		`SELECT file_id, version_id, etag, size_bytes, gone_at IS NOT NULL FROM storage_links WHERE storage_id = $1 AND key = $2`,
		storageID, key).Scan(&l.FileID, &l.VersionID, &l.ETag, &l.Size, &l.Gone)
	if err != nil {
		return link{}, false
	}
	return l, true
}

// notifyBody is a notification as MinIO's webhook target posts it.
func notifyBody(bucket string, events ...[2]string) map[string]any {
	var records []any
	for _, e := range events {
		records = append(records, map[string]any{
			"eventVersion": "2.0", "eventSource": "minio:s3", "awsRegion": "", "eventName": e[0],
			"userIdentity": map[string]any{"principalId": "labelq-test"},
			"s3": map[string]any{
				"s3SchemaVersion": "1.0", "configurationId": "Config",
				"bucket": map[string]any{"name": bucket, "arn": "arn:aws:s3:::" + bucket},
				"object": map[string]any{"key": url.QueryEscape(e[1]), "size": 5, "eTag": "5d41402abc4b2a76b9719d911017c592", "sequencer": "1"},
			},
		})
	}
	name := ""
	if len(events) > 0 {
		name = events[0][0]
	}
	return map[string]any{"EventName": name, "Key": bucket + "/x", "Records": records}
}

// The acceptance test: a real MinIO with labelq as its webhook target. A put
// registers the key (file, version pending validation, link, file:validate
// queued) within a second or so; a removal marks the link gone; a replay writes
// nothing; a wrong secret is 401 and writes nothing.
func TestBucketNotificationsFromMinIO(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// This test's MinIO is labelq's own S3: its bucket holds the storage.
	s3, err := testenv.StartMinIO(ctx)
	require.NoError(t, err)
	t.Cleanup(s3.Stop)
	env := testenv.New(t)
	bucket := "notify-test"
	a, err := app.New(ctx, env.Config(t, map[string]string{
		"LABELQ_S3_ENDPOINT": s3.Endpoint, "LABELQ_S3_ACCESS_KEY": s3.AccessKey, "LABELQ_S3_SECRET_KEY": s3.SecretKey,
		"LABELQ_S3_BUCKET": bucket,
	}), testenv.Quiet())
	require.NoError(t, err)
	t.Cleanup(a.Close)

	// The API, recording what MinIO posts so that the test can replay it.
	var (
		mu     sync.Mutex
		posted [][]byte
		heads  []int
	)
	h := a.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/notifications") {
			h.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		mu.Lock()
		if r.Method == http.MethodHead {
			heads = append(heads, rec.Code)
		} else if rec.Code == http.StatusOK {
			posted = append(posted, body)
		}
		mu.Unlock()
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(srv.Close)
	tok, err := admin.CreateToken(ctx, env.PG.Pool, "org-a", "test")
	require.NoError(t, err)
	c := client{t, srv.URL, tok.Secret}

	r := c.do("POST", "/v1/projects", map[string]any{"name": "notified"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	r = c.do("POST", fmt.Sprintf("/v1/projects/%d/storages", id(t, r)), map[string]any{"name": "drop", "prefix": "drop/"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	storageID := id(t, r)
	secret := r.json(t)["notify_secret"].(string)
	notifyPath := fmt.Sprintf("/v1/storages/%d/notifications", storageID)
	require.True(t, strings.HasSuffix(r.json(t)["notification_url"].(string), notifyPath), "the storage names the URL to point the bucket at: %s", r.Body)
	prefix := fmt.Sprintf("orgs/%d/drop/", tok.OrgID)

	// MinIO again on the same data, now with labelq as its webhook target
	// (MINIO_NOTIFY_WEBHOOK_*), and the bucket's events sent there.
	s3.Kill()
	s3b, err := testenv.StartMinIOAt(ctx, s3.Dir, s3.AccessKey, s3.SecretKey, s3.Endpoint,
		"MINIO_NOTIFY_WEBHOOK_ENABLE_LABELQ=on",
		"MINIO_NOTIFY_WEBHOOK_ENDPOINT_LABELQ="+srv.URL+notifyPath,
		"MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_LABELQ="+secret)
	require.NoError(t, err)
	t.Cleanup(s3b.Kill)
	qc := notification.NewConfig(notification.NewArn("minio", "sqs", "", "LABELQ", "webhook"))
	qc.AddEvents(notification.ObjectCreatedAll, notification.ObjectRemovedAll)
	qc.AddFilterPrefix(prefix)
	var nc notification.Configuration
	require.True(t, nc.AddQueue(qc))
	// MinIO registers its webhook targets in the background after it answers
	// health checks: until then the ARN "does not exist". Wait for it (bounded).
	var setErr error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if setErr = a.Store.Client.SetBucketNotification(ctx, bucket, nc); setErr == nil {
			break
		}
	}
	require.NoError(t, setErr, "MinIO never accepted the bucket notification for its LABELQ webhook target")

	key := prefix + "batch 1/cat+dog.txt" // a space and a '+': the event's key is form-encoded
	before := rowCounts(t, env, tok.OrgID)
	start := time.Now()
	_, err = a.Store.Client.PutObject(ctx, bucket, key, strings.NewReader("hello"), 5, minio.PutObjectOptions{ContentType: "text/plain"})
	require.NoError(t, err)
	var l link
	require.Eventually(t, func() bool {
		var ok bool
		l, ok = readLink(t, env, storageID, key)
		return ok
	}, 5*time.Second, 10*time.Millisecond, "the put registered no link")
	t.Logf("MinIO put → key registered in %v", time.Since(start))

	var (
		path, status string
		sid          *int64
	)
	require.NoError(t, env.PG.Pool.QueryRow(ctx, `SELECT storage_path, validation_status, storage_id FROM file_versions WHERE id = $1 AND file_id = $2`,
		l.VersionID, l.FileID).Scan(&path, &status, &sid))
	require.Equal(t, key, path)
	require.Equal(t, "pending", status)
	require.Equal(t, storageID, *sid)
	require.Equal(t, int64(5), l.Size)
	require.NotEmpty(t, l.ETag)
	testenv.RequireQueued(t, env.PG.Pool, tok.OrgID, tasks.Validate{VersionID: l.VersionID})
	after := rowCounts(t, env, tok.OrgID)
	require.Equal(t, before["files"]+1, after["files"])
	require.Equal(t, before["file_versions"]+1, after["file_versions"])
	require.Equal(t, before["storage_links"]+1, after["storage_links"])

	mu.Lock()
	require.Len(t, posted, 1, "one put, one notification")
	put := posted[0]
	for _, code := range heads {
		require.Equal(t, http.StatusOK, code, "MinIO's HEAD check with the secret")
	}
	mu.Unlock()

	// The same notification again (a webhook retried): nothing new.
	bucketCall := client{t, srv.URL, secret}
	r = bucketCall.do("POST", notifyPath, put)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	require.Equal(t, float64(1), r.json(t)["unchanged"], string(r.Body))
	require.Equal(t, float64(0), r.json(t)["new"], string(r.Body))
	require.Equal(t, after, rowCounts(t, env, tok.OrgID), "a replay writes nothing")

	// A wrong secret, no secret, an API token and a storage that does not exist
	// are one 401, and nothing is written.
	other := strings.Replace(string(put), "cat+dog", "mouse", 1)
	refused := []reply{
		client{t, srv.URL, secret + "x"}.do("POST", notifyPath, other),
		client{t, srv.URL, ""}.do("POST", notifyPath, other),
		c.do("POST", notifyPath, other),
		bucketCall.do("POST", fmt.Sprintf("/v1/storages/%d/notifications", storageID+1000), other),
	}
	for i, rr := range refused {
		require.Equal(t, http.StatusUnauthorized, rr.Status, "%d: %s", i, rr.Body)
		require.Equal(t, "application/problem+json", rr.Header.Get("Content-Type"))
		require.Equal(t, string(refused[0].Body), string(rr.Body), "%d: every refusal is alike", i)
		require.NotContains(t, string(rr.Body), secret)
	}
	require.Equal(t, after, rowCounts(t, env, tok.OrgID), "a refused notification writes nothing")

	// A removal retires the key.
	start = time.Now()
	require.NoError(t, a.Store.Client.RemoveObject(ctx, bucket, key, minio.RemoveObjectOptions{}))
	require.Eventually(t, func() bool {
		l, ok := readLink(t, env, storageID, key)
		return ok && l.Gone
	}, 5*time.Second, 10*time.Millisecond, "the removal did not mark the link gone")
	t.Logf("MinIO remove → link gone in %v", time.Since(start))
	final := rowCounts(t, env, tok.OrgID)
	require.Equal(t, after["file_versions"], final["file_versions"], "a removal makes no version")
	require.Equal(t, 1, final["storage_links gone"])
}

// Records of another bucket, outside the storage's prefix, of other events or
// with keys that are not URL-encoded are ignored and counted; S3's test event
// and HEAD are answered 200; the body is capped.
func TestNotificationsIgnoreWhatIsNotTheStorages(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	s := w.seed(t)
	path := fmt.Sprintf("/v1/storages/%d/notifications", s.StorageID)
	bucketCall := client{t, w.server.URL, s.StorageSecret}
	own := w.env.S3.Store.Bucket
	prefix := fmt.Sprintf("orgs/%d/incoming/", w.orgAID)
	before := rowCounts(t, w.env, w.orgAID)

	msg := notifyBody(own,
		[2]string{"s3:ObjectCreated:Put", prefix + "a b+c.txt"},
		[2]string{"s3:ObjectCreated:Put", fmt.Sprintf("orgs/%d/elsewhere/x.txt", w.orgAID)},
		[2]string{"s3:ObjectCreated:Put", "orgs/999999/incoming/x.txt"},
		[2]string{"s3:ObjectAccessed:Get", prefix + "read.txt"},
		[2]string{"s3:ObjectRemoved:Delete", prefix + "never-linked.txt"},
	)
	msg["Records"] = append(msg["Records"].([]any), notifyBody("another-bucket", [2]string{"s3:ObjectCreated:Put", prefix + "y.txt"})["Records"].([]any)...)
	bad := notifyBody(own, [2]string{"s3:ObjectCreated:Put", "x"})["Records"].([]any)[0].(map[string]any)
	bad["s3"].(map[string]any)["object"].(map[string]any)["key"] = prefix + "%zz"
	msg["Records"] = append(msg["Records"].([]any), bad)

	r := bucketCall.do("POST", path, msg)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	got := r.json(t)
	for k, want := range map[string]float64{
		"storage_id": float64(s.StorageID), "records": 7, "created": 1, "removed": 1,
		"other_bucket": 1, "outside_prefix": 2, "other_events": 1, "bad_keys": 1,
		"new": 1, "changed": 0, "unchanged": 0, "gone": 0,
	} {
		require.Equal(t, want, got[k], "%s: %s", k, r.Body)
	}
	_, ok := readLink(t, w.env, s.StorageID, prefix+"a b+c.txt")
	require.True(t, ok, "the event's key is URL-decoded")
	after := rowCounts(t, w.env, w.orgAID)
	require.Equal(t, before["storage_links"]+1, after["storage_links"], "only the storage's key is linked")

	// S3's test event when notifications are configured, and MinIO's HEAD.
	r = bucketCall.do("POST", path, map[string]any{"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-12-02T18:00:00.000Z", "Bucket": own})
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	require.Equal(t, float64(0), r.json(t)["records"])
	r = bucketCall.do("HEAD", path, nil)
	require.Equal(t, http.StatusOK, r.Status)
	r = client{t, w.server.URL, "lqn_wrong"}.do("HEAD", path, nil)
	require.Equal(t, http.StatusUnauthorized, r.Status)

	// Malformed and oversized messages are problems, and write nothing.
	r = bucketCall.do("POST", path, `{"Records": [`)
	require.Equal(t, http.StatusBadRequest, r.Status, string(r.Body))
	r = bucketCall.do("POST", path, `{"Records": [`+strings.Repeat(`{"eventName": "s3:ObjectAccessed:Get"},`, 10000)+`{}]}`)
	require.Equal(t, http.StatusRequestEntityTooLarge, r.Status, string(r.Body))
	require.Equal(t, after, rowCounts(t, w.env, w.orgAID))

	// A disabled storage takes no notification: refused like a wrong secret.
	r = w.orgA.do("PATCH", fmt.Sprintf("/v1/storages/%d", s.StorageID), map[string]any{"enabled": false})
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	r = bucketCall.do("POST", path, msg)
	require.Equal(t, http.StatusUnauthorized, r.Status, string(r.Body))
}

// Notifications have their own budget per storage, apart from the tokens'.
func TestNotificationsAreRateLimitedPerStorage(t *testing.T) {
	t.Parallel()
	w := newFixtureWith(t, map[string]string{"LABELQ_API_RATE_LIMIT": "3/min"})
	r := w.orgA.do("POST", "/v1/projects", map[string]any{"name": "limited"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	r = w.orgA.do("POST", fmt.Sprintf("/v1/projects/%d/storages", id(t, r)), map[string]any{"name": "s", "prefix": "s/"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	path := fmt.Sprintf("/v1/storages/%d/notifications", id(t, r))
	bucketCall := client{t, w.server.URL, r.json(t)["notify_secret"].(string)}
	for i := range 3 {
		r = bucketCall.do("POST", path, map[string]any{"Records": []any{}})
		require.Equal(t, http.StatusOK, r.Status, "notification %d: %s", i, r.Body)
	}
	r = bucketCall.do("POST", path, map[string]any{"Records": []any{}})
	require.Equal(t, http.StatusTooManyRequests, r.Status, string(r.Body))
	require.NotEmpty(t, r.Header.Get("Retry-After"))
	require.Contains(t, string(r.Body), "this storage's notifications")
	// The token that made two requests still has one.
	require.Equal(t, http.StatusOK, w.orgA.do("GET", "/v1/projects", nil).Status)
}
