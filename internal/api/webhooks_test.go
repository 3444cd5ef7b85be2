package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/api"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/internal/webhook"
	"github.com/labelq/labelq/internal/webhook/delivery"
)

// A public address (TEST-NET-3) the URL policy lets through without a DNS lookup.
const receiverURL = "https://203.0.113.7/labelq-events"

func (w *fixture) createWebhook(t *testing.T, c client, body map[string]any) map[string]any {
	t.Helper()
	if _, ok := body["url"]; !ok {
		body["url"] = receiverURL
	}
	r := c.do("POST", "/v1/webhooks", body)
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	return r.json(t)
}

func whID(m map[string]any) int64 { return int64(m["id"].(float64)) }

// endpointRow reads an endpoint as stored, past the API.
func (w *fixture) endpointRow(t *testing.T, id int64) db.WebhookEndpoint {
	t.Helper()
	var ep db.WebhookEndpoint
	err := w.env.PG.Pool.QueryRow(context.Background(), `SELECT secret, secret_key_id, previous_secret, previous_secret_key_id, previous_secret_expires_at, org_id
		FROM webhook_endpoints WHERE id = $1`, id).
		Scan(&ep.Secret, &ep.SecretKeyID, &ep.PreviousSecret, &ep.PreviousSecretKeyID, &ep.PreviousSecretExpiresAt, &ep.OrgID)
	require.NoError(t, err)
	return ep
}

func sealedOf(ep db.WebhookEndpoint) delivery.Sealed {
	return delivery.Sealed{OrgID: ep.OrgID, Secret: ep.Secret, SecretKeyID: ep.SecretKeyID,
		Previous: ep.PreviousSecret, PreviousKeyID: ep.PreviousSecretKeyID, PreviousExpires: ep.PreviousSecretExpiresAt}
}

func TestWebhookSecretIsShownOnce(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	r := w.orgA.do("POST", "/v1/webhooks", map[string]any{"url": receiverURL, "description": "platform"}, "Idempotency-Key", "wh-1")
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	created := r.json(t)
	secret, _ := created["secret"].(string)
	require.True(t, strings.HasPrefix(secret, delivery.SecretPrefix), "create answers the secret: %s", r.Body)
	require.Equal(t, true, created["enabled"], "enabled by default")
	require.Equal(t, []any{}, created["event_types"], "no types: every type")
	require.Equal(t, []any{}, created["project_ids"])
	id := whID(created)

	for _, path := range []string{fmt.Sprintf("/v1/webhooks/%d", id), "/v1/webhooks"} {
		r := w.orgA.do("GET", path, nil)
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		require.NotContains(t, string(r.Body), secret, "%s shows the secret", path)
		require.NotContains(t, string(r.Body), `"secret"`, "%s", path)
	}
	replay := w.orgA.do("POST", "/v1/webhooks", map[string]any{"url": receiverURL, "description": "platform"}, "Idempotency-Key", "wh-1")
	require.Equal(t, http.StatusCreated, replay.Status, string(replay.Body))
	require.Equal(t, "true", replay.Header.Get("Idempotent-Replayed"))
	require.NotContains(t, string(replay.Body), secret, "a replay does not show the secret again")
	require.Equal(t, float64(id), replay.json(t)["id"], "a replay makes no second endpoint")

	// Stored sealed: not the secret, in no form, and it opens to it only with
	// the deployment's key for this organization.
	ep := w.endpointRow(t, id)
	require.NotContains(t, string(ep.Secret), secret)
	require.NotContains(t, string(ep.Secret), strings.TrimPrefix(secret, delivery.SecretPrefix))
	got, err := delivery.OpenSecret(w.a.Storages.Keys, w.orgAID, ep.Secret, ep.SecretKeyID)
	require.NoError(t, err)
	require.Equal(t, secret, got)
	_, err = delivery.OpenSecret(w.a.Storages.Keys, w.orgAID+1, ep.Secret, ep.SecretKeyID)
	require.Error(t, err, "the sealed secret is bound to its organization")
}

func TestWebhookURLsAreHeldToTheDeliveryPolicy(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	refused := map[string]string{
		"http to a public host":    "http://203.0.113.7/hook",
		"ftp":                      "ftp://203.0.113.7/hook",
		"a private address":        "https://10.0.0.1/hook",
		"loopback":                 "https://127.0.0.1:8443/hook",
		"a name of loopback":       "https://localhost/hook",
		"cloud metadata":           "https://169.254.169.254/latest/meta-data",
		"user info":                "https://user:pw@203.0.113.7/hook",
		"not absolute":             "/hook/only-a-path",
		"spaces":                   "https://203.0.113.7/a hook",
		"too long":                 "https://203.0.113.7/" + strings.Repeat("a", 2100),
		"IPv6 unique local (fc00)": "https://[fd00::1]/hook",
	}
	for name, u := range refused {
		t.Run(name, func(t *testing.T) {
			r := w.orgA.do("POST", "/v1/webhooks", map[string]any{"url": u})
			require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
			require.Contains(t, fieldErrors(t, r), "url", string(r.Body))
			require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))
		})
	}
	r := w.orgA.do("POST", "/v1/webhooks", map[string]any{"description": "no url"})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
	require.Contains(t, fieldErrors(t, r)["url"], "is required")

	// A PATCH is held to the same policy.
	id := whID(w.createWebhook(t, w.orgA, map[string]any{}))
	r = w.orgA.do("PATCH", fmt.Sprintf("/v1/webhooks/%d", id), map[string]any{"url": "https://192.168.1.10/hook"})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
	require.Contains(t, fieldErrors(t, r)["url"], "private, loopback or link-local")
	require.Equal(t, receiverURL, w.orgA.do("GET", fmt.Sprintf("/v1/webhooks/%d", id), nil).json(t)["url"], "a refused PATCH changes nothing")

	// The operator's settings open what they list, and nothing else.
	pol, err := delivery.ParsePolicy("127.0.0.1", "127.0.0.0/8")
	require.NoError(t, err)
	s := &api.Server{Pool: w.a.APIPool, Store: w.a.Store, Inspector: w.a.Inspector, Log: testenv.Quiet(), Storages: w.a.Storages, WebhookPolicy: pol}
	mux := http.NewServeMux()
	s.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	dev := client{t, srv.URL, w.orgA.token}
	r = dev.do("POST", "/v1/webhooks", map[string]any{"url": "http://127.0.0.1:9999/hook"})
	require.Equal(t, http.StatusCreated, r.Status, "allowed http host on an allowed network: %s", r.Body)
	r = dev.do("POST", "/v1/webhooks", map[string]any{"url": "https://10.0.0.1/hook"})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, "a network the operator did not list: %s", r.Body)
	r = dev.do("POST", "/v1/webhooks", map[string]any{"url": "http://203.0.113.7/hook"})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, "http to a host not listed: %s", r.Body)
}

func TestWebhookEventTypesAndProjectsAreChecked(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	pid := w.project(t, w.orgA, "a-project")
	foreign := w.project(t, w.orgB, "b-project")

	r := w.orgA.do("POST", "/v1/webhooks", map[string]any{"url": receiverURL, "event_types": []string{"export.completed", "export.exploded"}})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
	msg := fieldErrors(t, r)["event_types"]
	require.Contains(t, msg, `"export.exploded" is not an event type`)
	for _, typ := range webhook.Types() {
		require.Contains(t, msg, typ.Type, "the refusal lists the known types")
	}

	answer := func(ids []int64) string {
		r := w.orgA.do("POST", "/v1/webhooks", map[string]any{"url": receiverURL, "project_ids": ids})
		require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
		return strings.NewReplacer(fmt.Sprint(ids[len(ids)-1]), "N").Replace(fieldErrors(t, r)["project_ids"])
	}
	ofOrgB, missing := answer([]int64{pid, foreign}), answer([]int64{pid, 999999999})
	require.Contains(t, ofOrgB, "does not exist in your organization")
	require.Equal(t, missing, ofOrgB, "another organization's project is refused as one that does not exist")

	ok := w.createWebhook(t, w.orgA, map[string]any{
		"event_types": []string{"export.completed", "export.failed", "export.completed"}, "project_ids": []int64{pid, pid},
	})
	require.Equal(t, []any{"export.completed", "export.failed"}, ok["event_types"], "each type once")
	require.Equal(t, []any{float64(pid)}, ok["project_ids"])
}

func TestWebhookPatchMerges(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	pid := w.project(t, w.orgA, "patched")
	id := whID(w.createWebhook(t, w.orgA, map[string]any{
		"description": "first", "event_types": []string{"export.completed"}, "project_ids": []int64{pid},
	}))
	path := fmt.Sprintf("/v1/webhooks/%d", id)
	patch := func(body map[string]any) map[string]any {
		t.Helper()
		r := w.orgA.do("PATCH", path, body)
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		require.NotContains(t, string(r.Body), `"secret"`)
		return r.json(t)
	}

	got := patch(map[string]any{"description": "second"})
	require.Equal(t, "second", got["description"])
	require.Equal(t, receiverURL, got["url"], "absent fields keep their value")
	require.Equal(t, []any{"export.completed"}, got["event_types"])
	require.Equal(t, []any{float64(pid)}, got["project_ids"])
	require.Equal(t, true, got["enabled"])

	got = patch(map[string]any{"enabled": false, "event_types": []string{}})
	require.Equal(t, false, got["enabled"])
	require.NotNil(t, got["disabled_at"])
	require.Nil(t, got["disabled_reason"], "a person disabled it")
	require.Equal(t, []any{}, got["event_types"], "[] subscribes to every type")
	require.Equal(t, "second", got["description"])

	// labelq disabled it (410 Gone): enabling it again clears why, and the streak.
	_, err := w.env.PG.Pool.Exec(context.Background(),
		`UPDATE webhook_endpoints SET disabled_reason = 'the receiver answered 410 Gone', failing_since = now() WHERE id = $1`, id)
	require.NoError(t, err)
	got = w.orgA.do("GET", path, nil).json(t)
	require.Equal(t, "the receiver answered 410 Gone", got["disabled_reason"])
	got = patch(map[string]any{"enabled": true, "url": "https://203.0.113.8/moved", "project_ids": []int64{}})
	require.Equal(t, true, got["enabled"])
	require.Nil(t, got["disabled_reason"])
	require.Nil(t, got["disabled_at"])
	require.Nil(t, got["failing_since"])
	require.Equal(t, "https://203.0.113.8/moved", got["url"])
	require.Equal(t, []any{}, got["project_ids"])

	r := w.orgA.do("PATCH", path, map[string]any{"event_types": []string{"nope"}})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
	require.Contains(t, fieldErrors(t, r), "event_types")
	r = w.orgA.do("PATCH", fmt.Sprintf("/v1/webhooks/%d", id+1000), map[string]any{"description": "x"})
	require.Equal(t, http.StatusNotFound, r.Status, string(r.Body))
}

func TestWebhookDelete(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	keep := whID(w.createWebhook(t, w.orgA, map[string]any{}))
	id := whID(w.createWebhook(t, w.orgA, map[string]any{}))
	path := fmt.Sprintf("/v1/webhooks/%d", id)
	r := w.orgA.do("DELETE", path, nil)
	require.Equal(t, http.StatusNoContent, r.Status, string(r.Body))
	require.Empty(t, r.Body)

	for _, c := range []struct{ method, path string }{
		{"GET", path}, {"DELETE", path}, {"PATCH", path}, {"POST", path + "/test"}, {"POST", path + "/rotate-secret"}, {"GET", path + "/deliveries"},
	} {
		var body any
		if c.method == "PATCH" {
			body = map[string]any{"description": "x"}
		}
		r := w.orgA.do(c.method, c.path, body)
		require.Equal(t, http.StatusNotFound, r.Status, "%s %s: %s", c.method, c.path, r.Body)
	}
	var ids []int64
	var list struct{ Items []struct{ ID int64 } }
	require.NoError(t, json.Unmarshal(w.orgA.do("GET", "/v1/webhooks", nil).Body, &list))
	for _, it := range list.Items {
		ids = append(ids, it.ID)
	}
	require.Equal(t, []int64{keep}, ids)
}

func TestWebhookRotateSecretKeepsTheOldOneSigning(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	created := w.createWebhook(t, w.orgA, map[string]any{})
	id, old := whID(created), created["secret"].(string)
	require.Nil(t, created["secret_rotation_expires_at"])

	before := time.Now()
	r := w.orgA.do("POST", fmt.Sprintf("/v1/webhooks/%d/rotate-secret", id), nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	rot := r.json(t)
	fresh := rot["secret"].(string)
	require.True(t, strings.HasPrefix(fresh, delivery.SecretPrefix))
	require.NotEqual(t, old, fresh)
	until, err := time.Parse(time.RFC3339Nano, rot["secret_rotation_expires_at"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, before.Add(api.DefaultWebhookSecretOverlap), until, time.Minute)

	got := w.orgA.do("GET", fmt.Sprintf("/v1/webhooks/%d", id), nil)
	require.NotContains(t, string(got.Body), fresh)
	require.NotContains(t, string(got.Body), old)
	require.NotNil(t, got.json(t)["secret_rotation_expires_at"], "the endpoint says a previous secret still signs")

	sealed := sealedOf(w.endpointRow(t, id))
	secrets, err := delivery.SigningSecrets(w.a.Storages.Keys, sealed, time.Now())
	require.NoError(t, err)
	require.Equal(t, []string{fresh, old}, secrets, "both sign during the overlap")
	body := []byte(`{"id":"msg_x","type":"webhook.test"}`)
	h := http.Header{}
	require.NoError(t, delivery.SetHeaders(h, secrets, "msg_x", time.Now(), body))
	require.NoError(t, delivery.Verify(old, body, h), "a receiver still holding the old secret verifies")
	require.NoError(t, delivery.Verify(fresh, body, h), "one holding the new secret verifies")

	after, err := delivery.SigningSecrets(w.a.Storages.Keys, sealed, until.Add(time.Second))
	require.NoError(t, err)
	require.Equal(t, []string{fresh}, after, "after the overlap only the new one signs")

	// The overlap is the operator's setting.
	s := &api.Server{Pool: w.a.APIPool, Store: w.a.Store, Inspector: w.a.Inspector, Log: testenv.Quiet(), Storages: w.a.Storages,
		WebhookSecretOverlap: time.Hour}
	mux := http.NewServeMux()
	s.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	before = time.Now()
	r = client{t, srv.URL, w.orgA.token}.do("POST", fmt.Sprintf("/v1/webhooks/%d/rotate-secret", id), nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	until, err = time.Parse(time.RFC3339Nano, r.json(t)["secret_rotation_expires_at"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, before.Add(time.Hour), until, time.Minute)
}

func (w *fixture) deliveriesOf(t *testing.T, endpointID int64) []db.WebhookDelivery {
	t.Helper()
	rows, err := w.env.PG.Pool.Query(context.Background(), `SELECT * FROM webhook_deliveries WHERE endpoint_id = $1 ORDER BY id`, endpointID)
	require.NoError(t, err)
	var out []db.WebhookDelivery
	for rows.Next() {
		var d db.WebhookDelivery
		require.NoError(t, rows.Scan(&d.ID, &d.OrgID, &d.EndpointID, &d.EventID, &d.Status, &d.Attempts, &d.Round, &d.RoundStart,
			&d.NextAttemptAt, &d.LastStatusCode, &d.LastError, &d.FinishedAt, &d.CreatedAt, &d.UpdatedAt))
		out = append(out, d)
	}
	require.NoError(t, rows.Err())
	return out
}

func TestWebhookTestPingsThatEndpointOnly(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	pid := w.project(t, w.orgA, "pinged")
	// Subscribed to one type of one project: a ping reaches it anyway.
	narrow := whID(w.createWebhook(t, w.orgA, map[string]any{"event_types": []string{"export.completed"}, "project_ids": []int64{pid}}))
	other := whID(w.createWebhook(t, w.orgA, map[string]any{}))
	orgB := whID(w.createWebhook(t, w.orgB, map[string]any{}))

	r := w.orgA.do("POST", fmt.Sprintf("/v1/webhooks/%d/test", narrow), nil)
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	ping := r.json(t)
	eventID, _ := ping["event_id"].(string)
	require.True(t, strings.HasPrefix(eventID, "msg_"), string(r.Body))
	deliveryID := int64(ping["delivery_id"].(float64))

	ds := w.deliveriesOf(t, narrow)
	require.Len(t, ds, 1)
	require.Equal(t, deliveryID, ds[0].ID)
	require.Equal(t, db.WebhookDeliveryStatusPending, ds[0].Status)
	require.Empty(t, w.deliveriesOf(t, other), "another endpoint of the organization gets nothing")
	require.Empty(t, w.deliveriesOf(t, orgB))
	q := testenv.RequireQueued(t, w.env.PG.Pool, w.orgAID, tasks.WebhookDeliver{DeliveryID: deliveryID})
	require.Equal(t, "webhook:deliver", q.TaskType)
	require.Equal(t, q.TaskID, ping["task_id"])

	evs, err := w.env.PG.Q.WebhookEventsOfEntity(context.Background(), db.WebhookEventsOfEntityParams{OrgID: w.orgAID, EntityType: db.EntityTypeWebhook, EntityID: narrow})
	require.NoError(t, err)
	require.Len(t, evs, 1)
	var env struct {
		ID   string
		Type string
		Data webhook.WebhookTestData
	}
	require.NoError(t, json.Unmarshal([]byte(evs[0].Body), &env))
	require.Equal(t, eventID, env.ID)
	require.Equal(t, webhook.WebhookTest, env.Type)
	require.Equal(t, narrow, env.Data.WebhookID)
	require.NotEmpty(t, env.Data.Message)

	r = w.orgA.do("PATCH", fmt.Sprintf("/v1/webhooks/%d", other), map[string]any{"enabled": false})
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	r = w.orgA.do("POST", fmt.Sprintf("/v1/webhooks/%d/test", other), nil)
	require.Equal(t, http.StatusConflict, r.Status, string(r.Body))
	require.Contains(t, string(r.Body), "enable it first")
	require.Empty(t, w.deliveriesOf(t, other))
}

// attempt records an attempt of a delivery and its outcome, as webhook:deliver does.
func (w *fixture) attempt(t *testing.T, d int64, n int32, code int32, body, outcome string, status db.WebhookDeliveryStatus) {
	t.Helper()
	ctx := context.Background()
	q := w.env.PG.Q
	var errText *string
	if code >= 500 {
		e := fmt.Sprintf("the receiver answered %d", code)
		errText = &e
	}
	require.NoError(t, q.WebhookAttemptInsert(ctx, db.WebhookAttemptInsertParams{
		OrgID: w.orgAID, DeliveryID: d, Attempt: n, StartedAt: time.Now().Add(-time.Minute), LatencyMs: 40 + n,
		StatusCode: &code, ResponseBody: body, Error: errText, Outcome: outcome,
	}))
	require.NoError(t, q.WebhookDeliveryRecord(ctx, db.WebhookDeliveryRecordParams{
		ID: d, Attempts: n, Status: status, NextAttemptAt: time.Now().Add(5 * time.Second), LastStatusCode: &code, LastError: errText,
	}))
}

func TestWebhookDeliveriesShowTheirAttempts(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	id := whID(w.createWebhook(t, w.orgA, map[string]any{}))
	ping := func() int64 {
		r := w.orgA.do("POST", fmt.Sprintf("/v1/webhooks/%d/test", id), nil)
		require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
		return int64(r.json(t)["delivery_id"].(float64))
	}
	first, second := ping(), ping()
	w.attempt(t, first, 1, 503, "busy, try later", "retry", db.WebhookDeliveryStatusPending)
	w.attempt(t, first, 2, 200, "ok", "succeeded", db.WebhookDeliveryStatusSucceeded)

	type attempt struct {
		Attempt      int32      `json:"attempt"`
		StartedAt    *time.Time `json:"started_at"`
		LatencyMs    int32      `json:"latency_ms"`
		StatusCode   *int32     `json:"status_code"`
		ResponseBody string     `json:"response_body"`
		Error        *string    `json:"error"`
		Outcome      string     `json:"outcome"`
	}
	type deliveryOut struct {
		ID             int64      `json:"id"`
		WebhookID      int64      `json:"webhook_id"`
		EventID        string     `json:"event_id"`
		EventType      string     `json:"event_type"`
		Status         string     `json:"status"`
		Attempts       int32      `json:"attempts"`
		NextAttemptAt  *time.Time `json:"next_attempt_at"`
		LastStatusCode *int32     `json:"last_status_code"`
		FinishedAt     *time.Time `json:"finished_at"`
		AttemptLog     []attempt  `json:"attempt_log"`
	}
	list := func(query string) []deliveryOut {
		t.Helper()
		r := w.orgA.do("GET", fmt.Sprintf("/v1/webhooks/%d/deliveries%s", id, query), nil)
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		var out struct{ Items []deliveryOut }
		require.NoError(t, json.Unmarshal(r.Body, &out))
		return out.Items
	}
	ids := func(ds []deliveryOut) []int64 {
		out := []int64{}
		for _, d := range ds {
			out = append(out, d.ID)
		}
		return out
	}
	all := list("")
	require.Len(t, all, 2)
	require.Equal(t, []int64{second, first}, ids(all), "newest first")

	pending := all[0]
	require.Equal(t, "pending", pending.Status)
	require.NotNil(t, pending.NextAttemptAt)
	require.Empty(t, pending.AttemptLog)
	require.NotNil(t, pending.AttemptLog, "no attempts is [], not null")

	done := all[1]
	require.Equal(t, id, done.WebhookID)
	require.True(t, strings.HasPrefix(done.EventID, "msg_"))
	require.Equal(t, webhook.WebhookTest, done.EventType)
	require.Equal(t, "succeeded", done.Status)
	require.Equal(t, int32(2), done.Attempts)
	require.Nil(t, done.NextAttemptAt, "a finished delivery has no next attempt")
	require.NotNil(t, done.FinishedAt)
	require.Equal(t, int32(200), *done.LastStatusCode)
	require.Len(t, done.AttemptLog, 2)
	a1, a2 := done.AttemptLog[0], done.AttemptLog[1]
	require.Equal(t, int32(1), a1.Attempt)
	require.Equal(t, int32(503), *a1.StatusCode)
	require.Equal(t, "busy, try later", a1.ResponseBody)
	require.Equal(t, "the receiver answered 503", *a1.Error)
	require.Equal(t, "retry", a1.Outcome)
	require.Equal(t, int32(41), a1.LatencyMs)
	require.NotNil(t, a1.StartedAt)
	require.Equal(t, int32(2), a2.Attempt)
	require.Equal(t, "succeeded", a2.Outcome)
	require.Nil(t, a2.Error)

	require.Equal(t, []int64{first}, ids(list("?status=succeeded")))
	require.Equal(t, []int64{second}, ids(list("?status=pending")))
	require.Empty(t, list("?status=failed"))
	require.Equal(t, []int64{first}, ids(list(fmt.Sprintf("?before=%d", second))))
	require.Equal(t, []int64{second}, ids(list("?limit=1")))
	r := w.orgA.do("GET", fmt.Sprintf("/v1/webhooks/%d/deliveries?status=lost", id), nil)
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
	require.Contains(t, fieldErrors(t, r), "status")
}

func TestWebhookRedelivery(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	id := whID(w.createWebhook(t, w.orgA, map[string]any{}))
	ping := func(endpoint int64) int64 {
		r := w.orgA.do("POST", fmt.Sprintf("/v1/webhooks/%d/test", endpoint), nil)
		require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
		return int64(r.json(t)["delivery_id"].(float64))
	}
	d := ping(id)
	redeliver := func(d int64) reply {
		return w.orgA.do("POST", fmt.Sprintf("/v1/webhook-deliveries/%d/redeliver", d), nil)
	}

	r := redeliver(d)
	require.Equal(t, http.StatusConflict, r.Status, "a pending delivery: %s", r.Body)
	require.Contains(t, string(r.Body), "already pending")
	testenv.RequireNotQueued(t, w.env.PG.Pool, w.orgAID, tasks.WebhookDeliver{DeliveryID: d, Run: tasks.RedeliverRun(1)})

	w.attempt(t, d, 1, 400, "bad request", "failed", db.WebhookDeliveryStatusFailed)
	before := w.deliveriesOf(t, id)[0]
	r = redeliver(d)
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	got := r.json(t)
	require.Equal(t, "pending", got["status"])
	require.Equal(t, float64(1), got["round"])
	require.Equal(t, float64(1), got["attempts"], "a redelivery keeps the attempts made")
	require.Len(t, got["attempt_log"], 1)
	after := w.deliveriesOf(t, id)[0]
	require.Equal(t, before.Round+1, after.Round)
	require.Equal(t, after.Attempts, after.RoundStart, "the new round's schedule starts at its first attempt")
	require.Nil(t, after.FinishedAt)
	require.Equal(t, before.EventID, after.EventID, "the same event, so the same webhook-id")
	q := testenv.RequireQueued(t, w.env.PG.Pool, w.orgAID, tasks.WebhookDeliver{DeliveryID: d, Run: "r1"})
	require.Equal(t, fmt.Sprintf("webhook:deliver:%d:r1", d), q.TaskID)

	r = redeliver(d)
	require.Equal(t, http.StatusConflict, r.Status, "redelivered, so pending again: %s", r.Body)

	// An endpoint disabled, then deleted: nowhere to redeliver to.
	gone := whID(w.createWebhook(t, w.orgA, map[string]any{}))
	dg := ping(gone)
	w.attempt(t, dg, 1, 500, "", "failed", db.WebhookDeliveryStatusFailed)
	require.Equal(t, http.StatusOK, w.orgA.do("PATCH", fmt.Sprintf("/v1/webhooks/%d", gone), map[string]any{"enabled": false}).Status)
	r = redeliver(dg)
	require.Equal(t, http.StatusConflict, r.Status, string(r.Body))
	require.Contains(t, string(r.Body), "enable it first")
	require.Equal(t, http.StatusNoContent, w.orgA.do("DELETE", fmt.Sprintf("/v1/webhooks/%d", gone), nil).Status)
	r = redeliver(dg)
	require.Equal(t, http.StatusConflict, r.Status, string(r.Body))
	require.Contains(t, string(r.Body), "was deleted")
	require.Equal(t, db.WebhookDeliveryStatusFailed, w.deliveriesOf(t, gone)[0].Status)

	r = redeliver(999999999)
	require.Equal(t, http.StatusNotFound, r.Status, string(r.Body))
}

// TestAPIStateChangesEmitWebhookEvents: a cancel and a revoke made through the API
// write their webhook event in their own transaction, for an organization with an
// endpoint; an organization without one gets no event row.
func TestAPIStateChangesEmitWebhookEvents(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	s := w.seed(t) // org A has an endpoint of every type
	ctx := context.Background()
	eventsOf := func(org int64, et db.EntityType, id int64) []db.WebhookEvent {
		t.Helper()
		evs, err := w.env.PG.Q.WebhookEventsOfEntity(ctx, db.WebhookEventsOfEntityParams{OrgID: org, EntityType: et, EntityID: id})
		require.NoError(t, err)
		return evs
	}

	r := w.orgA.do("POST", fmt.Sprintf("/v1/exports/%d/cancel", s.ExportID), nil)
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	evs := eventsOf(w.orgAID, db.EntityTypeExport, s.ExportID)
	require.Len(t, evs, 1)
	require.Equal(t, webhook.ExportCancelled, evs[0].EventType)
	var ex struct {
		Type           string
		OrganizationID int64 `json:"organization_id"`
		Data           webhook.ExportData
	}
	require.NoError(t, json.Unmarshal([]byte(evs[0].Body), &ex))
	require.Equal(t, webhook.ExportCancelled, ex.Type)
	require.Equal(t, w.orgAID, ex.OrganizationID)
	require.Equal(t, s.ExportID, ex.Data.ExportID)
	require.Equal(t, s.ProjectID, ex.Data.ProjectID)
	require.Equal(t, "cancelled", ex.Data.Status)
	require.Equal(t, "api", ex.Data.Trigger)
	ds := w.deliveriesOf(t, s.WebhookID)
	require.Len(t, ds, 2, "the seed's ping and the cancel")
	testenv.RequireQueued(t, w.env.PG.Pool, w.orgAID, tasks.WebhookDeliver{DeliveryID: ds[1].ID})

	r = w.orgA.do("POST", fmt.Sprintf("/v1/assignments/%d/revoke", s.AssignmentID), nil)
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	evs = eventsOf(w.orgAID, db.EntityTypeAssignment, s.AssignmentID)
	require.Len(t, evs, 1)
	require.Equal(t, webhook.AssignmentRevoked, evs[0].EventType)
	var as struct{ Data webhook.AssignmentData }
	require.NoError(t, json.Unmarshal([]byte(evs[0].Body), &as))
	require.Equal(t, s.AssignmentID, as.Data.AssignmentID)
	require.Equal(t, s.JobID, as.Data.JobID)
	require.Equal(t, s.UserID, as.Data.UserID)
	require.Equal(t, s.FileID, *as.Data.FileID)
	require.Equal(t, "revoked", as.Data.Status)
	require.NotNil(t, as.Data.Reason)

	// Org B has no endpoint: its cancel writes no event.
	pid := w.project(t, w.orgB, "b-exports")
	r = w.orgB.do("POST", fmt.Sprintf("/v1/projects/%d/exports", pid), map[string]any{})
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	exportB := id(t, r)
	require.Equal(t, http.StatusAccepted, w.orgB.do("POST", fmt.Sprintf("/v1/exports/%d/cancel", exportB), nil).Status)
	var orgB int64
	require.NoError(t, w.env.PG.Pool.QueryRow(ctx, "SELECT id FROM organizations WHERE name = 'org-b'").Scan(&orgB))
	require.Empty(t, eventsOf(orgB, db.EntityTypeExport, exportB))
}

// TestJobChangeRevokesEmitWebhookEvents: a revoke by rule (a job's language
// changed beyond its annotator) is an assignment.revoked event with the rule.
func TestJobChangeRevokesEmitWebhookEvents(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	s := w.seed(t)
	r := w.orgA.do("PATCH", fmt.Sprintf("/v1/projects/%d", s.ProjectID), map[string]any{"min_language_proficiency": 3})
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	r = w.orgA.do("PATCH", fmt.Sprintf("/v1/jobs/%d", s.JobID), map[string]any{"language": "zh"})
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	evs, err := w.env.PG.Q.WebhookEventsOfEntity(context.Background(), db.WebhookEventsOfEntityParams{OrgID: w.orgAID, EntityType: db.EntityTypeAssignment, EntityID: s.AssignmentID})
	require.NoError(t, err)
	require.Len(t, evs, 1)
	var as struct{ Data webhook.AssignmentData }
	require.NoError(t, json.Unmarshal([]byte(evs[0].Body), &as))
	require.Equal(t, "revoked", as.Data.Status)
	require.NotNil(t, as.Data.Rule)
	require.Equal(t, "language", *as.Data.Rule)
	require.Contains(t, *as.Data.Reason, "language changed from en to zh")
}

// TestWebhooksOfAnotherOrgAre404: on every webhook route that names an endpoint
// or a delivery, another organization's full token gets exactly the answer a
// missing id gets.
func TestWebhooksOfAnotherOrgAre404(t *testing.T) {
	t.Parallel()
	w := newFixture(t)
	s := w.seed(t)
	missing := s
	missing.WebhookID, missing.DeliveryID = 999999999, 999999999
	n := 0
	for _, rt := range (&api.Server{}).Routes() {
		if rt.Tag != "webhooks" || !strings.Contains(rt.Path, "{") {
			continue
		}
		n++
		t.Run(rt.Method+" "+rt.Path, func(t *testing.T) {
			foreign := w.orgB.do(rt.Method, s.fill(rt.Path), validBody(rt))
			require.Equal(t, http.StatusNotFound, foreign.Status, string(foreign.Body))
			none := w.orgB.do(rt.Method, missing.fill(rt.Path), validBody(rt))
			require.Equal(t, http.StatusNotFound, none.Status, string(none.Body))
			require.JSONEq(t, string(none.Body), string(foreign.Body), "a foreign id answers as a missing one")
		})
	}
	require.Equal(t, 7, n)
	// Org A's endpoint and delivery are untouched.
	r := w.orgA.do("GET", fmt.Sprintf("/v1/webhooks/%d", s.WebhookID), nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	require.Equal(t, "org A's receiver", r.json(t)["description"])
	require.Len(t, w.deliveriesOf(t, s.WebhookID), 1)
}
