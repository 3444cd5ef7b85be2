package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/admin"
	"github.com/labelq/labelq/internal/app"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/internal/webhook/delivery"
)

// hookReceipt is one request the test's receiver got.
type hookReceipt struct {
	ID        string
	Body      []byte
	VerifyErr error
	Answered  int
}

// hookReceiver is a platform's receiver: it verifies every request with the
// Standard Webhooks library and answers 204, or 503 while it is down.
type hookReceiver struct {
	srv    *httptest.Server
	down   atomic.Bool
	mu     sync.Mutex
	secret string
	got    []hookReceipt
}

func newHookReceiver(t *testing.T) *hookReceiver {
	t.Helper()
	rc := &hookReceiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		h := hookReceipt{ID: r.Header.Get(delivery.HeaderID), Body: body, VerifyErr: delivery.Verify(rc.secret, body, r.Header),
			Answered: http.StatusNoContent}
		if rc.down.Load() {
			h.Answered = http.StatusServiceUnavailable
		}
		rc.got = append(rc.got, h)
		w.WriteHeader(h.Answered)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *hookReceiver) receipts() []hookReceipt {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]hookReceipt(nil), rc.got...)
}

// of is every request carrying webhook-id id.
func (rc *hookReceiver) of(id string) []hookReceipt {
	var out []hookReceipt
	for _, h := range rc.receipts() {
		if h.ID == id {
			out = append(out, h)
		}
	}
	return out
}

// hookDelivery is a delivery as GET /v1/webhooks/{id}/deliveries answers it.
type hookDelivery struct {
	ID         int64  `json:"id"`
	EventID    string `json:"event_id"`
	EventType  string `json:"event_type"`
	Status     string `json:"status"`
	Attempts   int32  `json:"attempts"`
	AttemptLog []struct {
		Attempt    int32  `json:"attempt"`
		StatusCode *int32 `json:"status_code"`
		Outcome    string `json:"outcome"`
	} `json:"attempt_log"`
}

// TestWebhookEndToEnd runs the whole system in-process (every role, the webhook
// worker wired as in production) and a platform that registers an endpoint for
// file_version.validated through the API: an upload as the README shows it is
// delivered once, signed, with the version's id, status and checksum; a
// receiver that answers 503 leaves the next delivery pending with its attempt
// logged, and it succeeds on retry once the receiver is back; a delivery whose
// retry task Redis lost (FLUSHDB) is queued again by the reconciler and
// completes.
func TestWebhookEndToEnd(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	cfg := env.Config(t, map[string]string{
		"LABELQ_HTTP_ADDR":                testenv.FreeAddr(t),
		"LABELQ_SECRET_KEY":               "e2e:" + base64.StdEncoding.EncodeToString(key),
		"LABELQ_WEBHOOK_ALLOW_HTTP":       "127.0.0.1",
		"LABELQ_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
		"LABELQ_WEBHOOK_RETRY_SCHEDULE":   "0s,2s,2s,2s,2s,2s,2s,2s",
		// The test runs the reconciler's pass itself, after the flush.
		"LABELQ_RECONCILE_INTERVAL": "1h",
		"LABELQ_RECONCILE_AFTER":    "1s",
	})
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, testenv.Quiet())
	require.NoError(t, err)
	defer a.Close()
	a.Mount = mountWorkers
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, app.AllRoles...) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()
	base := "http://" + cfg.HTTPAddr
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			_ = resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	}, 10*time.Second, 50*time.Millisecond)

	tok, err := admin.CreateToken(ctx, env.PG.Pool, "acme", "platform")
	require.NoError(t, err)
	call := func(method, path string, body any, want int, out any) {
		t.Helper()
		var r io.Reader
		if body != nil {
			b, err := json.Marshal(body)
			require.NoError(t, err)
			r = bytes.NewReader(b)
		}
		req, err := http.NewRequest(method, base+path, r)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+tok.Secret)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer func() { _ = resp.Body.Close() }()
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, want, resp.StatusCode, "%s %s: %s", method, path, raw)
		if out != nil {
			require.NoError(t, json.Unmarshal(raw, out))
		}
	}

	rc := newHookReceiver(t)
	var hook struct {
		ID     int64  `json:"id"`
		Secret string `json:"secret"`
	}
	call("POST", "/v1/webhooks", map[string]any{"url": rc.srv.URL + "/hooks/labelq", "event_types": []string{"file_version.validated"}},
		http.StatusCreated, &hook)
	require.Regexp(t, `^whsec_`, hook.Secret)
	rc.mu.Lock()
	rc.secret = hook.Secret
	rc.mu.Unlock()
	var project struct{ ID int64 }
	call("POST", "/v1/projects", map[string]any{"name": "Street signs", "requirements_text": "Box every sign."}, http.StatusCreated, &project)

	// upload is the README's steps 2 to 4: a file, its bytes through the presigned
	// URL, the version registered with its SHA-256.
	upload := func(name string, content []byte) int64 {
		t.Helper()
		var f struct{ ID int64 }
		call("POST", fmt.Sprintf("/v1/projects/%d/files", project.ID), map[string]any{"name": name}, http.StatusCreated, &f)
		var up struct {
			URL         string `json:"url"`
			StoragePath string `json:"storage_path"`
		}
		call("POST", fmt.Sprintf("/v1/files/%d/upload-url", f.ID), nil, http.StatusOK, &up)
		req, err := http.NewRequest(http.MethodPut, up.URL, bytes.NewReader(content))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var v struct{ ID int64 }
		call("POST", fmt.Sprintf("/v1/files/%d/versions", f.ID), map[string]any{
			"storage_path": up.StoragePath, "sha256": testenv.SHA256Hex(content), "mime_type": "text/plain",
		}, http.StatusAccepted, &v)
		return v.ID
	}
	deliveries := func() []hookDelivery {
		t.Helper()
		var page struct{ Items []hookDelivery }
		call("GET", fmt.Sprintf("/v1/webhooks/%d/deliveries", hook.ID), nil, http.StatusOK, &page)
		return page.Items
	}
	// deliveryOf waits for the file_version.validated delivery of the n-th upload
	// (deliveries are listed newest first) and returns it once cond holds.
	deliveryOf := func(n int, what string, cond func(hookDelivery) bool) hookDelivery {
		t.Helper()
		var d hookDelivery
		require.Eventually(t, func() bool {
			ds := deliveries()
			if len(ds) < n {
				return false
			}
			d = ds[len(ds)-n]
			return cond(d)
		}, 30*time.Second, 50*time.Millisecond, "delivery of upload %d: %s; last seen %+v", n, what, d)
		return d
	}
	type envelope struct {
		ID   string `json:"id"`
		Type string `json:"type"`
		Data struct {
			FileVersionID  int64  `json:"file_version_id"`
			Status         string `json:"status"`
			ChecksumSHA256 string `json:"checksum_sha256"`
		} `json:"data"`
	}
	// requireDelivered checks that the receiver's 2xx answer for the delivery was
	// a verified request naming the version, valid, with its checksum.
	requireDelivered := func(d hookDelivery, versionID int64, content []byte) []hookReceipt {
		t.Helper()
		got := rc.of(d.EventID)
		require.NotEmpty(t, got)
		last := got[len(got)-1]
		require.Equal(t, http.StatusNoContent, last.Answered)
		for _, h := range got {
			require.NoError(t, h.VerifyErr, "every attempt is signed, with the same webhook-id")
		}
		var ev envelope
		require.NoError(t, json.Unmarshal(last.Body, &ev))
		require.Equal(t, d.EventID, ev.ID)
		require.Equal(t, "file_version.validated", ev.Type)
		require.Equal(t, versionID, ev.Data.FileVersionID)
		require.Equal(t, "valid", ev.Data.Status)
		require.Equal(t, testenv.SHA256Hex(content), ev.Data.ChecksumSHA256)
		return got
	}

	t.Run("delivered once, signed", func(t *testing.T) {
		content := []byte("id,text\n1,a stop sign\n")
		v := upload("sign-001.csv", content)
		d := deliveryOf(1, "succeeded", func(d hookDelivery) bool { return d.Status == "succeeded" })
		got := requireDelivered(d, v, content)
		require.Len(t, got, 1, "one request")
		require.Equal(t, int32(1), d.Attempts)
		require.Len(t, rc.receipts(), 1, "nothing else was posted")
	})

	t.Run("503 then back: retried with the same id", func(t *testing.T) {
		rc.down.Store(true)
		content := []byte("id,text\n2,a yield sign\n")
		v := upload("sign-002.csv", content)
		d := deliveryOf(2, "pending with an attempt", func(d hookDelivery) bool { return d.Status == "pending" && d.Attempts >= 1 })
		require.NotEmpty(t, d.AttemptLog)
		require.NotNil(t, d.AttemptLog[0].StatusCode)
		require.Equal(t, int32(http.StatusServiceUnavailable), *d.AttemptLog[0].StatusCode)
		require.Equal(t, "retry", d.AttemptLog[0].Outcome)
		rc.down.Store(false)
		d = deliveryOf(2, "succeeded on retry", func(d hookDelivery) bool { return d.Status == "succeeded" })
		got := requireDelivered(d, v, content)
		require.GreaterOrEqual(t, len(got), 2, "a 503, then the retry")
		require.Equal(t, http.StatusServiceUnavailable, got[0].Answered)
		require.EqualValues(t, len(got), d.Attempts, "one attempt logged per request")
	})

	t.Run("Redis flushed while a retry waits: the reconciler queues it again", func(t *testing.T) {
		rc.down.Store(true)
		content := []byte("id,text\n3,a speed limit\n")
		v := upload("sign-003.csv", content)
		deliveryOf(3, "pending with an attempt", func(d hookDelivery) bool { return d.Status == "pending" && d.Attempts >= 1 })
		require.NoError(t, env.Redis.Client.FlushDB(ctx).Err())
		rc.down.Store(false)
		// Past its next attempt and the reconciler's age, the delivery is still
		// pending: its task went with Redis, and nothing else queues it.
		time.Sleep(2*time.Second + cfg.ReconcileAfter + time.Second)
		now := deliveryOf(3, "still pending", func(hookDelivery) bool { return true })
		require.Equal(t, "pending", now.Status, "%+v", now)
		attempts := now.Attempts
		n, err := a.Reconciler().Run(ctx)
		require.NoError(t, err)
		require.GreaterOrEqual(t, n, 1, "the reconciler queued the delivery again")
		d := deliveryOf(3, "succeeded after the reconciler", func(d hookDelivery) bool { return d.Status == "succeeded" })
		require.Greater(t, d.Attempts, attempts)
		requireDelivered(d, v, content)
	})
}
