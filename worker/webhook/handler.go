// Package webhookdeliver is the webhook:deliver worker: one attempt of one
// delivery (a webhook_deliveries row) per task run. It POSTs the event's stored
// body with the Standard Webhooks headers, records the attempt, and either
// finishes the delivery or asks asynq for the next attempt after the retry
// schedule's delay. Each endpoint has its own concurrency limit across every
// worker process, so a slow or dead receiver holds a few worker slots, never all.
package webhookdeliver

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/webhook"
)

// Deps are what the handler needs.
type Deps struct {
	Pool *pgxpool.Pool
	// Redis holds the endpoints' concurrency slots (shared by every worker process).
	Redis redis.UniversalClient
	// Keys open the endpoints' sealed signing secrets (LABELQ_SECRET_KEY).
	Keys *storage.Keyring
	// Policy decides which addresses a delivery may reach.
	Policy *webhook.Policy
	// Schedule is the retry schedule (LABELQ_WEBHOOK_RETRY_SCHEDULE).
	Schedule webhook.Schedule
	// Timeout bounds one attempt (LABELQ_WEBHOOK_TIMEOUT).
	Timeout time.Duration
	// Concurrency is the deliveries in flight per endpoint (LABELQ_WEBHOOK_ENDPOINT_CONCURRENCY).
	Concurrency int
	// DisableAfter disables an endpoint failing every attempt for this long.
	DisableAfter time.Duration
	// Transport, when set, is the base of the delivery client (tests: TLS roots).
	Transport *http.Transport
	Log       *slog.Logger
	Now       func() time.Time
}

// Handler is the webhook:deliver handler.
type Handler struct {
	d Deps
}

// NewHandler builds the handler.
func NewHandler(d Deps) *Handler { return &Handler{d: d} }

// Work makes the delivery's next attempt. Mount it with tasks.Register.
func (h *Handler) Work(ctx context.Context, a tasks.WebhookDeliver) error {
	return errors.New("webhook:deliver: not built yet")
}
