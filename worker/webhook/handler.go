// Package webhookdeliver is the webhook:deliver worker: one attempt of one
// delivery (a webhook_deliveries row) per task run. It POSTs the event's stored
// body with the Standard Webhooks headers, records the attempt, and either
// finishes the delivery or asks asynq for the next attempt after the retry
// schedule's delay. Each endpoint has its own concurrency limit across every
// worker process, so a slow or dead receiver holds a few worker slots, never all.
package webhookdeliver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/logging"
	"github.com/labelq/labelq/internal/metrics"
	"github.com/labelq/labelq/internal/queue"
	"github.com/labelq/labelq/internal/ratelimit"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/webhook"
	"github.com/labelq/labelq/internal/webhook/delivery"
)

// Limits of one attempt.
const (
	// MaxResponseRead is the most of an answer labelq reads (the rest is dropped
	// with the connection).
	MaxResponseRead = 64 << 10
	// MaxResponseStored is the most of an answer the attempt row keeps.
	MaxResponseStored = 1 << 10
	// DefaultTimeout bounds one attempt when Deps.Timeout is zero: 2xx within it
	// is success.
	DefaultTimeout = 15 * time.Second
	// DefaultConcurrency is the deliveries in flight per endpoint when
	// Deps.Concurrency is zero.
	DefaultConcurrency = 4
	// slotTTL is how long an endpoint slot outlives a holder that vanished
	// (kill -9); a live holder renews it.
	slotTTL = 30 * time.Second
)

// Deps are what the handler needs.
type Deps struct {
	Pool *pgxpool.Pool
	// Redis holds the endpoints' concurrency slots (shared by every worker process).
	Redis redis.UniversalClient
	// Keys open the endpoints' sealed signing secrets (LABELQ_SECRET_KEY).
	Keys *storage.Keyring
	// Policy decides which addresses a delivery may reach.
	Policy *delivery.Policy
	// Schedule is the retry schedule (LABELQ_WEBHOOK_RETRY_SCHEDULE).
	Schedule delivery.Schedule
	// Timeout bounds one attempt (LABELQ_WEBHOOK_TIMEOUT).
	Timeout time.Duration
	// Concurrency is the deliveries in flight per endpoint (LABELQ_WEBHOOK_ENDPOINT_CONCURRENCY).
	Concurrency int
	// DisableAfter disables an endpoint failing every attempt for this long.
	DisableAfter time.Duration
	// Transport, when set, is the base of the delivery client (tests: TLS roots).
	Transport *http.Transport
	// Metrics, when set, counts attempts by outcome and their latency.
	Metrics *metrics.Metrics
	Log     *slog.Logger
	Now     func() time.Time
}

// Handler is the webhook:deliver handler.
type Handler struct {
	d      Deps
	client *http.Client
	log    *slog.Logger
}

// NewHandler builds the handler.
func NewHandler(d Deps) *Handler {
	if d.Timeout <= 0 {
		d.Timeout = DefaultTimeout
	}
	if d.Concurrency <= 0 {
		d.Concurrency = DefaultConcurrency
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if len(d.Schedule) == 0 {
		d.Schedule, _ = delivery.ParseSchedule("0s,5s,5m,30m,2h,5h,10h,10h")
	}
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var tr *http.Transport
	if d.Transport != nil {
		tr = d.Transport.Clone()
	}
	// A receiver gets at most Concurrency connections from one process.
	if tr == nil {
		tr = &http.Transport{}
	}
	tr.MaxConnsPerHost = max(tr.MaxConnsPerHost, d.Concurrency)
	return &Handler{d: d, client: d.Policy.Client(d.Timeout, tr), log: log}
}

// SlotKey is the Redis key of an endpoint's concurrency slots.
func SlotKey(endpointID int64) string {
	return "labelq:webhook:endpoint:" + strconv.FormatInt(endpointID, 10) + ":slots"
}

// attempt is what one POST came back with.
type attempt struct {
	started time.Time
	latency time.Duration
	status  int
	header  http.Header
	body    string
	err     error
	outcome delivery.Outcome
}

// Work makes the delivery's next attempt. Mount it with tasks.Register.
//
// The delivery row is read (not held: a receiver may take 15 s), the endpoint's
// slot taken, the POST made, and the outcome recorded under the row's lock only if
// no other task recorded an attempt meanwhile. A delivery that is finished, or not
// due yet, is left alone, so a duplicate or early task costs one read.
func (h *Handler) Work(ctx context.Context, a tasks.WebhookDeliver) error {
	log := logging.From(ctx, h.log).With(slog.Int64("webhook_delivery_id", a.DeliveryID))
	// Read without the row's lock: record takes it, and checks nothing changed.
	peek, err := db.New(h.d.Pool).WebhookDeliveryToAttempt(ctx, a.DeliveryID)
	d := db.WebhookDeliveryForAttemptRow(peek)
	if errors.Is(err, pgx.ErrNoRows) {
		// Deleted by retention, or never committed: nothing to deliver.
		return queue.Permanent(fmt.Errorf("webhook delivery %d not found", a.DeliveryID))
	}
	if err != nil {
		return fmt.Errorf("read webhook delivery %d: %w", a.DeliveryID, err)
	}
	log = log.With(slog.Int64("webhook_id", d.EndpointID), slog.String("event_type", d.EventType), slog.String("webhook_event_id", d.PublicID))
	if d.Status != db.WebhookDeliveryStatusPending {
		return nil
	}
	now := h.d.Now()
	if d.EndpointDeletedAt != nil || !d.EndpointEnabled {
		return h.abandon(ctx, d, log)
	}
	if wait := d.NextAttemptAt.Sub(now); wait > 50*time.Millisecond {
		return queue.RetryAfter(wait, fmt.Errorf("webhook delivery %d: next attempt at %s", d.ID, d.NextAttemptAt.UTC().Format(time.RFC3339)))
	}

	lease, err := ratelimit.NewSemaphore(h.d.Redis, SlotKey(d.EndpointID), h.d.Concurrency, slotTTL).TryAcquire(ctx)
	if err != nil {
		return fmt.Errorf("webhook endpoint %d: take a slot: %w", d.EndpointID, err)
	}
	if lease == nil {
		return queue.RetryAfter(busyDelay(ctx), fmt.Errorf("webhook endpoint %d: %d deliveries already in flight", d.EndpointID, h.d.Concurrency))
	}
	at := h.post(ctx, d)
	lease.Release()

	next, final := h.decide(d, at)
	recorded, ended, err := h.record(ctx, d, at, next, final, log)
	if err != nil {
		return err
	}
	logAttempt(ctx, log, d, at, ended)
	if m := h.d.Metrics; m != nil && recorded {
		m.WebhookAttempts.WithLabelValues(at.outcome.String()).Inc()
		m.WebhookLatency.Observe(at.latency.Seconds())
	}
	if !recorded || ended {
		return nil
	}
	return queue.RetryAfter(next, fmt.Errorf("webhook delivery %d: attempt %d: %s", d.ID, d.Attempts+1, describe(at)))
}

// busyDelay is how long a delivery waits for a slot of a busy endpoint: short at
// first, longer the longer it has waited (asynq counts the waits), with jitter so
// waiting tasks do not come back together.
func busyDelay(ctx context.Context) time.Duration {
	n, _ := asynq.GetRetryCount(ctx)
	base := 200 * time.Millisecond
	if n > 20 {
		base = min(time.Duration(n-20)*100*time.Millisecond, 10*time.Second)
	}
	return base + time.Duration(rand.Int64N(int64(500*time.Millisecond)))
}

// post makes the attempt: the stored body, signed with every current secret.
func (h *Handler) post(ctx context.Context, d db.WebhookDeliveryForAttemptRow) attempt {
	at := attempt{started: h.d.Now()}
	secrets, err := delivery.SigningSecrets(h.d.Keys, delivery.Sealed{
		OrgID: d.OrgID, Secret: d.Secret, SecretKeyID: d.SecretKeyID,
		Previous: d.PreviousSecret, PreviousKeyID: d.PreviousSecretKeyID, PreviousExpires: d.PreviousSecretExpiresAt,
	}, at.started)
	if err != nil {
		// A secret sealed under a key this process lacks: the operator's to fix
		// (LABELQ_SECRET_KEY_OLD), so the delivery keeps its schedule.
		at.err, at.outcome = errors.New("the endpoint's signing secret cannot be opened with this worker's LABELQ_SECRET_KEY"), delivery.Retry
		return at
	}
	body := []byte(d.Body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.Url, bytes.NewReader(body))
	if err != nil {
		at.err, at.outcome = fmt.Errorf("the endpoint URL cannot be requested: %w", err), delivery.Refused
		return at
	}
	if err := delivery.SetHeaders(req.Header, secrets, d.PublicID, at.started, body); err != nil {
		at.err, at.outcome = err, delivery.Refused
		return at
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "labelq-webhooks/1")
	resp, err := h.client.Do(req)
	if err != nil {
		at.latency = h.d.Now().Sub(at.started)
		at.err, at.outcome = h.cause(err), delivery.Retry
		if errors.Is(err, delivery.ErrAddressRefused) {
			at.outcome = delivery.Refused
		}
		return at
	}
	buf, rerr := io.ReadAll(io.LimitReader(resp.Body, MaxResponseRead))
	_ = resp.Body.Close()
	at.latency = h.d.Now().Sub(at.started)
	at.status, at.header, at.body = resp.StatusCode, resp.Header, keep(buf)
	at.outcome = delivery.Classify(resp.StatusCode)
	if rerr != nil && at.outcome == delivery.Succeeded {
		// The answer was 2xx; a body cut short does not change that.
		at.err = fmt.Errorf("reading the answer: %w", h.cause(rerr))
	}
	return at
}

// cause is an error of the HTTP client without the URL it quotes (a receiver's URL
// may carry a token in its query).
func (h *Handler) cause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return fmt.Errorf("no answer within %s", h.d.Timeout)
		}
		return ue.Err
	}
	return err
}

// keep is the part of an answer the attempt row stores: its first KiB, cut at a
// character boundary, invalid UTF-8 replaced.
func keep(b []byte) string {
	if len(b) > MaxResponseStored {
		b = b[:MaxResponseStored]
		for i := 0; i < utf8.UTFMax && len(b) > 0 && !utf8.Valid(b); i++ {
			b = b[:len(b)-1]
		}
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// decide is when the next attempt is (and whether there is one).
func (h *Handler) decide(d db.WebhookDeliveryForAttemptRow, at attempt) (time.Duration, bool) {
	if at.outcome != delivery.Retry {
		return 0, true
	}
	step := int(d.Attempts+1) - int(d.RoundStart)
	next, ok := h.d.Schedule.Next(step)
	if !ok {
		return 0, true
	}
	if ra, ok := delivery.RetryAfter(at.header, at.started); ok && (at.status == http.StatusTooManyRequests || at.status == http.StatusServiceUnavailable) {
		next = ra
	}
	return next, false
}

// record writes the attempt, the delivery's new state and the endpoint's health in
// one transaction, under the delivery's lock. recorded is false when another task
// recorded an attempt of this delivery since it was read (its record stands);
// ended says the delivery is finished.
func (h *Handler) record(ctx context.Context, d db.WebhookDeliveryForAttemptRow, at attempt, next time.Duration, final bool, log *slog.Logger) (recorded, ended bool, err error) {
	err = database.Tx(ctx, h.d.Pool, func(q *db.Queries, _ pgx.Tx) error {
		cur, err := q.WebhookDeliveryForAttempt(ctx, d.ID)
		if err != nil {
			return fmt.Errorf("lock webhook delivery %d: %w", d.ID, err)
		}
		if cur.Attempts != d.Attempts || cur.Status != db.WebhookDeliveryStatusPending || cur.Round != d.Round {
			return nil
		}
		n := d.Attempts + 1
		var code *int32
		if at.status != 0 {
			c := int32(at.status)
			code = &c
		}
		var msg *string
		if at.err != nil {
			m := at.err.Error()
			msg = &m
		}
		// The endpoint's health first: an attempt that disables it also ends the delivery.
		disabled, err := h.health(ctx, q, d, at, n, log)
		if err != nil {
			return err
		}
		outcome := at.outcome.String()
		status := db.WebhookDeliveryStatusPending
		switch {
		case at.outcome == delivery.Succeeded:
			status = db.WebhookDeliveryStatusSucceeded
		case final || disabled:
			status = db.WebhookDeliveryStatusFailed
			if at.outcome == delivery.Retry {
				outcome = "failed"
			}
		}
		if err := q.WebhookAttemptInsert(ctx, db.WebhookAttemptInsertParams{
			OrgID: d.OrgID, DeliveryID: d.ID, Attempt: n, StartedAt: at.started,
			LatencyMs: int32(min(at.latency.Milliseconds(), 1<<31-1)), StatusCode: code,
			ResponseBody: at.body, Error: msg, Outcome: outcome,
		}); err != nil {
			return fmt.Errorf("record attempt %d of webhook delivery %d: %w", n, d.ID, err)
		}
		if err := q.WebhookDeliveryRecord(ctx, db.WebhookDeliveryRecordParams{
			ID: d.ID, Attempts: n, Status: status, NextAttemptAt: at.started.Add(next),
			LastStatusCode: code, LastError: msg,
		}); err != nil {
			return fmt.Errorf("record webhook delivery %d: %w", d.ID, err)
		}
		ended = status != db.WebhookDeliveryStatusPending
		recorded = true
		return nil
	})
	return recorded, ended, err
}

// health keeps the endpoint's failure streak, and disables it on a 410 or when
// it has failed every attempt for DisableAfter, recording a webhook.disabled event
// for the organization's other endpoints.
func (h *Handler) health(ctx context.Context, q *db.Queries, d db.WebhookDeliveryForAttemptRow, at attempt, n int32, log *slog.Logger) (bool, error) {
	if at.outcome == delivery.Succeeded {
		if err := q.WebhookEndpointSucceeded(ctx, d.EndpointID); err != nil {
			return false, fmt.Errorf("webhook endpoint %d: %w", d.EndpointID, err)
		}
		return false, nil
	}
	f, err := q.WebhookEndpointFailed(ctx, db.WebhookEndpointFailedParams{ID: d.EndpointID, At: at.started})
	if err != nil {
		return false, fmt.Errorf("webhook endpoint %d: %w", d.EndpointID, err)
	}
	var reason string
	switch {
	case !f.Enabled:
		return true, nil
	case at.outcome == delivery.Gone:
		reason = "the receiver answered 410 Gone"
	case h.d.DisableAfter > 0 && f.FailingSince != nil && at.started.Sub(*f.FailingSince) >= h.d.DisableAfter:
		reason = fmt.Sprintf("every attempt has failed since %s (longer than LABELQ_WEBHOOK_DISABLE_AFTER=%s)",
			f.FailingSince.UTC().Format(time.RFC3339), h.d.DisableAfter)
	default:
		return false, nil
	}
	rows, err := q.WebhookEndpointDisable(ctx, db.WebhookEndpointDisableParams{ID: d.EndpointID, Reason: reason})
	if err != nil {
		return false, fmt.Errorf("disable webhook endpoint %d: %w", d.EndpointID, err)
	}
	if rows == 0 {
		return true, nil
	}
	log.WarnContext(ctx, "webhook endpoint disabled", slog.String("reason", reason))
	if m := h.d.Metrics; m != nil {
		m.WebhookDisabled.Inc()
	}
	_, err = webhook.Emit(ctx, q, webhook.Event{
		OrgID: d.OrgID, Type: webhook.WebhookDisabled, EntityType: db.EntityTypeWebhook, EntityID: d.EndpointID,
		DedupKey: fmt.Sprintf("webhook.disabled:%d:%d:%d", d.EndpointID, d.ID, n),
		Data:     webhook.WebhookDisabledData{WebhookID: d.EndpointID, URL: redactURL(d.Url), Reason: reason, FailingSince: f.FailingSince},
	})
	return true, err
}

// redactURL is an endpoint URL without its query (which may hold a token), for an
// event that goes to other endpoints.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	u.RawQuery, u.Fragment = "", ""
	return u.String()
}

// abandon ends a pending delivery whose endpoint was disabled or deleted: failed,
// without an attempt (it can be redelivered once the endpoint is enabled again).
func (h *Handler) abandon(ctx context.Context, d db.WebhookDeliveryForAttemptRow, log *slog.Logger) error {
	why := "the endpoint is disabled"
	if d.EndpointDeletedAt != nil {
		why = "the endpoint was deleted"
	}
	err := database.Tx(ctx, h.d.Pool, func(q *db.Queries, _ pgx.Tx) error {
		cur, err := q.WebhookDeliveryForAttempt(ctx, d.ID)
		if err != nil {
			return fmt.Errorf("lock webhook delivery %d: %w", d.ID, err)
		}
		if cur.Status != db.WebhookDeliveryStatusPending || cur.Attempts != d.Attempts {
			return nil
		}
		return q.WebhookDeliveryRecord(ctx, db.WebhookDeliveryRecordParams{
			ID: d.ID, Attempts: d.Attempts, Status: db.WebhookDeliveryStatusFailed, NextAttemptAt: d.NextAttemptAt,
			LastError: &why,
		})
	})
	if err == nil {
		log.InfoContext(ctx, "webhook delivery not attempted", slog.String("reason", why))
	}
	return err
}

func describe(at attempt) string {
	switch {
	case at.err != nil && at.status == 0:
		return at.err.Error()
	case at.status != 0:
		return "answered " + strconv.Itoa(at.status)
	}
	return at.outcome.String()
}

func logAttempt(ctx context.Context, log *slog.Logger, d db.WebhookDeliveryForAttemptRow, at attempt, final bool) {
	attrs := []any{
		slog.Int("attempt", int(d.Attempts+1)), slog.String("outcome", at.outcome.String()),
		slog.Int("status_code", at.status), slog.Duration("latency", at.latency), slog.Bool("final", final),
	}
	if at.err != nil {
		attrs = append(attrs, slog.String("error", at.err.Error()))
	}
	level := slog.LevelInfo
	if at.outcome != delivery.Succeeded {
		level = slog.LevelWarn
	}
	log.Log(ctx, level, "webhook attempt", attrs...)
}
