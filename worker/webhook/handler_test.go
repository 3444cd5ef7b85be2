package webhookdeliver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/queue"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/internal/webhook"
	"github.com/labelq/labelq/internal/webhook/delivery"
	webhookdeliver "github.com/labelq/labelq/worker/webhook"
)

type fixture struct {
	pg   *testenv.PG
	rdb  *testenv.Redis
	keys *storage.Keyring
	org  db.Organization
	logs *testenv.LogBuffer
	deps webhookdeliver.Deps
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	pg := testenv.Postgres(t)
	r := testenv.RedisDB(t)
	log, logs := testenv.Logger(t)
	pol, err := delivery.ParsePolicy("127.0.0.1", "127.0.0.0/8")
	require.NoError(t, err)
	sched, err := delivery.ParseSchedule("0s,5s,5m,30m")
	require.NoError(t, err)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr, DB: r.DB})
	t.Cleanup(func() { _ = rdb.Close() })
	f := &fixture{pg: pg, rdb: r, keys: testenv.StorageKeyring(t), org: pg.Org(t), logs: logs}
	f.deps = webhookdeliver.Deps{
		Pool: pg.Pool, Redis: rdb, Keys: f.keys, Policy: pol, Schedule: sched,
		Timeout: 2 * time.Second, Concurrency: 4, DisableAfter: 120 * time.Hour, Log: log,
	}
	return f
}

// receiver is a real HTTP receiver that verifies every request with the
// Standard Webhooks library, as a platform would, and answers what answer says.
type receiver struct {
	srv      *httptest.Server
	secret   string
	mu       sync.Mutex
	requests []received
	answer   func(n int, w http.ResponseWriter)
}

type received struct {
	id, timestamp, signature string
	body                     []byte
	verifyErr                error
}

func (f *fixture) receiver(t *testing.T, answer func(n int, w http.ResponseWriter)) *receiver {
	t.Helper()
	rc := &receiver{answer: answer}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rec := received{id: r.Header.Get(delivery.HeaderID), timestamp: r.Header.Get(delivery.HeaderTimestamp),
			signature: r.Header.Get(delivery.HeaderSignature), body: body}
		if rc.secret != "" {
			rec.verifyErr = delivery.Verify(rc.secret, body, r.Header)
		}
		rc.requests = append(rc.requests, rec)
		n := len(rc.requests)
		rc.mu.Unlock()
		rc.answer(n, w)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) got() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.requests...)
}

func status(code int) func(int, http.ResponseWriter) {
	return func(_ int, w http.ResponseWriter) { w.WriteHeader(code) }
}

// endpoint registers rc as an endpoint of the fixture's organization.
func (f *fixture) endpoint(t *testing.T, rc *receiver, row testenv.WebhookRow) db.WebhookEndpoint {
	t.Helper()
	if row.URL == "" {
		row.URL = rc.srv.URL + "/hooks/labelq"
	}
	ep, secret := f.pg.InsertWebhook(t, f.keys, f.org.ID, row)
	if rc != nil {
		rc.mu.Lock()
		rc.secret = secret
		rc.mu.Unlock()
	}
	return ep
}

// ping emits a webhook.test event to ep (as POST /v1/webhooks/{id}/test does) and
// returns its delivery.
func (f *fixture) ping(t *testing.T, ep db.WebhookEndpoint) int64 {
	t.Helper()
	var out webhook.Emitted
	err := database.Tx(context.Background(), f.pg.Pool, func(q *db.Queries, _ pgx.Tx) error {
		var err error
		out, err = webhook.Emit(context.Background(), q, webhook.Event{
			OrgID: f.org.ID, Type: webhook.WebhookTest, EntityType: db.EntityTypeWebhook, EntityID: ep.ID,
			OnlyEndpoint: ep.ID, Data: webhook.WebhookTestData{WebhookID: ep.ID, Message: "hello"},
		})
		return err
	})
	require.NoError(t, err)
	require.Len(t, out.Deliveries, 1)
	return out.Deliveries[0]
}

// due makes a waiting delivery due now, as if its wait had passed.
func (f *fixture) due(t *testing.T, id int64) {
	t.Helper()
	_, err := f.pg.Pool.Exec(context.Background(), `UPDATE webhook_deliveries SET next_attempt_at = now() - interval '1 second' WHERE id = $1`, id)
	require.NoError(t, err)
}

func (f *fixture) delivery(t *testing.T, id int64) db.WebhookDeliveryGetRow {
	t.Helper()
	d, err := db.New(f.pg.Pool).WebhookDeliveryGet(context.Background(), db.WebhookDeliveryGetParams{ID: id, OrgID: f.org.ID})
	require.NoError(t, err)
	return d
}

func (f *fixture) attempts(t *testing.T, id int64) []db.WebhookAttempt {
	t.Helper()
	a, err := db.New(f.pg.Pool).WebhookAttemptsOfDeliveries(context.Background(),
		db.WebhookAttemptsOfDeliveriesParams{OrgID: f.org.ID, DeliveryIds: []int64{id}})
	require.NoError(t, err)
	return a
}

func (f *fixture) getEndpoint(t *testing.T, id int64) db.WebhookEndpoint {
	t.Helper()
	var ep db.WebhookEndpoint
	err := database.Tx(context.Background(), f.pg.Pool, func(q *db.Queries, _ pgx.Tx) error {
		var err error
		ep, err = q.WebhookEndpointGet(context.Background(), db.WebhookEndpointGetParams{ID: id, OrgID: f.org.ID})
		return err
	})
	require.NoError(t, err)
	return ep
}

// retryAfter is the delay a RetryAfterError asks for, failing the test on any
// other result.
func retryAfter(t *testing.T, err error) time.Duration {
	t.Helper()
	var ra *queue.RetryAfterError
	require.ErrorAs(t, err, &ra)
	return ra.After
}

func TestDeliveryIsSignedAndRecorded(t *testing.T) {
	f := newFixture(t)
	rc := f.receiver(t, func(_ int, w http.ResponseWriter) { _, _ = io.WriteString(w, `{"ok":true}`) })
	ep := f.endpoint(t, rc, testenv.WebhookRow{})
	id := f.ping(t, ep)
	h := webhookdeliver.NewHandler(f.deps)

	require.NoError(t, h.Work(context.Background(), tasks.WebhookDeliver{DeliveryID: id}))

	got := rc.got()
	require.Len(t, got, 1)
	require.NoError(t, got[0].verifyErr, "the library's Verify accepts the delivery")
	d := f.delivery(t, id)
	require.Equal(t, db.WebhookDeliveryStatusSucceeded, d.Status)
	require.Equal(t, int32(1), d.Attempts)
	require.Equal(t, d.PublicID, got[0].id, "webhook-id is the event id")
	require.True(t, strings.HasPrefix(got[0].signature, "v1,"), got[0].signature)
	var body string
	require.NoError(t, f.pg.Pool.QueryRow(context.Background(), `SELECT body FROM webhook_events WHERE id = $1`, d.EventID).Scan(&body))
	require.Equal(t, body, string(got[0].body), "the stored body is posted byte for byte")
	require.Contains(t, body, `"type":"webhook.test"`)

	at := f.attempts(t, id)
	require.Len(t, at, 1)
	require.Equal(t, int32(200), *at[0].StatusCode)
	require.Equal(t, `{"ok":true}`, at[0].ResponseBody)
	require.Equal(t, "succeeded", at[0].Outcome)
	require.NotNil(t, f.getEndpoint(t, ep.ID).LastSuccessAt)

	// A second task of the finished delivery posts nothing.
	require.NoError(t, h.Work(context.Background(), tasks.WebhookDeliver{DeliveryID: id, Run: "again"}))
	require.Len(t, rc.got(), 1)

	// The secret never reaches the logs.
	rc.mu.Lock()
	secret := rc.secret
	rc.mu.Unlock()
	require.False(t, f.logs.Contains(strings.TrimPrefix(secret, delivery.SecretPrefix)), "the signing secret is in the logs")
	require.NotEmpty(t, f.logs.Messages(t, "webhook attempt"))
}

func TestRetriesFollowTheScheduleThenSucceed(t *testing.T) {
	f := newFixture(t)
	rc := f.receiver(t, func(n int, w http.ResponseWriter) {
		if n <= 3 {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, "down for maintenance")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	ep := f.endpoint(t, rc, testenv.WebhookRow{})
	id := f.ping(t, ep)
	h := webhookdeliver.NewHandler(f.deps)
	ctx := context.Background()

	var waits []time.Duration
	for range 3 {
		wait := retryAfter(t, h.Work(ctx, tasks.WebhookDeliver{DeliveryID: id}))
		waits = append(waits, wait)
		// Too early: the task comes back without posting.
		early := retryAfter(t, h.Work(ctx, tasks.WebhookDeliver{DeliveryID: id}))
		require.InDelta(t, wait.Seconds(), early.Seconds(), 1)
		f.due(t, id)
	}
	require.Equal(t, []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute}, waits)
	require.NoError(t, h.Work(ctx, tasks.WebhookDeliver{DeliveryID: id}))

	got := rc.got()
	require.Len(t, got, 4, "one POST per attempt, none while waiting")
	for _, g := range got {
		require.Equal(t, got[0].id, g.id, "webhook-id is stable across retries")
		require.NoError(t, g.verifyErr)
	}
	for _, g := range got {
		ts, err := strconv.ParseInt(g.timestamp, 10, 64)
		require.NoError(t, err)
		require.InDelta(t, time.Now().Unix(), ts, 5, "each attempt is signed at its own time (receivers refuse old timestamps)")
	}
	at := f.attempts(t, id)
	require.Len(t, at, 4)
	for i, a := range at {
		require.Equal(t, int32(i+1), a.Attempt)
	}
	require.Equal(t, "retry", at[0].Outcome)
	require.Equal(t, "down for maintenance", at[0].ResponseBody)
	require.Equal(t, int32(204), *at[3].StatusCode)
	d := f.delivery(t, id)
	require.Equal(t, db.WebhookDeliveryStatusSucceeded, d.Status)
	require.Nil(t, f.getEndpoint(t, ep.ID).FailingSince, "a success ends the failure streak")
}

func TestTooManyRequestsHonoursRetryAfter(t *testing.T) {
	f := newFixture(t)
	rc := f.receiver(t, func(_ int, w http.ResponseWriter) {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	id := f.ping(t, f.endpoint(t, rc, testenv.WebhookRow{}))
	wait := retryAfter(t, webhookdeliver.NewHandler(f.deps).Work(context.Background(), tasks.WebhookDeliver{DeliveryID: id}))
	require.Equal(t, 7*time.Second, wait, "Retry-After, not the schedule's 5 s")
	require.Equal(t, db.WebhookDeliveryStatusPending, f.delivery(t, id).Status)
}

func TestClientErrorFailsAtOnce(t *testing.T) {
	f := newFixture(t)
	rc := f.receiver(t, func(_ int, w http.ResponseWriter) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, "unknown event type")
	})
	id := f.ping(t, f.endpoint(t, rc, testenv.WebhookRow{}))
	require.NoError(t, webhookdeliver.NewHandler(f.deps).Work(context.Background(), tasks.WebhookDeliver{DeliveryID: id}))
	d := f.delivery(t, id)
	require.Equal(t, db.WebhookDeliveryStatusFailed, d.Status)
	require.Equal(t, int32(400), *d.LastStatusCode)
	at := f.attempts(t, id)
	require.Len(t, at, 1)
	require.Equal(t, "failed", at[0].Outcome)
	require.Equal(t, "unknown event type", at[0].ResponseBody)
}

func TestScheduleRunsOut(t *testing.T) {
	f := newFixture(t)
	f.deps.Schedule = delivery.Schedule{0, time.Second}
	rc := f.receiver(t, status(http.StatusBadGateway))
	id := f.ping(t, f.endpoint(t, rc, testenv.WebhookRow{}))
	h := webhookdeliver.NewHandler(f.deps)
	retryAfter(t, h.Work(context.Background(), tasks.WebhookDeliver{DeliveryID: id}))
	f.due(t, id)
	require.NoError(t, h.Work(context.Background(), tasks.WebhookDeliver{DeliveryID: id}))
	d := f.delivery(t, id)
	require.Equal(t, db.WebhookDeliveryStatusFailed, d.Status)
	require.Equal(t, int32(2), d.Attempts)
	require.Len(t, rc.got(), 2)
}

func TestGoneDisablesTheEndpoint(t *testing.T) {
	f := newFixture(t)
	gone := f.receiver(t, status(http.StatusGone))
	other := f.receiver(t, status(http.StatusOK))
	ep := f.endpoint(t, gone, testenv.WebhookRow{})
	watcher := f.endpoint(t, other, testenv.WebhookRow{EventTypes: []string{webhook.WebhookDisabled}})
	id := f.ping(t, ep)

	require.NoError(t, webhookdeliver.NewHandler(f.deps).Work(context.Background(), tasks.WebhookDeliver{DeliveryID: id}))
	require.Equal(t, db.WebhookDeliveryStatusFailed, f.delivery(t, id).Status)
	got := f.getEndpoint(t, ep.ID)
	require.False(t, got.Enabled)
	require.Contains(t, *got.DisabledReason, "410")

	evs, err := db.New(f.pg.Pool).WebhookEventsOfEntity(context.Background(), db.WebhookEventsOfEntityParams{
		OrgID: f.org.ID, EntityType: db.EntityTypeWebhook, EntityID: ep.ID})
	require.NoError(t, err)
	var disabled []db.WebhookEvent
	for _, e := range evs {
		if e.EventType == webhook.WebhookDisabled {
			disabled = append(disabled, e)
		}
	}
	require.Len(t, disabled, 1, "one webhook.disabled event")
	require.Contains(t, disabled[0].Body, fmt.Sprintf(`"webhook_id":%d`, ep.ID))
	var to []int64
	rows, err := f.pg.Pool.Query(context.Background(), `SELECT endpoint_id FROM webhook_deliveries WHERE event_id = $1`, disabled[0].ID)
	require.NoError(t, err)
	to, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	require.Equal(t, []int64{watcher.ID}, to, "the disabled endpoint itself is not told")

	// A later delivery to the disabled endpoint is not attempted.
	_, err = f.pg.Pool.Exec(context.Background(), `UPDATE webhook_endpoints SET enabled = true WHERE id = $1`, ep.ID)
	require.NoError(t, err)
	id2 := f.ping(t, ep)
	_, err = f.pg.Pool.Exec(context.Background(), `UPDATE webhook_endpoints SET enabled = false WHERE id = $1`, ep.ID)
	require.NoError(t, err)
	require.NoError(t, webhookdeliver.NewHandler(f.deps).Work(context.Background(), tasks.WebhookDeliver{DeliveryID: id2}))
	d2 := f.delivery(t, id2)
	require.Equal(t, db.WebhookDeliveryStatusFailed, d2.Status)
	require.Equal(t, "the endpoint is disabled", *d2.LastError)
	require.Len(t, gone.got(), 1)
}

func TestEndpointFailingForDaysIsDisabled(t *testing.T) {
	f := newFixture(t)
	f.deps.DisableAfter = time.Hour
	rc := f.receiver(t, status(http.StatusServiceUnavailable))
	ep := f.endpoint(t, rc, testenv.WebhookRow{})
	h := webhookdeliver.NewHandler(f.deps)

	// Failing for 30 minutes: still enabled.
	_, err := f.pg.Pool.Exec(context.Background(), `UPDATE webhook_endpoints SET failing_since = $2 WHERE id = $1`, ep.ID, time.Now().Add(-30*time.Minute))
	require.NoError(t, err)
	retryAfter(t, h.Work(context.Background(), tasks.WebhookDeliver{DeliveryID: f.ping(t, ep)}))
	require.True(t, f.getEndpoint(t, ep.ID).Enabled)

	// An hour and more: disabled, with the reason, and the delivery ended.
	_, err = f.pg.Pool.Exec(context.Background(), `UPDATE webhook_endpoints SET failing_since = $2 WHERE id = $1`, ep.ID, time.Now().Add(-61*time.Minute))
	require.NoError(t, err)
	id := f.ping(t, ep)
	require.NoError(t, h.Work(context.Background(), tasks.WebhookDeliver{DeliveryID: id}), "the disabling attempt ends that task")
	require.Equal(t, db.WebhookDeliveryStatusFailed, f.delivery(t, id).Status)
	got := f.getEndpoint(t, ep.ID)
	require.False(t, got.Enabled)
	require.Contains(t, *got.DisabledReason, "LABELQ_WEBHOOK_DISABLE_AFTER")
}

func TestTimeoutRetries(t *testing.T) {
	f := newFixture(t)
	f.deps.Timeout = 300 * time.Millisecond
	release := make(chan struct{})
	rc := f.receiver(t, func(_ int, w http.ResponseWriter) { <-release })
	t.Cleanup(func() { close(release) }) // before the receiver's Close, which waits for it
	id := f.ping(t, f.endpoint(t, rc, testenv.WebhookRow{}))
	start := time.Now()
	retryAfter(t, webhookdeliver.NewHandler(f.deps).Work(context.Background(), tasks.WebhookDeliver{DeliveryID: id}))
	require.Less(t, time.Since(start), 5*time.Second)
	at := f.attempts(t, id)
	require.Len(t, at, 1)
	require.Nil(t, at[0].StatusCode)
	require.Contains(t, *at[0].Error, "no answer within 300ms")
	require.NotContains(t, *at[0].Error, rc.srv.URL, "errors do not quote the URL")
	require.Equal(t, "retry", at[0].Outcome)
}

func TestRefusedAddressIsNeverDialled(t *testing.T) {
	f := newFixture(t)
	pol, err := delivery.ParsePolicy("127.0.0.1", "") // http allowed, loopback not
	require.NoError(t, err)
	f.deps.Policy = pol
	rc := f.receiver(t, status(http.StatusOK))
	id := f.ping(t, f.endpoint(t, rc, testenv.WebhookRow{}))
	require.NoError(t, webhookdeliver.NewHandler(f.deps).Work(context.Background(), tasks.WebhookDeliver{DeliveryID: id}))
	require.Empty(t, rc.got(), "the receiver on loopback was reached")
	d := f.delivery(t, id)
	require.Equal(t, db.WebhookDeliveryStatusFailed, d.Status)
	require.Contains(t, *d.LastError, "loopback")
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	f := newFixture(t)
	target := f.receiver(t, status(http.StatusOK))
	rc := f.receiver(t, func(_ int, w http.ResponseWriter) {
		w.Header().Set("Location", target.srv.URL)
		w.WriteHeader(http.StatusFound)
	})
	id := f.ping(t, f.endpoint(t, rc, testenv.WebhookRow{}))
	require.NoError(t, webhookdeliver.NewHandler(f.deps).Work(context.Background(), tasks.WebhookDeliver{DeliveryID: id}))
	require.Empty(t, target.got())
	require.Equal(t, int32(302), *f.delivery(t, id).LastStatusCode)
	require.Equal(t, db.WebhookDeliveryStatusFailed, f.delivery(t, id).Status)
}

func TestRotatedSecretsBothSignDuringTheOverlap(t *testing.T) {
	f := newFixture(t)
	rc := f.receiver(t, status(http.StatusOK))
	ep := f.endpoint(t, rc, testenv.WebhookRow{})
	rc.mu.Lock()
	old := rc.secret
	rc.mu.Unlock()
	fresh := delivery.NewSecret()
	sealed, kid, err := delivery.SealSecret(f.keys, f.org.ID, fresh)
	require.NoError(t, err)
	require.NoError(t, database.Tx(context.Background(), f.pg.Pool, func(q *db.Queries, _ pgx.Tx) error {
		_, err := q.WebhookEndpointRotate(context.Background(), db.WebhookEndpointRotateParams{
			ID: ep.ID, OrgID: f.org.ID, Secret: sealed, SecretKeyID: kid, OverlapUntil: time.Now().Add(time.Hour)})
		return err
	}))
	h := webhookdeliver.NewHandler(f.deps)

	require.NoError(t, h.Work(context.Background(), tasks.WebhookDeliver{DeliveryID: f.ping(t, ep)}))
	got := rc.got()[0]
	require.Len(t, strings.Fields(got.signature), 2, "two signatures during the overlap")
	hdr := http.Header{}
	hdr.Set(delivery.HeaderID, got.id)
	hdr.Set(delivery.HeaderTimestamp, got.timestamp)
	hdr.Set(delivery.HeaderSignature, got.signature)
	require.NoError(t, delivery.Verify(old, got.body, hdr), "a receiver holding the old secret verifies")
	require.NoError(t, delivery.Verify(fresh, got.body, hdr), "a receiver holding the new secret verifies")

	// After the overlap only the new secret signs.
	_, err = f.pg.Pool.Exec(context.Background(), `UPDATE webhook_endpoints SET previous_secret_expires_at = now() - interval '1 second' WHERE id = $1`, ep.ID)
	require.NoError(t, err)
	require.NoError(t, h.Work(context.Background(), tasks.WebhookDeliver{DeliveryID: f.ping(t, ep)}))
	got = rc.got()[1]
	require.Len(t, strings.Fields(got.signature), 1)
	hdr.Set(delivery.HeaderID, got.id)
	hdr.Set(delivery.HeaderTimestamp, got.timestamp)
	hdr.Set(delivery.HeaderSignature, got.signature)
	require.NoError(t, delivery.Verify(fresh, got.body, hdr))
	require.Error(t, delivery.Verify(old, got.body, hdr))
}

func TestAnswerIsCappedAndStoredAsText(t *testing.T) {
	f := newFixture(t)
	var wrote atomic.Int64
	rc := f.receiver(t, func(_ int, w http.ResponseWriter) {
		w.WriteHeader(http.StatusOK)
		chunk := []byte(strings.Repeat("é", 512)) // 2 bytes each, so 1 KiB may cut one
		for range 1024 {                          // 1 MiB offered
			n, err := w.Write(chunk)
			wrote.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	id := f.ping(t, f.endpoint(t, rc, testenv.WebhookRow{}))
	require.NoError(t, webhookdeliver.NewHandler(f.deps).Work(context.Background(), tasks.WebhookDeliver{DeliveryID: id}))
	at := f.attempts(t, id)
	require.Len(t, at, 1)
	require.LessOrEqual(t, len(at[0].ResponseBody), webhookdeliver.MaxResponseStored)
	require.GreaterOrEqual(t, len(at[0].ResponseBody), webhookdeliver.MaxResponseStored-2)
	require.True(t, utf8.ValidString(at[0].ResponseBody))
	require.Equal(t, db.WebhookDeliveryStatusSucceeded, f.delivery(t, id).Status)
}

func TestSlowEndpointHoldsOnlyItsOwnSlots(t *testing.T) {
	f := newFixture(t)
	f.deps.Concurrency = 1
	f.deps.Timeout = 10 * time.Second
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	slow := f.receiver(t, func(_ int, w http.ResponseWriter) {
		entered <- struct{}{}
		<-release
		w.WriteHeader(http.StatusOK)
	})
	fast := f.receiver(t, status(http.StatusOK))
	slowEp := f.endpoint(t, slow, testenv.WebhookRow{})
	fastEp := f.endpoint(t, fast, testenv.WebhookRow{})
	h := webhookdeliver.NewHandler(f.deps)
	ctx := context.Background()

	first, second := f.ping(t, slowEp), f.ping(t, slowEp)
	done := make(chan error, 1)
	go func() { done <- h.Work(ctx, tasks.WebhookDeliver{DeliveryID: first}) }()
	<-entered

	// The slow endpoint's only slot is held: its next delivery waits a moment...
	wait := retryAfter(t, h.Work(ctx, tasks.WebhookDeliver{DeliveryID: second}))
	require.Less(t, wait, 2*time.Second)
	require.Equal(t, int32(0), f.delivery(t, second).Attempts)
	// ...and another endpoint's delivery goes through meanwhile.
	start := time.Now()
	require.NoError(t, h.Work(ctx, tasks.WebhookDeliver{DeliveryID: f.ping(t, fastEp)}))
	require.Less(t, time.Since(start), 2*time.Second)
	require.Len(t, fast.got(), 1)

	close(release)
	require.NoError(t, <-done)
	require.NoError(t, h.Work(ctx, tasks.WebhookDeliver{DeliveryID: second}), "the slot is free again")
	require.Equal(t, db.WebhookDeliveryStatusSucceeded, f.delivery(t, second).Status)
}

func TestMissingDeliveryIsPermanent(t *testing.T) {
	f := newFixture(t)
	err := webhookdeliver.NewHandler(f.deps).Work(context.Background(), tasks.WebhookDeliver{DeliveryID: 987654})
	require.Error(t, err)
	var ra *queue.RetryAfterError
	require.False(t, errors.As(err, &ra))
	require.ErrorContains(t, err, "not found")
}

// Every event type is delivered once, signed, with its envelope; the library
// refuses the same request with its body altered; another organization's endpoint
// receives none of it.
func TestEveryEventTypeIsDeliveredSigned(t *testing.T) {
	f := newFixture(t)
	rc := f.receiver(t, status(http.StatusOK))
	ep := f.endpoint(t, rc, testenv.WebhookRow{})
	other := f.pg.Org(t)
	foreign := f.receiver(t, status(http.StatusOK))
	f.pg.InsertWebhook(t, f.keys, other.ID, testenv.WebhookRow{URL: foreign.srv.URL})
	h := webhookdeliver.NewHandler(f.deps)
	ctx := context.Background()

	types := webhook.Types()
	for i, ti := range types {
		data := reflect.New(ti.Data).Interface()
		var out webhook.Emitted
		require.NoError(t, database.Tx(ctx, f.pg.Pool, func(q *db.Queries, _ pgx.Tx) error {
			var err error
			out, err = webhook.Emit(ctx, q, webhook.Event{
				OrgID: f.org.ID, Type: ti.Type, EntityType: db.EntityTypeWebhook, EntityID: int64(i + 1),
				DedupKey: "all-types:" + ti.Type, Data: data,
			})
			return err
		}), ti.Type)
		require.Len(t, out.Deliveries, 1, ti.Type)
		require.NoError(t, h.Work(ctx, tasks.WebhookDeliver{DeliveryID: out.Deliveries[0]}), ti.Type)
	}
	got := rc.got()
	require.Len(t, got, len(types))
	seen := map[string]bool{}
	for i, g := range got {
		require.NoError(t, g.verifyErr, types[i].Type)
		var env struct {
			ID, Type       string
			OrganizationID int64 `json:"organization_id"`
			Data           json.RawMessage
		}
		require.NoError(t, json.Unmarshal(g.body, &env))
		require.Equal(t, types[i].Type, env.Type)
		require.Equal(t, g.id, env.ID)
		require.Equal(t, f.org.ID, env.OrganizationID)
		require.False(t, seen[env.ID], "event ids are unique")
		seen[env.ID] = true

		hdr := http.Header{}
		hdr.Set(delivery.HeaderID, g.id)
		hdr.Set(delivery.HeaderTimestamp, g.timestamp)
		hdr.Set(delivery.HeaderSignature, g.signature)
		altered := bytes.Replace(g.body, []byte(env.Type), []byte(env.Type+"x"), 1)
		require.Error(t, delivery.Verify(rc.secret, altered, hdr), "an altered body must not verify")
	}
	require.Empty(t, foreign.got(), "another organization's endpoint received this organization's events")
	_ = ep
}
