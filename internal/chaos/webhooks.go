package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/webhook"
	"github.com/labelq/labelq/internal/webhook/delivery"
)

// The webhook part of the workload: before anything else happens, the run's
// organization registers an endpoint at a receiver the runner starts (a real HTTP
// server on loopback that verifies every request with the Standard Webhooks
// library, as a platform would), reliable and subscribed to every type; once the
// main project exists, a flaky one limited to that project's file_version and
// export events, which answers 500 to a third of its requests and hangs past the
// delivery timeout on a tenth. (Limited to one project, it exercises the project
// filter, and its backlog, which drains through its own few slots, stays small
// enough for the run to settle in minutes.) Every fault of the run happens with
// deliveries in flight; the invariants then compare the database's events and
// deliveries with what the receiver verified.

// Webhook settings of the run's processes: a short retry schedule so the run
// converges (about 50 s from the first attempt to the last), and a timeout the
// flaky endpoint's hangs outlast.
const (
	webhookRetrySchedule = "0s,1s,2s,5s,10s,10s,10s,10s"
	webhookTimeout       = 2 * time.Second
	webhookHang          = webhookTimeout + time.Second

	reliablePath = "/hooks/reliable"
	flakyPath    = "/hooks/flaky"
)

// webhookVars are the labelq processes' webhook settings: plain http and
// loopback allowed for the runner's receiver only.
func webhookVars() []string {
	return []string{
		"LABELQ_WEBHOOK_ALLOW_HTTP=127.0.0.1",
		"LABELQ_WEBHOOK_ALLOWED_NETWORKS=127.0.0.0/8",
		"LABELQ_WEBHOOK_RETRY_SCHEDULE=" + webhookRetrySchedule,
		"LABELQ_WEBHOOK_TIMEOUT=" + webhookTimeout.String(),
	}
}

// flakyTypes are the event types the flaky endpoint subscribes to.
var flakyTypes = []string{
	webhook.FileVersionValidated, webhook.FileVersionCorrupt, webhook.FileVersionRejected, webhook.FileVersionMissing,
	webhook.ExportCompleted, webhook.ExportFailed, webhook.ExportCancelled,
}

// hookReceipt is what the receiver verified of one event (one webhook-id).
type hookReceipt struct {
	// Reliable and Flaky count the verified requests each endpoint answered 2xx.
	Reliable, Flaky int
	// First is the first verified 2xx answer at the reliable endpoint.
	First time.Time
}

// hookCounts are the receiver's totals.
type hookCounts struct {
	Requests    int // every request, whatever its path or signature
	Invalid     int // requests whose signature the library refused (or an unknown path)
	Flaky500    int
	FlakyHung   int // requests held past the delivery timeout
	FlakyOK     int
	ReliableOK  int
	ByID        map[string]hookReceipt
	Unreachable error // set when the receiver never ran (its figures cannot look)
}

// hookReceiver is the platform's side: one server, one path per endpoint.
type hookReceiver struct {
	URL string // http://127.0.0.1:port
	srv *http.Server
	ln  net.Listener

	mu      sync.Mutex
	secrets map[string]string // path → signing secret
	counts  hookCounts
	rng     *rand.Rand
}

func startHookReceiver(host string) (*hookReceiver, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return nil, fmt.Errorf("webhook receiver: %w", err)
	}
	h := &hookReceiver{URL: "http://" + ln.Addr().String(), ln: ln, secrets: map[string]string{},
		counts: hookCounts{ByID: map[string]hookReceipt{}}, rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
	h.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = h.srv.Serve(ln) }()
	return h, nil
}

// Close stops the receiver (requests still hanging end with it).
func (h *hookReceiver) Close() {
	if h != nil {
		_ = h.srv.Close()
	}
}

func (h *hookReceiver) setSecret(path, secret string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.secrets[path] = secret
}

// snapshot is a copy of the counts.
func (h *hookReceiver) snapshot() hookCounts {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.counts
	c.ByID = make(map[string]hookReceipt, len(h.counts.ByID))
	for k, v := range h.counts.ByID {
		c.ByID[k] = v
	}
	return c
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, rerr := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	id := r.Header.Get(delivery.HeaderID)
	h.mu.Lock()
	h.counts.Requests++
	secret, known := h.secrets[r.URL.Path]
	if !known || rerr != nil || delivery.Verify(secret, body, r.Header) != nil {
		h.counts.Invalid++
		h.mu.Unlock()
		http.Error(w, "signature does not verify", http.StatusBadRequest)
		return
	}
	answer := http.StatusOK
	if r.URL.Path == flakyPath {
		switch roll := h.rng.IntN(30); {
		case roll < 10:
			answer = http.StatusInternalServerError
			h.counts.Flaky500++
		case roll < 13:
			answer = 0
			h.counts.FlakyHung++
		default:
			h.counts.FlakyOK++
		}
	} else {
		h.counts.ReliableOK++
	}
	if answer == http.StatusOK {
		rc := h.counts.ByID[id]
		if r.URL.Path == flakyPath {
			rc.Flaky++
		} else {
			if rc.Reliable == 0 {
				rc.First = time.Now()
			}
			rc.Reliable++
		}
		h.counts.ByID[id] = rc
	}
	h.mu.Unlock()
	switch answer {
	case 0:
		// Past labelq's timeout: its client gives up first, and the attempt is retried.
		select {
		case <-r.Context().Done():
		case <-time.After(webhookHang):
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	case http.StatusOK:
		_, _ = io.WriteString(w, `{"ok":true}`)
	default:
		http.Error(w, "flaky endpoint: try again", answer)
	}
}

// hookEndpoint is one registered endpoint.
type hookEndpoint struct {
	ID       int64
	Path     string
	Types    []string // empty: every type
	Projects []int64  // empty: every project
	secret   string
}

// webhookWork is the run's endpoints and how they were registered.
type webhookWork struct {
	recv      *hookReceiver
	reliable  hookEndpoint
	flaky     hookEndpoint
	via       string // "api", or why the rows were written directly
	viaReason string
}

// setupWebhooks starts the receiver and registers the reliable endpoint, before
// any other state change of the run (so every event of the run has it).
func (r *run) setupWebhooks(ctx context.Context) error {
	recv, err := startHookReceiver(r.env.Net.serviceHost())
	if err != nil {
		return err
	}
	r.hooks = &webhookWork{recv: recv, via: "api", reliable: hookEndpoint{Path: reliablePath}}
	if err := r.registerWebhook(ctx, &r.hooks.reliable); err != nil {
		return err
	}
	recv.setSecret(reliablePath, r.hooks.reliable.secret)
	r.log("webhooks: reliable endpoint %d (every type) at %s, registered through %s", r.hooks.reliable.ID, recv.URL, r.hooks.via)
	return nil
}

// setupFlakyWebhook registers the flaky endpoint for the main project, before
// its first upload. It is a fault: a load run has the reliable endpoint alone.
func (r *run) setupFlakyWebhook(ctx context.Context) error {
	if !r.cfg.Faults {
		return nil
	}
	r.hooks.flaky = hookEndpoint{Path: flakyPath, Types: flakyTypes, Projects: []int64{r.projectID}}
	if err := r.registerWebhook(ctx, &r.hooks.flaky); err != nil {
		return err
	}
	r.hooks.recv.setSecret(flakyPath, r.hooks.flaky.secret)
	r.log("webhooks: flaky endpoint %d (%d types of project %d), registered through %s", r.hooks.flaky.ID, len(flakyTypes), r.projectID, r.hooks.via)
	return nil
}

// registerWebhook creates ep through POST /v1/webhooks. An API that refuses the
// loopback URL (a deployment whose API was not given the webhook policy) or does
// not have the route yet gets the row written as the API would write it, sealed
// with the run's LABELQ_SECRET_KEY; the report says which.
func (r *run) registerWebhook(ctx context.Context, ep *hookEndpoint) error {
	url := r.hooks.recv.URL + ep.Path
	var out struct {
		ID     int64   `json:"id"`
		Secret *string `json:"secret"`
	}
	err := r.api.call(ctx, "POST", "/v1/webhooks", map[string]any{
		"url": url, "description": "chaos " + strings.TrimPrefix(ep.Path, "/hooks/"), "event_types": nonNil(ep.Types),
		"project_ids": nonNil(ep.Projects),
	}, "webhook"+strings.ReplaceAll(ep.Path, "/", "-"), &out)
	var ae *apiError
	switch {
	case err == nil && out.Secret != nil && *out.Secret != "":
		ep.ID, ep.secret = out.ID, *out.Secret
		return nil
	case err == nil:
		return fmt.Errorf("POST /v1/webhooks answered no signing secret")
	case errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Status == http.StatusMethodNotAllowed ||
		ae.Status == http.StatusUnprocessableEntity || ae.Status == http.StatusBadRequest):
		r.hooks.via = "sql"
		r.hooks.viaReason = fmt.Sprintf("POST /v1/webhooks answered %d: %.200s", ae.Status, strings.Join(strings.Fields(ae.Body), " "))
		r.log("webhooks: %s; writing endpoint %s directly", r.hooks.viaReason, ep.Path)
		return r.insertWebhook(ctx, ep, url)
	default:
		return fmt.Errorf("register webhook %s: %w", ep.Path, err)
	}
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// insertWebhook writes the endpoint row as the API does: a new secret sealed for
// the organization with the run's key.
func (r *run) insertWebhook(ctx context.Context, ep *hookEndpoint, url string) error {
	keys, err := storage.ParseKeyring("chaos:" + r.env.Secrets.StorageKey)
	if err != nil {
		return fmt.Errorf("the run's LABELQ_SECRET_KEY: %w", err)
	}
	secret := delivery.NewSecret()
	sealed, kid, err := delivery.SealSecret(keys, r.orgID, secret)
	if err != nil {
		return err
	}
	row, err := db.New(r.pool).WebhookEndpointInsert(ctx, db.WebhookEndpointInsertParams{
		OrgID: r.orgID, Url: url, Description: "chaos " + strings.TrimPrefix(ep.Path, "/hooks/"),
		EventTypes: nonNil(ep.Types), ProjectIds: nonNil(ep.Projects), Secret: sealed, SecretKeyID: kid, Enabled: true,
	})
	if err != nil {
		return fmt.Errorf("insert webhook endpoint %s: %w", ep.Path, err)
	}
	ep.ID, ep.secret = row.ID, secret
	return nil
}

// webhookSecrets are the endpoints' signing secrets, whole and without their
// prefix, for the secret scans.
func (w *webhookWork) secrets() []string {
	if w == nil {
		return nil
	}
	var out []string
	for _, ep := range []hookEndpoint{w.reliable, w.flaky} {
		if ep.secret != "" {
			out = append(out, ep.secret, strings.TrimPrefix(ep.secret, delivery.SecretPrefix))
		}
	}
	return out
}

// webhookInputs is what the webhook invariants read.
type webhookInputs struct {
	DB       querier
	OrgID    int64
	Reliable int64 // the reliable endpoint's id
	Flaky    int64
	// FlakyTypes and FlakyProjects are what the flaky endpoint subscribes to
	// (empty: every project).
	FlakyTypes    []string
	FlakyProjects []int64
	Receipts      hookCounts
	Via           string // how the endpoints were registered
}

// onceOnlyTypes end a state an entity enters once: an export ends once, a sync
// run ends once, an assignment is created and revoked once. A second event of
// one of these for one entity is a duplicate whatever its data.
var onceOnlyTypes = []string{
	webhook.AssignmentCreated, webhook.AssignmentRevoked,
	webhook.ExportCompleted, webhook.ExportFailed, webhook.ExportCancelled,
	webhook.StorageSyncCompleted, webhook.StorageSyncFailed,
}

// repeatableTypes may legitimately repeat with the same data: a matching run's
// outcome may recur after another, a pre-annotation run may fail again when
// re-run, pings and disables are their own events.
var repeatableTypes = []string{webhook.MatchCompleted, webhook.PreannotationFailed, webhook.WebhookTest, webhook.WebhookDisabled}

// checkWebhooks: every event has a verified receipt at the reliable endpoint and
// every receipt is of an event labelq recorded (none lost, none invented, after
// kills and Redis flushes); no state change has two events; every terminal
// entity has its event, with a delivery to each endpoint that subscribes to its
// type and none to one that does not; nothing pending after the drain; every
// request the receiver got verified.
func checkWebhooks(ctx context.Context, in webhookInputs) []Figure {
	const (
		eventsName    = "webhook_events (receipts verified at the reliable endpoint)"
		lostName      = "webhook_events_without_verified_receipt (reliable endpoint)"
		inventedName  = "webhook_receipts_of_unknown_events"
		invalidName   = "webhook_requests_whose_signature_did_not_verify"
		latencyName   = "webhook_latency_p50/p99 (created_at → first receipt, reliable)"
		requestsName  = "webhook_requests (reliable ok / flaky ok, 500, hung past the timeout)"
		redeliverName = "webhook_events_received_twice_at_reliable (at least once: allowed)"
	)
	figs := []Figure{{"webhook_endpoints_registered_through", in.Via, "", true}}
	rc := in.Receipts
	events, err := readEvents(ctx, in.DB, in.OrgID)
	switch {
	case rc.Unreachable != nil:
		figs = append(figs, failedFigure(eventsName, "> 0", rc.Unreachable), failedFigure(lostName, "0", rc.Unreachable),
			failedFigure(inventedName, "0", rc.Unreachable), failedFigure(invalidName, "0", rc.Unreachable))
	case err != nil:
		figs = append(figs, failedFigure(eventsName, "> 0", err), failedFigure(lostName, "0", err),
			failedFigure(inventedName, "0", err), Figure{invalidName, fmt.Sprint(rc.Invalid), "0", rc.Invalid == 0})
	default:
		lost, twice := 0, 0
		var lat []time.Duration
		for id, created := range events {
			got := rc.ByID[id]
			if got.Reliable == 0 {
				lost++
				continue
			}
			if got.Reliable > 1 {
				twice++
			}
			lat = append(lat, got.First.Sub(created))
		}
		invented := 0
		for id := range rc.ByID {
			if _, ok := events[id]; !ok {
				invented++
			}
		}
		figs = append(figs,
			Figure{eventsName, fmt.Sprintf("%d (%d received)", len(events), len(events)-lost), "> 0", len(events) > 0},
			Figure{lostName, fmt.Sprint(lost), "0", lost == 0},
			Figure{inventedName, fmt.Sprint(invented), "0", invented == 0},
			Figure{invalidName, fmt.Sprint(rc.Invalid), "0", rc.Invalid == 0},
			Figure{redeliverName, fmt.Sprint(twice), "", true},
			Figure{latencyName, latencies(lat), "", true})
	}
	figs = append(figs, Figure{requestsName, fmt.Sprintf("%d / %d, %d, %d", rc.ReliableOK, rc.FlakyOK, rc.Flaky500, rc.FlakyHung), "", true})

	org := in.OrgID
	figs = append(figs,
		zeroFigure(ctx, in.DB, "webhook_events_twice_for_one_state_change (same entity, type and data)", `SELECT count(*) FROM (
			SELECT 1 FROM webhook_events WHERE org_id = $1 AND NOT (event_type = ANY ($2))
			GROUP BY entity_type, entity_id, event_type, (body::jsonb)->'data' HAVING count(*) > 1) d`, org, repeatableTypes),
		zeroFigure(ctx, in.DB, "webhook_events_twice_for_a_once_only_change (export, sync run, assignment, llm run)", `SELECT
			(SELECT count(*) FROM (SELECT 1 FROM webhook_events WHERE org_id = $1 AND event_type = ANY ($2)
				GROUP BY entity_type, entity_id, event_type HAVING count(*) > 1) d)
		  + (SELECT count(*) FROM (SELECT 1 FROM webhook_events WHERE org_id = $1 AND event_type = 'preannotation.succeeded'
				GROUP BY (body::jsonb)->'data'->>'llm_run_id' HAVING count(*) > 1) d)`, org, onceOnlyTypes),
		// Every terminal entity of the workload has its event (every type is
		// subscribed by the reliable endpoint, registered before the workload).
		zeroFigure(ctx, in.DB, "versions_without_webhook_event", `SELECT count(*) FROM file_versions v
			WHERE v.org_id = $1 AND v.generation_method = 'upload' AND v.validation_status <> 'pending'
			AND NOT EXISTS (SELECT 1 FROM webhook_events e WHERE e.org_id = v.org_id AND e.entity_type = 'file_version'
				AND e.entity_id = v.id AND e.event_type = 'file_version.' ||
				CASE v.validation_status WHEN 'valid' THEN 'validated' ELSE v.validation_status::text END)`, org),
		zeroFigure(ctx, in.DB, "llm_runs_without_webhook_event", `SELECT count(*) FROM llm_runs l
			WHERE l.org_id = $1 AND l.status IN ('succeeded', 'failed', 'skipped')
			AND NOT EXISTS (SELECT 1 FROM webhook_events e WHERE e.org_id = l.org_id AND e.entity_type = 'file_version'
				AND e.entity_id = l.file_version_id AND e.event_type = 'preannotation.' || l.status::text
				AND (e.body::jsonb)->'data'->>'llm_run_id' = l.id::text)`, org),
		zeroFigure(ctx, in.DB, "assignments_without_webhook_event (created, revoked)", `SELECT count(*) FROM assignments a
			WHERE a.org_id = $1 AND (NOT EXISTS (SELECT 1 FROM webhook_events e WHERE e.org_id = a.org_id
				AND e.entity_type = 'assignment' AND e.entity_id = a.id AND e.event_type = 'assignment.created')
			OR (a.status = 'revoked' AND NOT EXISTS (SELECT 1 FROM webhook_events e WHERE e.org_id = a.org_id
				AND e.entity_type = 'assignment' AND e.entity_id = a.id AND e.event_type = 'assignment.revoked')))`, org),
		zeroFigure(ctx, in.DB, "exports_without_webhook_event", `SELECT count(*) FROM export_logs x
			WHERE x.org_id = $1 AND x.status IN ('completed', 'failed', 'cancelled')
			AND NOT EXISTS (SELECT 1 FROM webhook_events e WHERE e.org_id = x.org_id AND e.entity_type = 'export'
				AND e.entity_id = x.id AND e.event_type = 'export.' || x.status::text)`, org),
		zeroFigure(ctx, in.DB, "sync_runs_without_webhook_event", `SELECT count(*) FROM sync_runs s
			WHERE s.org_id = $1 AND s.status IN ('completed', 'failed')
			AND NOT EXISTS (SELECT 1 FROM webhook_events e WHERE e.org_id = s.org_id AND e.entity_type = 'sync_run'
				AND e.entity_id = s.id AND e.event_type = 'storage_sync.' || s.status::text)`, org),
		// Fan-out: one delivery per subscribed endpoint (type and project), none
		// to another.
		zeroFigure(ctx, in.DB, "webhook_events_missing_a_subscribed_endpoint", `SELECT count(*) FROM webhook_events e
			CROSS JOIN LATERAL (VALUES ($2::bigint, true), ($3::bigint, e.event_type = ANY ($4)
				AND (cardinality($5::bigint[]) = 0 OR COALESCE(e.project_id = ANY ($5), false)))) AS ep (id, subscribed)
			WHERE e.org_id = $1 AND ep.subscribed AND e.event_type NOT IN ('webhook.test', 'webhook.disabled')
			AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND d.endpoint_id = ep.id)`,
			org, in.Reliable, in.Flaky, nonNil(in.FlakyTypes), nonNil(in.FlakyProjects)),
		zeroFigure(ctx, in.DB, "webhook_deliveries_to_an_unsubscribed_endpoint", `SELECT count(*) FROM webhook_deliveries d
			JOIN webhook_events e ON e.id = d.event_id
			WHERE d.org_id = $1 AND d.endpoint_id = $2 AND e.event_type <> 'webhook.test'
			AND NOT (e.event_type = ANY ($3) AND (cardinality($4::bigint[]) = 0 OR COALESCE(e.project_id = ANY ($4), false)))`,
			org, in.Flaky, nonNil(in.FlakyTypes), nonNil(in.FlakyProjects)),
		zeroFigure(ctx, in.DB, "webhook_deliveries_left_pending", `SELECT count(*) FROM webhook_deliveries
			WHERE org_id = $1 AND status = 'pending'`, org),
		zeroFigure(ctx, in.DB, "webhook_deliveries_failed (reliable endpoint)", `SELECT count(*) FROM webhook_deliveries
			WHERE org_id = $1 AND endpoint_id = $2 AND status = 'failed'`, org, in.Reliable),
	)
	return append(figs, flakyFigure(ctx, in))
}

// flakyFigure says how the flaky endpoint's deliveries ended (a delivery whose
// every attempt met a 500 or a hang fails, by design).
func flakyFigure(ctx context.Context, in webhookInputs) Figure {
	const name = "webhook_deliveries_flaky (succeeded / failed / attempts)"
	var ok, failed, attempts int
	err := in.DB.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status = 'failed'),
		COALESCE(sum(attempts), 0) FROM webhook_deliveries WHERE org_id = $1 AND endpoint_id = $2`, in.OrgID, in.Flaky).Scan(&ok, &failed, &attempts)
	if err != nil {
		return failedFigure(name, "", fmt.Errorf("read the flaky endpoint's deliveries: %w", err))
	}
	return Figure{name, fmt.Sprintf("%d / %d / %d", ok, failed, attempts), "", true}
}

// readEvents is the organization's events: public id → created_at.
func readEvents(ctx context.Context, q querier, orgID int64) (map[string]time.Time, error) {
	rows, err := q.Query(ctx, `SELECT public_id, created_at FROM webhook_events WHERE org_id = $1`, orgID)
	if err != nil {
		return nil, fmt.Errorf("read webhook_events: %w", err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var id string
		var at time.Time
		if err := rows.Scan(&id, &at); err != nil {
			return nil, fmt.Errorf("read webhook_events: %w", err)
		}
		out[id] = at
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read webhook_events: %w", err)
	}
	return out, nil
}

// latencies is "p50 / p99" of ds, or "none".
func latencies(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	slices.Sort(ds)
	at := func(p int) time.Duration { return ds[min(len(ds)-1, len(ds)*p/100)].Round(time.Millisecond) }
	return fmt.Sprintf("%s / %s", at(50), at(99))
}

// webhookFigures checks the run's webhooks.
func (r *run) webhookFigures(ctx context.Context) []Figure {
	in := webhookInputs{DB: r.pool, OrgID: r.orgID, FlakyTypes: flakyTypes, Via: "none"}
	if r.hooks == nil {
		in.Receipts.Unreachable = errors.New("the webhook receiver never started")
		return checkWebhooks(ctx, in)
	}
	in.Reliable, in.Flaky, in.Receipts = r.hooks.reliable.ID, r.hooks.flaky.ID, r.hooks.recv.snapshot()
	in.FlakyTypes, in.FlakyProjects = r.hooks.flaky.Types, r.hooks.flaky.Projects
	in.Via = r.hooks.via
	if r.hooks.viaReason != "" {
		in.Via += " (" + r.hooks.viaReason + ")"
	}
	return checkWebhooks(ctx, in)
}
