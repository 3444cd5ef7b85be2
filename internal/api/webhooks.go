package api

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/outbox"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/webhook"
	"github.com/labelq/labelq/internal/webhook/delivery"
)

// WebhookInput creates or updates a webhook endpoint. On update, absent fields
// keep their value.
type WebhookInput struct {
	// URL receives the deliveries: https (plain http only for the hosts the
	// operator lists), never a private, loopback or link-local address unless the
	// operator allows its network.
	URL         *string `json:"url"`
	Description *string `json:"description"`
	// EventTypes are the event types the endpoint receives; empty or absent on
	// create: every type, present and future.
	EventTypes *[]string `json:"event_types"`
	// ProjectIDs limit the endpoint to these projects' events; empty: every
	// project's.
	ProjectIDs *[]int64 `json:"project_ids"`
	// Enabled is true unless given; enabling a disabled endpoint clears why
	// labelq disabled it.
	Enabled *bool `json:"enabled"`
}

// Limits of an endpoint (the URL's and the description's are the table's too).
const (
	minWebhookURL         = 10
	maxWebhookURL         = 2048
	maxWebhookDescription = 500
	maxWebhookProjects    = 100
)

// webhookPingMessage is the message of every webhook.test event.
const webhookPingMessage = "a test event from labelq (POST /v1/webhooks/{webhook_id}/test); no action needed"

// WebhookSecret is an endpoint's new signing secret, shown once.
type WebhookSecret struct {
	WebhookID int64  `json:"webhook_id"`
	Secret    string `json:"secret"`
	// SecretRotationExpiresAt is when the previous secret stops signing: until
	// then every delivery carries a signature by each.
	SecretRotationExpiresAt time.Time `json:"secret_rotation_expires_at"`
}

// forReplay is what an Idempotency-Key keeps of the answer: not the secret.
func (s WebhookSecret) forReplay() any {
	return map[string]any{"webhook_id": s.WebhookID, "secret": nil, "secret_rotation_expires_at": s.SecretRotationExpiresAt,
		"detail": "the secret is shown once; rotate it again with POST /v1/webhooks/{webhook_id}/rotate-secret"}
}

// WebhookPing answers a test: the event sent and its delivery, to follow in the
// endpoint's delivery log.
type WebhookPing struct {
	// EventID is the event's id, the webhook-id header the receiver gets.
	EventID       string `json:"event_id"`
	DeliveryID    int64  `json:"delivery_id"`
	TaskID        string `json:"task_id"`
	DeliveriesURL string `json:"deliveries_url"`
}

// mergeWebhook applies a create (cur nil) or an update to an endpoint row and
// checks every field the request gives; what it does not give stays as it was.
func (c *Call) mergeWebhook(in *WebhookInput, cur *db.WebhookEndpoint) (db.WebhookEndpoint, error) {
	row := db.WebhookEndpoint{OrgID: c.OrgID, EventTypes: []string{}, ProjectIds: []int64{}, Enabled: true}
	if cur != nil {
		row = *cur
	}
	var v Validation
	switch {
	case in.URL != nil:
		row.Url = strings.TrimSpace(*in.URL)
		c.checkWebhookURL(&v, row.Url)
	case cur == nil:
		v.Add("url", "is required: the https:// URL that receives the deliveries")
	}
	if in.Description != nil {
		row.Description = strings.TrimSpace(*in.Description)
		v.Check(utf8.RuneCountInString(row.Description) <= maxWebhookDescription, "description", "must be at most %d characters", maxWebhookDescription)
		v.Check(!strings.ContainsFunc(row.Description, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' }),
			"description", "must not contain control characters")
	}
	if in.EventTypes != nil {
		row.EventTypes = checkEventTypes(&v, *in.EventTypes)
	}
	if in.ProjectIDs != nil {
		ids, err := c.checkWebhookProjects(&v, *in.ProjectIDs)
		if err != nil {
			return row, err
		}
		row.ProjectIds = ids
	}
	if in.Enabled != nil {
		row.Enabled = *in.Enabled
	}
	return row, v.Err()
}

// checkWebhookURL holds a URL to the delivery policy: the scheme, and the
// addresses its host is or resolves to now (a delivery checks the address it
// dials again).
func (c *Call) checkWebhookURL(v *Validation, raw string) {
	switch {
	case len(raw) < minWebhookURL:
		v.Add("url", "must be an absolute https:// URL such as https://example.com/labelq-events")
		return
	case len(raw) > maxWebhookURL:
		v.Add("url", "must be at most %d bytes", maxWebhookURL)
		return
	case strings.ContainsFunc(raw, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		v.Add("url", "must not contain spaces or control characters (percent-encode them)")
		return
	}
	err := c.S.webhookPolicy().CheckURL(c.R.Context(), raw)
	var ue *delivery.URLError
	switch {
	case errors.As(err, &ue):
		v.Add("url", "%s", strings.TrimPrefix(ue.Reason, "url "))
	case err != nil:
		v.Add("url", "cannot be checked: %v", err)
	}
}

// webhookPolicy is the delivery policy URLs are held to.
func (s *Server) webhookPolicy() *delivery.Policy {
	if s.WebhookPolicy != nil {
		return s.WebhookPolicy
	}
	p, _ := delivery.ParsePolicy("", "") // empty settings always parse
	return p
}

// checkEventTypes keeps the known types of types, once each, in their order; an
// unknown one is refused with the list of those there are.
func checkEventTypes(v *Validation, types []string) []string {
	out := make([]string, 0, len(types))
	for _, t := range types {
		if !webhook.Known(t) {
			known := make([]string, 0, len(webhook.Types()))
			for _, k := range webhook.Types() {
				known = append(known, k.Type)
			}
			v.Add("event_types", "%q is not an event type; the types are %s (or none, for every type)", t, strings.Join(known, ", "))
			return out
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// checkWebhookProjects keeps ids that are projects of the caller's organization,
// once each, sorted. A project of another organization is refused exactly as one
// that does not exist.
func (c *Call) checkWebhookProjects(v *Validation, ids []int64) ([]int64, error) {
	out := slices.Clone(ids)
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > maxWebhookProjects {
		v.Add("project_ids", "must list at most %d projects (or none, for every project)", maxWebhookProjects)
		return out, nil
	}
	if len(out) == 0 {
		return []int64{}, nil
	}
	found, err := c.Q.ProjectIDsOfOrg(c.R.Context(), db.ProjectIDsOfOrgParams{OrgID: c.OrgID, Ids: out})
	if err != nil {
		return nil, fmt.Errorf("read projects of a webhook: %w", err)
	}
	for _, id := range out {
		if !slices.Contains(found, id) {
			v.Add("project_ids", "project %d does not exist in your organization", id)
			break
		}
	}
	return out, nil
}

// sealWebhookSecret encrypts a signing secret for the caller's organization with
// the deployment's keyring (LABELQ_SECRET_KEY): labelq must sign with it, so it
// is sealed, not hashed.
func (c *Call) sealWebhookSecret(secret string) ([]byte, string, error) {
	var keys *storage.Keyring
	if c.S.Storages != nil {
		keys = c.S.Storages.Keys
	}
	sealed, kid, err := delivery.SealSecret(keys, c.OrgID, secret)
	if errors.Is(err, storage.ErrNoKeyring) {
		return nil, "", problem(http.StatusServiceUnavailable, "Webhooks unavailable",
			"this deployment cannot keep webhook signing secrets: the operator must set LABELQ_SECRET_KEY (see the README)")
	}
	return sealed, kid, err
}

// webhookOut maps an endpoint to its answer; a rotation's previous secret shows
// only while it still signs.
func (c *Call) webhookOut(r db.WebhookEndpoint) Webhook {
	w := webhookFromRow(r)
	if w.SecretRotationExpiresAt != nil && !c.S.now().Before(*w.SecretRotationExpiresAt) {
		w.SecretRotationExpiresAt = nil
	}
	return w
}

func createWebhook(c *Call) (int, any, error) {
	var in WebhookInput
	if err := decodeJSON(c.Body, &in); err != nil {
		return 0, nil, err
	}
	row, err := c.mergeWebhook(&in, nil)
	if err != nil {
		return 0, nil, err
	}
	secret := delivery.NewSecret()
	sealed, kid, err := c.sealWebhookSecret(secret)
	if err != nil {
		return 0, nil, err
	}
	ep, err := c.Q.WebhookEndpointInsert(c.R.Context(), db.WebhookEndpointInsertParams{
		OrgID: c.OrgID, Url: row.Url, Description: row.Description, EventTypes: row.EventTypes,
		ProjectIds: row.ProjectIds, Secret: sealed, SecretKeyID: kid, Enabled: row.Enabled,
	})
	if err != nil {
		return 0, nil, err
	}
	out := c.webhookOut(ep)
	out.Secret = &secret
	return http.StatusCreated, out, nil
}

func listWebhooks(c *Call) (int, any, error) {
	after, limit, err := page(c.R)
	if err != nil {
		return 0, nil, err
	}
	eps, err := c.Q.WebhookEndpointList(c.R.Context(), db.WebhookEndpointListParams{OrgID: c.OrgID, AfterID: after, MaxRows: limit})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, listOf(eps, c.webhookOut), nil
}

func getWebhook(c *Call) (int, any, error) {
	id, err := pathID(c.R, "webhook_id")
	if err != nil {
		return 0, nil, err
	}
	ep, err := c.Q.WebhookEndpointGet(c.R.Context(), db.WebhookEndpointGetParams{ID: id, OrgID: c.OrgID})
	if err != nil {
		return 0, nil, orNotFound(err, "webhook")
	}
	return http.StatusOK, c.webhookOut(ep), nil
}

func updateWebhook(c *Call) (int, any, error) {
	id, err := pathID(c.R, "webhook_id")
	if err != nil {
		return 0, nil, err
	}
	var in WebhookInput
	if err := decodeJSON(c.Body, &in); err != nil {
		return 0, nil, err
	}
	ctx := c.R.Context()
	cur, err := c.Q.WebhookEndpointGetForUpdate(ctx, db.WebhookEndpointGetForUpdateParams{ID: id, OrgID: c.OrgID})
	if err != nil {
		return 0, nil, orNotFound(err, "webhook")
	}
	row, err := c.mergeWebhook(&in, &cur)
	if err != nil {
		return 0, nil, err
	}
	ep, err := c.Q.WebhookEndpointUpdate(ctx, db.WebhookEndpointUpdateParams{
		ID: id, OrgID: c.OrgID, Url: row.Url, Description: row.Description, EventTypes: row.EventTypes,
		ProjectIds: row.ProjectIds, Enabled: row.Enabled,
	})
	if err != nil {
		return 0, nil, orNotFound(err, "webhook")
	}
	return http.StatusOK, c.webhookOut(ep), nil
}

func deleteWebhook(c *Call) (int, any, error) {
	id, err := pathID(c.R, "webhook_id")
	if err != nil {
		return 0, nil, err
	}
	n, err := c.Q.WebhookEndpointDelete(c.R.Context(), db.WebhookEndpointDeleteParams{ID: id, OrgID: c.OrgID})
	if err != nil {
		return 0, nil, err
	}
	if n == 0 {
		return 0, nil, notFound("the webhook")
	}
	return http.StatusNoContent, nil, nil
}

func rotateWebhookSecret(c *Call) (int, any, error) {
	id, err := pathID(c.R, "webhook_id")
	if err != nil {
		return 0, nil, err
	}
	secret := delivery.NewSecret()
	sealed, kid, err := c.sealWebhookSecret(secret)
	if err != nil {
		return 0, nil, err
	}
	until := c.S.now().Add(cmp.Or(c.S.WebhookSecretOverlap, DefaultWebhookSecretOverlap))
	ep, err := c.Q.WebhookEndpointRotate(c.R.Context(), db.WebhookEndpointRotateParams{
		ID: id, OrgID: c.OrgID, Secret: sealed, SecretKeyID: kid, OverlapUntil: until,
	})
	if err != nil {
		return 0, nil, orNotFound(err, "webhook")
	}
	return http.StatusOK, WebhookSecret{WebhookID: ep.ID, Secret: secret, SecretRotationExpiresAt: until}, nil
}

// testWebhook sends a webhook.test event to the endpoint alone, whatever types
// and projects it subscribes to, through the outbox like every event.
func testWebhook(c *Call) (int, any, error) {
	id, err := pathID(c.R, "webhook_id")
	if err != nil {
		return 0, nil, err
	}
	ctx := c.R.Context()
	ep, err := c.Q.WebhookEndpointGet(ctx, db.WebhookEndpointGetParams{ID: id, OrgID: c.OrgID})
	if err != nil {
		return 0, nil, orNotFound(err, "webhook")
	}
	if !ep.Enabled {
		return 0, nil, disabledWebhook(ep.ID)
	}
	em, err := webhook.Emit(ctx, c.Q, webhook.Event{
		OrgID: c.OrgID, Type: webhook.WebhookTest, EntityType: db.EntityTypeWebhook, EntityID: ep.ID, OnlyEndpoint: ep.ID,
		Data: webhook.WebhookTestData{WebhookID: ep.ID, Message: webhookPingMessage},
	})
	if err != nil {
		return 0, nil, err
	}
	if len(em.Deliveries) != 1 {
		// Disabled or deleted since it was read.
		return 0, nil, disabledWebhook(ep.ID)
	}
	d := em.Deliveries[0]
	return http.StatusAccepted, WebhookPing{
		EventID: em.ID, DeliveryID: d, TaskID: tasks.WebhookDeliver{DeliveryID: d}.TaskID(),
		DeliveriesURL: fmt.Sprintf("/v1/webhooks/%d/deliveries", ep.ID),
	}, nil
}

func disabledWebhook(id int64) *Problem {
	return conflict(fmt.Sprintf("webhook %d is disabled; enable it first with PATCH /v1/webhooks/%d {\"enabled\": true}", id, id))
}

func listWebhookDeliveries(c *Call) (int, any, error) {
	id, err := pathID(c.R, "webhook_id")
	if err != nil {
		return 0, nil, err
	}
	ctx := c.R.Context()
	if _, err := c.Q.WebhookEndpointGet(ctx, db.WebhookEndpointGetParams{ID: id, OrgID: c.OrgID}); err != nil {
		return 0, nil, orNotFound(err, "webhook")
	}
	_, limit, err := page(c.R)
	if err != nil {
		return 0, nil, err
	}
	arg := db.WebhookDeliveryListNewestParams{OrgID: c.OrgID, EndpointID: id, MaxRows: limit}
	q := c.R.URL.Query()
	if s := q.Get("before"); s != "" {
		var b int64
		if _, err := fmt.Sscan(s, &b); err != nil || b <= 0 {
			return 0, nil, invalid("before", "must be a positive id")
		}
		arg.BeforeID = &b
	}
	if s := q.Get("status"); s != "" {
		st := db.WebhookDeliveryStatus(s)
		if !st.Valid() {
			return 0, nil, invalid("status", "must be pending, succeeded or failed")
		}
		arg.Status = &st
	}
	rows, err := c.Q.WebhookDeliveryListNewest(ctx, arg)
	if err != nil {
		return 0, nil, err
	}
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	attempts, err := c.attemptsOf(ids)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, listOf(rows, func(r db.WebhookDeliveryListNewestRow) WebhookDelivery {
		d := webhookDeliveryFromRow(db.WebhookDeliveryGetRow(r))
		d.AttemptLog = append(d.AttemptLog, attempts[r.ID]...)
		return d
	}), nil
}

// attemptsOf reads the attempts of deliveries, by delivery.
func (c *Call) attemptsOf(ids []int64) (map[int64][]WebhookAttempt, error) {
	out := map[int64][]WebhookAttempt{}
	if len(ids) == 0 {
		return out, nil
	}
	as, err := c.Q.WebhookAttemptsOfDeliveries(c.R.Context(), db.WebhookAttemptsOfDeliveriesParams{OrgID: c.OrgID, DeliveryIds: ids})
	if err != nil {
		return nil, fmt.Errorf("read webhook attempts: %w", err)
	}
	for _, a := range as {
		out[a.DeliveryID] = append(out[a.DeliveryID], webhookAttemptFromRow(a))
	}
	return out, nil
}

// redeliverWebhook starts a finished delivery again: the same event (and
// webhook-id), a new round of the retry schedule, its task in the outbox.
func redeliverWebhook(c *Call) (int, any, error) {
	id, err := pathID(c.R, "delivery_id")
	if err != nil {
		return 0, nil, err
	}
	ctx := c.R.Context()
	d, err := c.Q.WebhookDeliveryGet(ctx, db.WebhookDeliveryGetParams{ID: id, OrgID: c.OrgID})
	if err != nil {
		return 0, nil, orNotFound(err, "webhook delivery")
	}
	ep, err := c.Q.WebhookEndpointGet(ctx, db.WebhookEndpointGetParams{ID: d.EndpointID, OrgID: c.OrgID})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, nil, conflict(fmt.Sprintf("delivery %d is of webhook %d, which was deleted; there is nowhere to deliver it", id, d.EndpointID))
	case err != nil:
		return 0, nil, err
	case !ep.Enabled:
		return 0, nil, disabledWebhook(ep.ID)
	case d.Status == db.WebhookDeliveryStatusPending:
		return 0, nil, alreadyPending(id)
	}
	row, err := c.Q.WebhookDeliveryRedeliver(ctx, db.WebhookDeliveryRedeliverParams{ID: id, OrgID: c.OrgID})
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil, alreadyPending(id) // a concurrent redelivery won
	}
	if err != nil {
		return 0, nil, err
	}
	if err := outbox.Add(ctx, c.Q, c.OrgID, tasks.WebhookDeliver{DeliveryID: row.ID, Run: tasks.RedeliverRun(row.Round)}); err != nil {
		return 0, nil, err
	}
	attempts, err := c.attemptsOf([]int64{row.ID})
	if err != nil {
		return 0, nil, err
	}
	out := webhookDeliveryFromRow(db.WebhookDeliveryGetRow{
		ID: row.ID, OrgID: row.OrgID, EndpointID: row.EndpointID, EventID: row.EventID, Status: row.Status,
		Attempts: row.Attempts, Round: row.Round, RoundStart: row.RoundStart, NextAttemptAt: row.NextAttemptAt,
		LastStatusCode: row.LastStatusCode, LastError: row.LastError, FinishedAt: row.FinishedAt,
		CreatedAt: row.CreatedAt, UpdatedAt: row.UpdatedAt, PublicID: d.PublicID, EventType: d.EventType,
	})
	out.AttemptLog = append(out.AttemptLog, attempts[row.ID]...)
	return http.StatusAccepted, out, nil
}

func alreadyPending(id int64) *Problem {
	return conflict(fmt.Sprintf("delivery %d is already pending: its next attempt is scheduled; redeliver it once it has succeeded or failed", id))
}

// exportTrigger says what made an export, as its webhook events name it.
func exportTrigger(e db.ExportLog) string {
	if e.ScheduleID != nil {
		return "schedule"
	}
	return "api"
}
