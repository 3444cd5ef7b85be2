package api_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
)

// The test's remote endpoints: allowed by name, or through a wildcard (one that
// an IP address would match too).
const (
	allowedEndpoint  = "s3.example.test:443"
	wildcardEndpoint = "tenant.wild.example.test:443"
)

// storageFixture serves the API with a credentials key and an allow-list.
func storageFixture(t *testing.T) *fixture {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return newFixtureWith(t, map[string]string{
		"LABELQ_SECRET_KEY":                "k1:" + base64.StdEncoding.EncodeToString(key),
		"LABELQ_STORAGE_ALLOWED_ENDPOINTS": allowedEndpoint + ",*.wild.example.test:443,*.0.0.1:9000",
	})
}

func (w *fixture) project(t *testing.T, c client, name string) int64 {
	t.Helper()
	r := c.do("POST", "/v1/projects", map[string]any{"name": name})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	return id(t, r)
}

func storagesPath(pid int64) string { return fmt.Sprintf("/v1/projects/%d/storages", pid) }

func TestStorageCreateListGetPatchDelete(t *testing.T) {
	t.Parallel()
	w := storageFixture(t)
	pid := w.project(t, w.orgA, "storages-crud")

	r := w.orgA.do("POST", storagesPath(pid), map[string]any{"name": " Incoming ", "prefix": "incoming/",
		"key_filter": "**/*.jpg", "rules": []any{map[string]any{"match": "zh/**", "language": "zh", "priority": "high"}}})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	st := r.json(t)
	sid := id(t, r)
	require.Equal(t, "Incoming", st["name"])
	require.Equal(t, "import", st["kind"])
	require.Equal(t, "", st["endpoint"])
	require.Equal(t, "", st["bucket"])
	require.Equal(t, fmt.Sprintf("orgs/%d/incoming/", w.orgAID), st["prefix"], "an own-bucket prefix is stored inside the organization's namespace")
	require.Equal(t, "dataset", st["file_type"])
	require.Equal(t, false, st["has_credentials"])
	require.Equal(t, true, st["enabled"])
	secret, _ := st["notify_secret"].(string)
	require.True(t, strings.HasPrefix(secret, "lqn_"), string(r.Body))
	require.Equal(t, fmt.Sprintf("http://localhost:8080/v1/storages/%d/notifications", sid), st["notification_url"])

	var hash []byte
	require.NoError(t, w.env.PG.Pool.QueryRow(context.Background(), `SELECT notify_secret_hash FROM storages WHERE id = $1`, sid).Scan(&hash))
	require.Len(t, hash, 32, "only the secret's SHA-256 is kept")

	r = w.orgA.do("GET", fmt.Sprintf("/v1/storages/%d", sid), nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	require.NotContains(t, string(r.Body), secret, "the secret is answered once")
	require.NotContains(t, r.json(t), "notify_secret")

	r = w.orgA.do("GET", storagesPath(pid), nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	require.Len(t, r.json(t)["items"], 1)

	r = w.orgA.do("PATCH", fmt.Sprintf("/v1/storages/%d", sid), map[string]any{"name": "renamed", "prefix": "other/", "archive_gone": true, "file_type": "annotation_results"})
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	st = r.json(t)
	require.Equal(t, "renamed", st["name"])
	require.Equal(t, fmt.Sprintf("orgs/%d/other/", w.orgAID), st["prefix"])
	require.Equal(t, true, st["archive_gone"])
	require.Equal(t, "annotation_results", st["file_type"])
	require.Equal(t, "**/*.jpg", st["key_filter"], "absent fields keep their value")

	// A prefix answered is a prefix accepted: writing it back changes nothing.
	r = w.orgA.do("PATCH", fmt.Sprintf("/v1/storages/%d", sid), map[string]any{"prefix": st["prefix"]})
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	require.Equal(t, st["prefix"], r.json(t)["prefix"])

	r = w.orgA.do("PATCH", fmt.Sprintf("/v1/storages/%d", sid), map[string]any{"kind": "export"})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
	require.Contains(t, fieldErrors(t, r), "kind")

	r = w.orgA.do("POST", storagesPath(pid), map[string]any{"name": "renamed"})
	require.Equal(t, http.StatusConflict, r.Status, "names are unique in a project: %s", r.Body)

	r = w.orgA.do("DELETE", fmt.Sprintf("/v1/storages/%d", sid), nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	r = w.orgA.do("GET", fmt.Sprintf("/v1/storages/%d", sid), nil)
	require.Equal(t, http.StatusNotFound, r.Status, string(r.Body))
	r = w.orgA.do("DELETE", fmt.Sprintf("/v1/storages/%d", sid), nil)
	require.Equal(t, http.StatusNotFound, r.Status, string(r.Body))
	r = w.orgA.do("GET", storagesPath(pid), nil)
	require.Empty(t, r.json(t)["items"])
	r = w.orgA.do("POST", storagesPath(pid), map[string]any{"name": "renamed"})
	require.Equal(t, http.StatusCreated, r.Status, "a deleted storage's name is free again: %s", r.Body)

	// An export storage has no notifications and no secret.
	r = w.orgA.do("POST", storagesPath(pid), map[string]any{"name": "out", "kind": "export", "prefix": "exports/"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	require.Nil(t, r.json(t)["notification_url"])
	require.NotContains(t, r.json(t), "notify_secret")
}

func TestStorageCredentialsAreNeverAnswered(t *testing.T) {
	t.Parallel()
	w := storageFixture(t)
	pid := w.project(t, w.orgA, "storages-creds")
	const (
		keyID   = "AKIAEXAMPLEKEY1234"
		secret  = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
		session = "SESSIONTOKENEXAMPLE0123456789"
		secret2 = "SECONDsecretACCESSkey/0987654321abcdef"
	)
	leaks := []string{keyID, secret, session, secret2, "EXAMPLEKEY1234"}
	var bodies []string
	keep := func(r reply) reply { bodies = append(bodies, string(r.Body)); return r }

	r := keep(w.orgA.do("POST", storagesPath(pid), map[string]any{
		"name": "remote", "endpoint": allowedEndpoint, "bucket": "tenant-bucket", "prefix": "in/", "region": "eu-west-1",
		"credentials": map[string]any{"access_key_id": keyID, "secret_access_key": secret, "session_token": session},
	}, "Idempotency-Key", "create-remote"))
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	sid := id(t, r)
	st := r.json(t)
	require.Equal(t, true, st["has_credentials"])
	require.Equal(t, "AKIAEX…", st["access_key_hint"])
	require.Equal(t, "in/", st["prefix"], "a remote prefix is the bucket's own")
	notifySecret := st["notify_secret"].(string)

	replay := keep(w.orgA.do("POST", storagesPath(pid), map[string]any{
		"name": "remote", "endpoint": allowedEndpoint, "bucket": "tenant-bucket", "prefix": "in/", "region": "eu-west-1",
		"credentials": map[string]any{"access_key_id": keyID, "secret_access_key": secret, "session_token": session},
	}, "Idempotency-Key", "create-remote"))
	require.Equal(t, http.StatusCreated, replay.Status, string(replay.Body))
	require.Equal(t, "true", replay.Header.Get("Idempotent-Replayed"))
	require.Equal(t, float64(sid), replay.json(t)["id"])
	require.NotContains(t, string(replay.Body), notifySecret, "a replay does not show the notification secret again")

	keep(w.orgA.do("GET", fmt.Sprintf("/v1/storages/%d", sid), nil))
	keep(w.orgA.do("GET", storagesPath(pid), nil))
	r = keep(w.orgA.do("PATCH", fmt.Sprintf("/v1/storages/%d", sid), map[string]any{
		"credentials": map[string]any{"access_key_id": keyID, "secret_access_key": secret2},
	}))
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	r = keep(w.orgA.do("POST", fmt.Sprintf("/v1/storages/%d/notify-secret", sid), nil, "Idempotency-Key", "rotate-1"))
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	rotated := r.json(t)["notify_secret"].(string)
	require.True(t, strings.HasPrefix(rotated, "lqn_"))
	require.NotEqual(t, notifySecret, rotated)
	r = keep(w.orgA.do("POST", fmt.Sprintf("/v1/storages/%d/notify-secret", sid), nil, "Idempotency-Key", "rotate-1"))
	require.Equal(t, "true", r.Header.Get("Idempotent-Replayed"))
	require.NotContains(t, string(r.Body), rotated, "a replay does not show the rotated secret again")
	var hash []byte
	require.NoError(t, w.env.PG.Pool.QueryRow(context.Background(), `SELECT notify_secret_hash FROM storages WHERE id = $1`, sid).Scan(&hash))
	sum := sha256.Sum256([]byte(rotated))
	require.Equal(t, sum[:], hash, "the rotated secret is the one kept, and a replay did not rotate again")
	keep(w.orgA.do("GET", fmt.Sprintf("/v1/events?entity_type=storage&entity_id=%d", sid), nil))
	for _, b := range bodies {
		for _, l := range leaks {
			require.NotContains(t, b, l, "an answer holds the credentials")
		}
	}

	// At rest: sealed bytes under key k1, opening to the credentials last sent.
	ctx := context.Background()
	row, err := w.env.PG.Q.StorageGetByID(ctx, sid)
	require.NoError(t, err)
	require.NotNil(t, row.CredentialsKeyID)
	require.Equal(t, "k1", *row.CredentialsKeyID)
	for _, l := range leaks {
		require.NotContains(t, string(row.Credentials), l, "the database holds the credentials in clear")
	}
	creds, err := w.a.Storages.Credentials(row)
	require.NoError(t, err)
	require.Equal(t, secret2, creds.SecretAccessKey, "new credentials replace the old ones")
	require.Empty(t, creds.SessionToken)

	// Nor in events, task payloads or remembered answers.
	for _, table := range []string{"event_log", "outbox", "idempotency_keys"} {
		var dump string
		require.NoError(t, w.env.PG.Pool.QueryRow(ctx, "SELECT coalesce(string_agg(t::text, ' '), '') FROM "+table+" t").Scan(&dump))
		for _, l := range append(leaks, notifySecret, rotated) {
			require.NotContains(t, dump, l, "%s holds a secret", table)
		}
	}

	// Stored credentials never follow the storage to another endpoint.
	r = w.orgA.do("PATCH", fmt.Sprintf("/v1/storages/%d", sid), map[string]any{"endpoint": wildcardEndpoint})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
	require.Contains(t, fieldErrors(t, r)["credentials"], "send the credentials again")
	r = w.orgA.do("PATCH", fmt.Sprintf("/v1/storages/%d", sid), map[string]any{"endpoint": wildcardEndpoint, "credentials": nil})
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	require.Equal(t, false, r.json(t)["has_credentials"])
	require.Equal(t, "", r.json(t)["access_key_hint"])
	row, err = w.env.PG.Q.StorageGetByID(ctx, sid)
	require.NoError(t, err)
	require.Nil(t, row.Credentials)

	// labelq's own bucket takes none.
	r = w.orgA.do("POST", storagesPath(pid), map[string]any{"name": "own", "credentials": map[string]any{"access_key_id": keyID, "secret_access_key": secret}})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
	require.Contains(t, fieldErrors(t, r), "credentials")
	require.NotContains(t, string(r.Body), secret)

	// A malformed credentials object names the field, not the values.
	r = w.orgA.do("POST", storagesPath(pid), map[string]any{"name": "bad", "endpoint": allowedEndpoint, "bucket": "b-bucket",
		"credentials": map[string]any{"access_key_id": keyID, "secret_access_key": secret, "password": secret}})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
	require.Contains(t, fieldErrors(t, r)["credentials"], "unknown field")
	require.NotContains(t, string(r.Body), secret)
	r = w.orgA.do("POST", storagesPath(pid), map[string]any{"name": "bad", "endpoint": allowedEndpoint, "bucket": "b-bucket",
		"credentials": map[string]any{"access_key_id": keyID}})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
	require.Contains(t, fieldErrors(t, r), "credentials.secret_access_key")
}

func TestStorageCredentialsNeedASecretKey(t *testing.T) {
	t.Parallel()
	w := newFixtureWith(t, map[string]string{"LABELQ_STORAGE_ALLOWED_ENDPOINTS": allowedEndpoint})
	pid := w.project(t, w.orgA, "no-keyring")
	r := w.orgA.do("POST", storagesPath(pid), map[string]any{"name": "remote", "endpoint": allowedEndpoint, "bucket": "tenant-bucket",
		"credentials": map[string]any{"access_key_id": "AKIAEXAMPLE", "secret_access_key": "s3cr3t-value"}})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
	require.Contains(t, fieldErrors(t, r)["credentials"], "the operator must set LABELQ_SECRET_KEY")
	require.NotContains(t, string(r.Body), "s3cr3t-value")

	r = w.orgA.do("POST", storagesPath(pid), map[string]any{"name": "public", "endpoint": allowedEndpoint, "bucket": "tenant-bucket"})
	require.Equal(t, http.StatusCreated, r.Status, "a bucket without credentials needs no key: %s", r.Body)
}

func TestStorageEndpointsOutsideTheAllowListAreRefused(t *testing.T) {
	t.Parallel()
	w := storageFixture(t)
	pid := w.project(t, w.orgA, "endpoints")
	for _, ep := range []string{
		"127.0.0.1:1", "169.254.169.254:80", "10.0.0.1:9000", "[::1]:9000", "192.168.1.10:443",
		"evil.example.com:443", "localhost:9000", "s3.example.test:80", "s3.example.test",
		"https://s3.example.test:443", "s3.example.test:443/bucket",
		"127.0.0.1:9000", // matches the wildcard *.0.0.1:9000: an address is allowed only when listed exactly
		"wild.example.test:443",
	} {
		t.Run(ep, func(t *testing.T) {
			r := w.orgA.do("POST", storagesPath(pid), map[string]any{"name": "s", "endpoint": ep, "bucket": "tenant-bucket"})
			require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
			msg := fieldErrors(t, r)["endpoint"]
			require.NotEmpty(t, msg, string(r.Body))
			require.Regexp(t, "LABELQ_STORAGE_ALLOWED_ENDPOINTS|host:port", msg)
		})
	}
	for i, ep := range []string{allowedEndpoint, "S3.Example.Test:443", wildcardEndpoint} {
		r := w.orgA.do("POST", storagesPath(pid), map[string]any{"name": fmt.Sprintf("ok-%d", i), "endpoint": ep, "bucket": "tenant-bucket"})
		require.Equal(t, http.StatusCreated, r.Status, "%s: %s", ep, r.Body)
		require.Equal(t, strings.ToLower(ep), r.json(t)["endpoint"])
	}
	r := w.orgA.do("POST", storagesPath(pid), map[string]any{"name": "no-bucket", "endpoint": allowedEndpoint})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
	require.Contains(t, fieldErrors(t, r), "bucket")

	// By default only labelq's own endpoint is allowed, and not its own bucket.
	d := newFixture(t)
	dpid := d.project(t, d.orgA, "default-allowlist")
	r = d.orgA.do("POST", storagesPath(dpid), map[string]any{"name": "s", "endpoint": allowedEndpoint, "bucket": "tenant-bucket"})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
	r = d.orgA.do("POST", storagesPath(dpid), map[string]any{"name": "s", "endpoint": d.env.S3.Endpoint, "bucket": d.env.S3.Store.Bucket})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
	require.Contains(t, fieldErrors(t, r)["endpoint"], "labelq's own bucket")
}

func TestOwnBucketStorageStaysInItsNamespace(t *testing.T) {
	t.Parallel()
	w := storageFixture(t)
	pid := w.project(t, w.orgA, "own-prefix")
	own := fmt.Sprintf("orgs/%d/", w.orgAID)
	other := fmt.Sprintf("orgs/%d/", w.orgAID+1)
	for _, p := range []string{
		"..", "../x", "a/../../" + other, "a/..", "/abs/", "/" + own, other, other + "x/", "orgs/", "orgs/x",
		"a//b", `a\b`, "%2e%2e/x", "a%2fb", "a\x01b",
	} {
		t.Run(p, func(t *testing.T) {
			r := w.orgA.do("POST", storagesPath(pid), map[string]any{"name": "s", "prefix": p})
			require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
			require.Contains(t, fieldErrors(t, r), "prefix", string(r.Body))
		})
	}
	for i, c := range []struct{ in, stored string }{
		{"", own}, {"drop/", own + "drop/"}, {own + "drop/", own + "drop/"}, {"a.b/c..d/", own + "a.b/c..d/"},
	} {
		r := w.orgA.do("POST", storagesPath(pid), map[string]any{"name": fmt.Sprintf("ok-%d", i), "prefix": c.in})
		require.Equal(t, http.StatusCreated, r.Status, "%q: %s", c.in, r.Body)
		require.Equal(t, c.stored, r.json(t)["prefix"])
	}
	r := w.orgA.do("POST", storagesPath(pid), map[string]any{"name": "s", "bucket": "another"})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
	require.Contains(t, fieldErrors(t, r), "bucket")

	// Moving a remote storage into labelq's bucket puts its prefix in the namespace.
	r = w.orgA.do("POST", storagesPath(pid), map[string]any{"name": "moving", "endpoint": allowedEndpoint, "bucket": "tenant-bucket", "prefix": "data/"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	r = w.orgA.do("PATCH", fmt.Sprintf("/v1/storages/%d", id(t, r)), map[string]any{"endpoint": ""})
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	require.Equal(t, own+"data/", r.json(t)["prefix"])
	require.Equal(t, "", r.json(t)["bucket"])
}

func TestStorageFieldsAreChecked(t *testing.T) {
	t.Parallel()
	w := storageFixture(t)
	pid := w.project(t, w.orgA, "storage-fields")
	for _, c := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{}, "name"},
		{map[string]any{"name": "s", "kind": "both"}, "kind"},
		{map[string]any{"name": "s", "key_filter_kind": "wild"}, "key_filter_kind"},
		{map[string]any{"name": "s", "key_filter": "(", "key_filter_kind": "regex"}, "key_filter"},
		{map[string]any{"name": "s", "file_type": "llm_output"}, "file_type"},
		{map[string]any{"name": "s", "file_type": "video"}, "file_type"},
		{map[string]any{"name": "s", "rules": map[string]any{"match": "*"}}, "rules"},
		{map[string]any{"name": "s", "rules": []any{map[string]any{"match": "*.json", "priority": "asap"}}}, "rules[0].priority"},
		{map[string]any{"name": "s", "sync_cron": "every day"}, "sync_cron"},
		{map[string]any{"name": "s", "sync_cron": "* * * * *"}, "sync_cron"},
		{map[string]any{"name": "s", "sync_cron": "@hourly", "sync_timezone": "Nowhere/City"}, "sync_timezone"},
		{map[string]any{"name": "s", "sync_cron": "TZ=UTC 0 2 * * *"}, "sync_cron"},
		{map[string]any{"name": "s", "kind": "export", "sync_cron": "0 2 * * *"}, "sync_cron"},
		{map[string]any{"name": "s", "region": "us-east-1"}, "region"},
		{map[string]any{"name": "s", "endpoint": allowedEndpoint, "bucket": "a"}, "bucket"},
		{map[string]any{"name": "s", "endpoint": allowedEndpoint, "bucket": "b", "region": "eu west"}, "region"},
	} {
		t.Run(fmt.Sprint(c.body), func(t *testing.T) {
			r := w.orgA.do("POST", storagesPath(pid), c.body)
			require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
			require.Contains(t, fieldErrors(t, r), c.field, string(r.Body))
		})
	}
	r := w.orgA.do("POST", storagesPath(pid), map[string]any{"name": "scheduled", "sync_cron": "0 2 * * *", "sync_timezone": "Europe/Paris"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	require.Equal(t, "0 2 * * *", r.json(t)["sync_cron"])
	sid := id(t, r)
	r = w.orgA.do("PATCH", fmt.Sprintf("/v1/storages/%d", sid), map[string]any{"sync_cron": "*/5 * * * *"})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, "too frequent on update too: %s", r.Body)
	require.Contains(t, fieldErrors(t, r), "sync_cron")
	r = w.orgA.do("PATCH", fmt.Sprintf("/v1/storages/%d", sid), map[string]any{"sync_cron": ""})
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	require.Nil(t, r.json(t)["sync_cron"], "an empty sync_cron removes the schedule")
}

func TestSyncJoinsTheLiveRunAndCancels(t *testing.T) {
	t.Parallel()
	w := storageFixture(t)
	pid := w.project(t, w.orgA, "sync")
	r := w.orgA.do("POST", storagesPath(pid), map[string]any{"name": "drop", "prefix": "drop/"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	sid := id(t, r)
	syncPath := fmt.Sprintf("/v1/storages/%d/sync", sid)
	ctx := context.Background()
	syncTasks := func() int {
		n := 0
		for _, k := range testenv.Kinds(testenv.OutboxRows(t, w.env.PG.Pool, w.orgAID)) {
			if k == (tasks.StorageSync{}).Kind() {
				n++
			}
		}
		return n
	}

	r = w.orgA.do("POST", syncPath, nil)
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	first := r.json(t)
	runID := id(t, r)
	require.Equal(t, false, first["joined"])
	require.Equal(t, "pending", first["status"])
	require.Equal(t, fmt.Sprintf("/v1/sync-runs/%d", runID), first["status_url"])
	queued := testenv.RequireQueued(t, w.env.PG.Pool, w.orgAID, tasks.StorageSync{RunID: runID})
	require.Equal(t, queued.TaskID, first["task_id"])

	r = w.orgA.do("POST", syncPath, nil)
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	require.Equal(t, float64(runID), r.json(t)["id"], "a second request joins the live run")
	require.Equal(t, true, r.json(t)["joined"])
	require.Equal(t, 1, syncTasks(), "and queues nothing")

	r = w.orgA.do("GET", first["status_url"].(string), nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	run := r.json(t)
	require.Equal(t, "pending", run["status"])
	require.Equal(t, "api", run["trigger"])
	require.Equal(t, float64(sid), run["storage_id"])
	require.Equal(t, float64(0), run["keys_listed"])
	require.Equal(t, []any{}, run["skipped"])

	// Pending: cancelled at once; its task stays queued and finds the run cancelled.
	r = w.orgA.do("POST", fmt.Sprintf("/v1/sync-runs/%d/cancel", runID), nil)
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	require.Equal(t, "cancelled", r.json(t)["status"])
	require.NotNil(t, r.json(t)["completed_at"])
	testenv.RequireQueued(t, w.env.PG.Pool, w.orgAID, tasks.StorageSync{RunID: runID})
	r = w.orgA.do("POST", fmt.Sprintf("/v1/sync-runs/%d/cancel", runID), nil)
	require.Equal(t, http.StatusConflict, r.Status, string(r.Body))
	require.Contains(t, r.json(t)["detail"], "already cancelled")

	// Running: asked to stop after its page.
	r = w.orgA.do("POST", syncPath, nil)
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	require.Equal(t, false, r.json(t)["joined"], "an ended run is not joined")
	second := id(t, r)
	require.NotEqual(t, runID, second)
	_, err := w.env.PG.Pool.Exec(ctx, `UPDATE sync_runs SET status = 'running', attempts = 1, started_at = now() WHERE id = $1`, second)
	require.NoError(t, err)
	r = w.orgA.do("POST", fmt.Sprintf("/v1/sync-runs/%d/cancel", second), nil)
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	require.Equal(t, "running", r.json(t)["status"])
	require.NotNil(t, r.json(t)["cancel_requested_at"])
	require.Nil(t, r.json(t)["completed_at"])

	r = w.orgA.do("GET", fmt.Sprintf("/v1/storages/%d/syncs", sid), nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	items := r.json(t)["items"].([]any)
	require.Len(t, items, 2)
	require.Equal(t, float64(second), items[0].(map[string]any)["id"], "newest first")
	r = w.orgA.do("GET", fmt.Sprintf("/v1/storages/%d/syncs?before=%d", sid, second), nil)
	require.Len(t, r.json(t)["items"], 1)

	// Deleting the storage cancels its live run in the same transaction.
	_, err = w.env.PG.Pool.Exec(ctx, `UPDATE sync_runs SET status = 'completed', completed_at = now() WHERE id = $1`, second)
	require.NoError(t, err)
	r = w.orgA.do("POST", syncPath, nil)
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	third := id(t, r)
	r = w.orgA.do("DELETE", fmt.Sprintf("/v1/storages/%d", sid), nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	require.Equal(t, []any{float64(third)}, r.json(t)["cancelled_runs"])
	var status db.SyncRunStatus
	require.NoError(t, w.env.PG.Pool.QueryRow(ctx, `SELECT status FROM sync_runs WHERE id = $1`, third).Scan(&status))
	require.Equal(t, db.SyncRunStatusCancelled, status)
	r = w.orgA.do("POST", syncPath, nil)
	require.Equal(t, http.StatusNotFound, r.Status, string(r.Body))

	// Export storages and disabled ones do not sync.
	r = w.orgA.do("POST", storagesPath(pid), map[string]any{"name": "out", "kind": "export"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	r = w.orgA.do("POST", fmt.Sprintf("/v1/storages/%d/sync", id(t, r)), nil)
	require.Equal(t, http.StatusConflict, r.Status, string(r.Body))
	r = w.orgA.do("POST", storagesPath(pid), map[string]any{"name": "off", "enabled": false})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	r = w.orgA.do("POST", fmt.Sprintf("/v1/storages/%d/sync", id(t, r)), nil)
	require.Equal(t, http.StatusConflict, r.Status, string(r.Body))
	require.Contains(t, r.json(t)["detail"], "disabled")
}

func TestStoragesOfAnotherOrgAre404(t *testing.T) {
	t.Parallel()
	w := storageFixture(t)
	pid := w.project(t, w.orgA, "a-storages")
	r := w.orgA.do("POST", storagesPath(pid), map[string]any{"name": "a-drop", "prefix": "a/"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	sid := id(t, r)
	r = w.orgA.do("POST", fmt.Sprintf("/v1/storages/%d/sync", sid), nil)
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	runID := id(t, r)

	for _, c := range []struct{ method, path string }{
		{"GET", fmt.Sprintf("/v1/storages/%d", sid)},
		{"DELETE", fmt.Sprintf("/v1/storages/%d", sid)},
		{"POST", fmt.Sprintf("/v1/storages/%d/sync", sid)},
		{"POST", fmt.Sprintf("/v1/storages/%d/notify-secret", sid)},
		{"GET", fmt.Sprintf("/v1/storages/%d/syncs", sid)},
		{"GET", fmt.Sprintf("/v1/sync-runs/%d", runID)},
		{"POST", fmt.Sprintf("/v1/sync-runs/%d/cancel", runID)},
		{"GET", storagesPath(pid)},
	} {
		foreign := w.orgB.do(c.method, c.path, nil)
		require.Equal(t, http.StatusNotFound, foreign.Status, "%s %s: %s", c.method, c.path, foreign.Body)
		missing := w.orgB.do(c.method, strings.Replace(c.path, fmt.Sprint(sid), fmt.Sprint(sid+1000), 1), nil)
		require.Equal(t, http.StatusNotFound, missing.Status)
	}
	r = w.orgB.do("PATCH", fmt.Sprintf("/v1/storages/%d", sid), map[string]any{"name": "mine"})
	require.Equal(t, http.StatusNotFound, r.Status, string(r.Body))
	r = w.orgB.do("POST", storagesPath(pid), map[string]any{"name": "mine"})
	require.Equal(t, http.StatusNotFound, r.Status, string(r.Body))

	// Nothing changed for org A.
	r = w.orgA.do("GET", fmt.Sprintf("/v1/sync-runs/%d", runID), nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	require.Equal(t, "pending", r.json(t)["status"])
	r = w.orgA.do("GET", fmt.Sprintf("/v1/storages/%d", sid), nil)
	require.Equal(t, "a-drop", r.json(t)["name"])
}
