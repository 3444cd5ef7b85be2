// Package api is labelq's thin enqueue API: JSON over HTTP under /v1, bearer tokens
// scoped to an organization, problem+json errors. It validates, writes rows and
// outbox entries in one transaction, and reads status; it never does the work itself.
//
// Every route is a row of one table (Routes), which builds the mux, the OpenAPI
// document and the tenant-isolation tests, so none of the three can forget a route.
package api

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/labelq/labelq/internal/admin"
	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/logging"
	"github.com/labelq/labelq/internal/metrics"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/webhook/delivery"
)

// Defaults for Server's zero fields; they are the configuration's defaults too
// (LABELQ_MAX_BODY_BYTES, LABELQ_UPLOAD_URL_TTL, LABELQ_EXPORT_URL_TTL,
// LABELQ_WEBHOOK_SECRET_OVERLAP).
const (
	DefaultMaxBodyBytes         = 1 << 20
	DefaultUploadURLTTL         = 15 * time.Minute
	DefaultExportURLTTL         = 15 * time.Minute
	DefaultWebhookSecretOverlap = 24 * time.Hour
)

// Server holds the API's dependencies.
type Server struct {
	Pool         *pgxpool.Pool
	Store        *storage.Store
	Inspector    *asynq.Inspector
	Log          *slog.Logger
	Metrics      *metrics.Metrics
	MaxBodyBytes int64
	UploadURLTTL time.Duration
	ExportURLTTL time.Duration
	Now          func() time.Time
	// Quotas are the operator's limits on tenants (quotas.go).
	Quotas Quotas
	// Storages resolves and checks storages: the endpoint allow-list, the
	// credentials keyring (storages.go).
	Storages *storage.Resolver
	// PublicURL is where clients reach the API (LABELQ_PUBLIC_URL), for the
	// absolute URLs given to other systems (a bucket's notification target).
	PublicURL string
	// WebhookPolicy decides which URLs a webhook endpoint may have
	// (LABELQ_WEBHOOK_ALLOW_HTTP, LABELQ_WEBHOOK_ALLOWED_NETWORKS); nil allows
	// https URLs of public addresses only. Webhook signing secrets are sealed
	// with the storages' keyring (Storages.Keys, LABELQ_SECRET_KEY).
	WebhookPolicy *delivery.Policy
	// WebhookSecretOverlap is how long a rotated-out signing secret keeps
	// signing (LABELQ_WEBHOOK_SECRET_OVERLAP); 0 is DefaultWebhookSecretOverlap.
	WebhookSecretOverlap time.Duration
	// HeartbeatInterval is how often workers write a running export's or
	// sync run's heartbeat_at (LABELQ_HEARTBEAT_INTERVAL); a row that missed
	// heartbeat.StallBeats of them is answered stalled. 0 is
	// heartbeat.DefaultInterval.
	HeartbeatInterval time.Duration
}

// Call is one request as a handler sees it: inside the caller's tenant transaction.
type Call struct {
	R       *http.Request
	Q       *db.Queries
	OrgID   int64
	TokenID int64
	Body    []byte
	S       *Server
}

// HandlerFunc answers a call with a status and a JSON body, or an error (a *Problem
// for the client's mistakes).
type HandlerFunc func(c *Call) (int, any, error)

// Route is one documented endpoint.
type Route struct {
	Method  string
	Path    string // net/http pattern path, e.g. /v1/projects/{project_id}
	Summary string
	Tag     string
	// Request and Response are example values whose types document the bodies.
	Request  any
	Response any
	// Status is the success status (202 for every enqueueing call).
	Status  int
	Handler HandlerFunc
	// Scope is what a token needs to call the route (see admin.Scope).
	Scope admin.Scope
}

// Register mounts every route on mux.
func (s *Server) Register(mux *http.ServeMux) {
	for _, rt := range s.Routes() {
		mux.Handle(rt.Method+" "+rt.Path, s.wrap(rt))
	}
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(OpenAPIJSON())
	})
	// Anything else under /v1 is a problem+json 404 or 405, never an HTML page.
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, problem(http.StatusNotFound, "Not found", "no such route: "+r.Method+" "+r.URL.Path+"; see /openapi.json"))
	})
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) { s.code = code; s.ResponseWriter.WriteHeader(code) }

func newRequestID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Server) wrap(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rid := r.Header.Get("X-Request-Id")
		if rid == "" || len(rid) > 64 {
			rid = newRequestID()
		}
		w.Header().Set("X-Request-Id", rid)
		ctx := logging.WithAttrs(r.Context(), slog.String("request_id", rid), slog.String("route", rt.Method+" "+rt.Path))
		r = r.WithContext(ctx)
		rec := &statusRecorder{ResponseWriter: w, code: 200}
		start := time.Now()
		defer func() {
			if v := recover(); v != nil {
				logging.From(ctx, s.Log).ErrorContext(ctx, "panic in API handler", slog.Any("panic", v), slog.String("stack", string(debug.Stack())))
				writeProblem(rec, problem(http.StatusInternalServerError, "Internal error", "the request failed on our side; it was logged with request id "+rid))
			}
			if s.Metrics != nil {
				s.Metrics.HTTPRequests.WithLabelValues(rt.Method+" "+rt.Path, fmt.Sprint(rec.code)).Inc()
			}
			logging.From(ctx, s.Log).InfoContext(ctx, "request", slog.Int("status", rec.code), slog.Duration("took", time.Since(start)))
		}()
		s.serve(rec, r, rt)
	})
}

// serve answers one request in stages: authorize, read the body, read the
// Idempotency-Key, answer (run the handler, or replay), write the answer. Every
// refusal on the way is written by writeError.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, rt Route) {
	if rt.Scope == ScopeStorageSecret {
		s.serveStorageSecret(w, r, rt)
		return
	}
	ctx := r.Context()
	tok, err := s.authorize(ctx, r, rt)
	if err != nil {
		s.writeError(ctx, w, err)
		return
	}
	if s.rateLimited(ctx, w, tok) {
		return
	}
	body, err := s.readBody(r, rt)
	if err != nil {
		s.writeError(ctx, w, err)
		return
	}
	idem, err := idempotencyOf(r, body)
	if err != nil {
		s.writeError(ctx, w, err)
		return
	}
	res, err := s.answer(ctx, r, rt, tok, body, idem)
	if err != nil {
		s.writeError(ctx, w, err)
		return
	}
	writeResponse(w, res)
}

// answer runs the route's handler in the caller's tenant transaction, or replays
// the answer the request's Idempotency-Key already got.
func (s *Server) answer(ctx context.Context, r *http.Request, rt Route, tok token, body []byte, idem idempotency) (response, error) {
	var (
		res     response
		refused *Problem
	)
	err := database.TenantTx(ctx, s.Pool, tok.OrgID, func(q *db.Queries, _ pgx.Tx) error {
		prev, p, err := idem.lookup(ctx, q, tok.OrgID)
		switch {
		case err != nil:
			return err
		case p != nil:
			// Refused, but not failed: the transaction commits, having written nothing.
			refused = p
			return nil
		case prev != nil:
			res = *prev
			return nil
		}
		c := &Call{R: r, Q: q, OrgID: tok.OrgID, TokenID: tok.ID, Body: body, S: s}
		if res, err = handle(c, rt); err != nil {
			return err
		}
		return idem.remember(ctx, q, tok.OrgID, r, res)
	})
	if refused != nil {
		return response{}, refused
	}
	return res, err
}

// response is a handler's answer, encoded: what is written and what an
// Idempotency-Key remembers.
type response struct {
	status   int
	body     []byte
	replayed bool
	// kept is what an Idempotency-Key remembers when it is not body.
	kept []byte
}

// handle runs the route's handler and encodes its answer.
func handle(c *Call, rt Route) (response, error) {
	code, resp, err := rt.Handler(c)
	if err != nil {
		return response{}, err
	}
	if code == 0 {
		code = rt.Status
	}
	if code == http.StatusNoContent {
		return response{status: code}, nil
	}
	b, err := json.Marshal(resp)
	if err != nil {
		return response{}, fmt.Errorf("encode response: %w", err)
	}
	res := response{status: code, body: b}
	// An answer holding a secret shown once is kept without it.
	if r, ok := resp.(interface{ forReplay() any }); ok {
		if res.kept, err = json.Marshal(r.forReplay()); err != nil {
			return response{}, fmt.Errorf("encode response: %w", err)
		}
	}
	return res, nil
}

func writeResponse(w http.ResponseWriter, res response) {
	if res.replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	if res.status == http.StatusNoContent {
		w.WriteHeader(res.status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(res.status)
	_, _ = w.Write(res.body)
}

// readBody reads the body of a route that takes one: at most maxBody bytes, JSON
// when a Content-Type is given. Routes without a request body ignore it.
func (s *Server) readBody(r *http.Request, rt Route) ([]byte, error) {
	if rt.Request == nil {
		return nil, nil
	}
	limit := s.bodyLimit(rt)
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, problem(http.StatusBadRequest, "Unreadable body", "the request body could not be read")
	}
	if int64(len(body)) > limit {
		return nil, problem(http.StatusRequestEntityTooLarge, "Body too large",
			fmt.Sprintf("the request body is larger than %d bytes", limit))
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		if m, ok := rt.Request.(mediaTyped); ok {
			if !slices.Contains(m.mediaTypes(), mediaType(ct)) {
				return nil, problem(http.StatusUnsupportedMediaType, "Unsupported media type",
					"send the body with Content-Type: application/json or "+strings.Join(m.mediaTypes(), " or "))
			}
			return body, nil
		}
		return nil, problem(http.StatusUnsupportedMediaType, "Unsupported media type",
			"send the body as JSON with Content-Type: application/json")
	}
	return body, nil
}

// mediaTyped is a request type that also takes bodies of other media types than
// JSON (a label config in Label Studio's XML); its handler reads the body itself.
type mediaTyped interface{ mediaTypes() []string }

// mediaType is a Content-Type without its parameters, in lower case.
func mediaType(ct string) string {
	t, _, _ := strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(t))
}

// idempotency is a request's Idempotency-Key (empty when it has none) and the hash
// of what it asks, so that a key reused for another request is refused.
type idempotency struct {
	key  string
	hash [sha256.Size]byte
}

// idempotencyOf reads the Idempotency-Key header. Only POST honours it: the other
// methods are idempotent already.
func idempotencyOf(r *http.Request, body []byte) (idempotency, error) {
	key := r.Header.Get("Idempotency-Key")
	if r.Method != http.MethodPost {
		key = ""
	}
	if len(key) > 255 {
		return idempotency{}, invalid("Idempotency-Key", "must be at most 255 characters")
	}
	return idempotency{key: key, hash: sha256.Sum256(append([]byte(r.Method+" "+r.URL.Path+"\n"), body...))}, nil
}

// lookup takes the key's lock for the rest of the transaction and returns the
// answer the key already got (nil for a new key), or a problem when the key was
// used with a different request.
func (k idempotency) lookup(ctx context.Context, q *db.Queries, orgID int64) (*response, *Problem, error) {
	if k.key == "" {
		return nil, nil, nil
	}
	if err := q.IdempotencyKeyLock(ctx, fmt.Sprintf("idempotency:%d:%s", orgID, k.key)); err != nil {
		return nil, nil, err
	}
	prev, err := q.IdempotencyKeyGet(ctx, db.IdempotencyKeyGetParams{OrgID: orgID, Key: k.key})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, nil, nil
	case err != nil:
		return nil, nil, err
	case !bytes.Equal(prev.RequestHash, k.hash[:]):
		return nil, problem(http.StatusUnprocessableEntity, "Idempotency key reused",
			"this Idempotency-Key was already used with a different request; use a new key for a new request"), nil
	}
	return &response{status: int(prev.StatusCode), body: prev.ResponseBody, replayed: true}, nil, nil
}

// remember stores the answer under the key, in the transaction that made it.
func (k idempotency) remember(ctx context.Context, q *db.Queries, orgID int64, r *http.Request, res response) error {
	if k.key == "" {
		return nil
	}
	return q.IdempotencyKeyInsert(ctx, db.IdempotencyKeyInsertParams{
		OrgID: orgID, Key: k.key, Method: r.Method, Path: r.URL.Path,
		RequestHash: k.hash[:], StatusCode: int32(res.status), ResponseBody: cmpBytes(res.kept, res.body),
	})
}

// cmpBytes is the first of a and b that is not empty.
func cmpBytes(a, b []byte) []byte {
	if len(a) > 0 {
		return a
	}
	return b
}

// writeError answers a failed request: a problem (the client's mistake, a refused
// token, a row the database refused) as problem+json, anything else as a logged 500.
func (s *Server) writeError(ctx context.Context, w http.ResponseWriter, err error) {
	if p, ok := asProblem(err); ok {
		if p.Status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="labelq"`)
		}
		writeProblem(w, p)
		return
	}
	if p := constraintProblem(err); p != nil {
		writeProblem(w, p)
		return
	}
	s.internalError(ctx, w, err)
}

func (s *Server) maxBody() int64 { return cmp.Or(s.MaxBodyBytes, DefaultMaxBodyBytes) }

// bodyLimit is the most a route's body may hold: LABELQ_MAX_BODY_BYTES, unless
// its request type derives its own cap from it (a batch takes more, a bucket
// notification less).
func (s *Server) bodyLimit(rt Route) int64 {
	if c, ok := rt.Request.(interface{ maxBodyBytes(def int64) int64 }); ok {
		return c.maxBodyBytes(s.maxBody())
	}
	return s.maxBody()
}

func (s *Server) internalError(ctx context.Context, w http.ResponseWriter, err error) {
	rid := w.Header().Get("X-Request-Id")
	if errors.Is(err, context.Canceled) {
		return
	}
	logging.From(ctx, s.Log).ErrorContext(ctx, "API request failed", slog.String("error", err.Error()))
	writeProblem(w, problem(http.StatusInternalServerError, "Internal error",
		"the request failed on our side; it was logged with request id "+rid+"; retrying later may help"))
}

type token struct {
	ID     int64
	OrgID  int64
	Scopes []string
}

// authorize authenticates the request's token and checks it has the route's scope:
// 401 without a valid token, 403 with one lacking the scope.
func (s *Server) authorize(ctx context.Context, r *http.Request, rt Route) (token, error) {
	tok, err := s.authenticate(ctx, r)
	if err != nil {
		return token{}, err
	}
	if !slices.Contains(tok.Scopes, string(rt.Scope)) {
		return token{}, problem(http.StatusForbidden, "Missing scope",
			fmt.Sprintf("%s %s needs a token with the %q scope; this token has %s; create one with `labelq token create --scopes %s`",
				rt.Method, rt.Path, rt.Scope, strings.Join(tok.Scopes, ","), rt.Scope))
	}
	return tok, nil
}

// authenticate checks the bearer token (the scheme is case-insensitive, RFC 9110
// 11.1). Tokens are looked up by their SHA-256, so comparing hashes of equal length
// leaks nothing about the secret.
func (s *Server) authenticate(ctx context.Context, r *http.Request) (token, error) {
	scheme, secret, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	secret = strings.TrimSpace(secret)
	if !strings.EqualFold(scheme, "Bearer") || secret == "" {
		return token{}, problem(http.StatusUnauthorized, "Authentication required",
			"send an API token as `Authorization: Bearer <token>`; create one with `labelq token create`")
	}
	t, err := db.New(s.Pool).APITokenAuthenticate(ctx, admin.HashToken(secret))
	if errors.Is(err, pgx.ErrNoRows) {
		return token{}, problem(http.StatusUnauthorized, "Invalid token",
			"the API token is unknown, revoked or expired, or its organization was deleted")
	}
	if err != nil {
		return token{}, fmt.Errorf("look up token: %w", err)
	}
	return token{ID: t.ID, OrgID: t.OrgID, Scopes: t.Scopes}, nil
}

// constraintProblem turns a refused row into the client's mistake it reflects.
func constraintProblem(err error) *Problem {
	c := database.ConstraintViolation(err)
	if c == "" {
		return nil
	}
	if msg, ok := constraintMessages[c]; ok {
		return problem(msg.status, msg.title, msg.detail)
	}
	if strings.HasSuffix(c, "_fk") || strings.HasSuffix(c, "_fkey") {
		return problem(http.StatusUnprocessableEntity, "Invalid reference", "a referenced resource does not exist in your organization ("+c+")")
	}
	return problem(http.StatusUnprocessableEntity, "Invalid request", "the request breaks the rule "+c)
}

var constraintMessages = map[string]struct {
	status        int
	title, detail string
}{
	"projects_org_name_key":           {http.StatusConflict, "Name taken", "a project with this name already exists in your organization"},
	"files_project_name_key":          {http.StatusConflict, "Name taken", "a file with this name already exists in the project"},
	"users_org_email_key":             {http.StatusConflict, "Email taken", "a user with this email already exists in your organization"},
	"projects_our_pm_fk":              {http.StatusUnprocessableEntity, "Invalid reference", "our_pm_id: " + noSuchUser},
	"projects_client_pm_fk":           {http.StatusUnprocessableEntity, "Invalid reference", "client_pm_id: " + noSuchUser},
	"assignments_live_job_role_key":   {http.StatusConflict, "Already assigned", "the job already has a live assignment for this role"},
	"projects_llm_model_when_enabled": {http.StatusUnprocessableEntity, "Invalid request", "llm_model: set a model before enabling pre-annotation"},
	"storages_project_name_key":       {http.StatusConflict, "Name taken", "a storage with this name already exists in the project"},
}
