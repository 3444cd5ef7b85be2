// Package llmtest is an OpenAI-compatible chat-completions server for tests,
// benchmarks and chaos runs: the one stand-in labelq allows, so it behaves
// like the real API rather than like whatever the client expects.
//
// It speaks the real wire format on POST /v1/chat/completions (also
// /chat/completions and Azure's /openai/deployments/{name}/chat/completions)
// and GET /v1/models: it checks the bearer key, rejects requests the real
// API rejects with OpenAI's error JSON, answers json_schema requests with a
// value that satisfies the schema, reports usage and x-ratelimit-* headers,
// and enforces its own requests-per-minute, tokens-per-minute and
// concurrency limits with 429 + Retry-After. Scripted faults (Next) make the
// next requests fail in the ways real providers fail. Like OpenAI it refuses
// max_tokens and a temperature for its reasoning models; like an open model
// behind vLLM, Ollama or LiteLLM it can wrap its JSON in a Markdown code
// fence or a sentence (Wrap).
//
// Tests call New, which wraps an httptest.Server; anything else (a
// benchmark driver, a chaos command) calls NewServer and Start.
package llmtest

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Defaults of Config.
const (
	DefaultWindow        = time.Minute
	DefaultContextWindow = 128000
	DefaultRecordLimit   = 10000
	// The x-ratelimit-limit-* values reported when no limit is configured:
	// real providers always send the headers, so clients must cope with
	// them; these limits are reported but not enforced.
	NominalRPM = 10000
	NominalTPM = 10000000
	// ImageTokens is the prompt-token charge per image part, what a
	// 1024×1024 image costs on OpenAI's vision models.
	ImageTokens = 765
)

// maxBody is the largest request body read (OpenAI's own limit is about
// 50 MB of images per request).
const maxBody = 64 << 20

// Config configures a Server. The zero value is an open server with no
// limits.
type Config struct {
	// APIKey is the bearer key clients must send; empty accepts any
	// request without checking.
	APIKey string
	// Latency is added to every successful reply.
	Latency time.Duration
	// RPM, TPM and MaxConcurrency are enforced limits; 0 means none.
	// Tokens are the prompt estimate plus max_tokens, as OpenAI counts
	// them when admitting a request, unless TPMCountsUsage.
	RPM            int
	TPM            int
	MaxConcurrency int
	// TPMCountsUsage counts what replies used (prompt plus completion
	// tokens, when each reply is sent) against TPM instead of what requests
	// could use, as LiteLLM's proxy limits do: a request is refused while
	// the window's usage plus its prompt is over the limit.
	TPMCountsUsage bool
	// ReasoningModels are model-name prefixes answered as OpenAI answers its
	// reasoning models: 400 unsupported_parameter for max_tokens (they take
	// max_completion_tokens) and 400 unsupported_value for any temperature
	// but 1. DefaultReasoningModels when nil; empty for none.
	ReasoningModels []string
	// Wrap wraps every generated JSON reply (json_schema and json_object) the
	// way open models often do; WrapNone leaves it bare. A fault's Wrap
	// overrides it for one reply.
	Wrap Wrap
	// Window is the sliding window of RPM and TPM; DefaultWindow when zero.
	// Tests shrink it to see limits reset quickly.
	Window time.Duration
	// Models, when set, are the only models accepted (404 otherwise).
	Models []string
	// ContextWindow in tokens; DefaultContextWindow when zero. A request
	// whose prompt estimate plus max tokens exceeds it gets 400
	// context_length_exceeded.
	ContextWindow int
	// LenientSchemas accepts strict json_schema requests whose schema
	// OpenAI's strict mode would reject (vLLM and Ollama accept them).
	LenientSchemas bool
	// Reply makes plain-text replies; a fixed description of the request
	// when nil.
	Reply func(RecordedRequest) string
	// RecordLimit caps the recorded requests kept (oldest dropped);
	// DefaultRecordLimit when zero, none kept when negative.
	RecordLimit int
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Fault scripts the answer to one request. Zero fields mean "as normal".
type Fault struct {
	// Status, when set, answers with this HTTP status and OpenAI's error
	// JSON. Such a reply carries only the headers the fault names
	// (RetryAfter, Headers), not the server's own rate-limit headers.
	Status int
	// Code, Type and Message fill the error object; the real API's values
	// for Status are used when empty. With Refusal, Message is the refusal
	// text.
	Code    string
	Type    string
	Message string
	// RetryAfter sets Retry-After in whole seconds (rounded up).
	RetryAfter time.Duration
	// Headers are set on the reply last, overriding anything else.
	Headers map[string]string
	// Body replaces the error JSON (a proxy's HTML page, say).
	Body string
	// EchoAuth puts the received Authorization (or api-key) header in the
	// error message or refusal, like a leaky proxy.
	EchoAuth bool
	// Delay waits before answering (on top of Config.Latency).
	Delay time.Duration
	// Malformed answers 200 with a JSON body cut in half; Empty with no
	// body at all.
	Malformed bool
	Empty     bool
	// SchemaViolation answers with JSON that does not satisfy the
	// requested schema.
	SchemaViolation bool
	// Refusal answers with content null and a refusal message;
	// ContentFilter with finish_reason "content_filter" and no content.
	Refusal       bool
	ContentFilter bool
	// Content replaces the generated reply text.
	Content string
	// Wrap wraps this reply's generated JSON (see Config.Wrap).
	Wrap Wrap
}

// Wrap is how a reply's JSON is wrapped.
type Wrap string

// The wrappings open models are seen to use when nothing constrains their
// output (no guided decoding): a fenced block, with or without a language
// tag and a sentence around it, or a sentence alone.
const (
	WrapNone Wrap = ""
	// WrapFence: "```json\n{...}\n```".
	WrapFence Wrap = "fence"
	// WrapBareFence: "```\n{...}\n```".
	WrapBareFence Wrap = "bare_fence"
	// WrapChattyFence: a sentence, the fenced JSON, another sentence.
	WrapChattyFence Wrap = "chatty_fence"
	// WrapProse: "Here is the result: {...} Hope this helps!".
	WrapProse Wrap = "prose"
)

// Apply wraps a JSON text.
func (w Wrap) Apply(js string) string {
	switch w {
	case WrapFence:
		return "```json\n" + js + "\n```"
	case WrapBareFence:
		return "```\n" + js + "\n```"
	case WrapChattyFence:
		return "Sure! Here is the annotation as JSON:\n\n```json\n" + js + "\n```\n\nLet me know if you need anything else."
	case WrapProse:
		return "Here is the result: " + js + " Hope this helps!"
	}
	return js
}

// DefaultReasoningModels are OpenAI's reasoning-model families.
var DefaultReasoningModels = []string{"o1", "o3", "o4", "gpt-5"}

// RecordedRequest is one chat-completion request as received.
type RecordedRequest struct {
	Seq    int
	Time   time.Time
	Method string
	Path   string
	// Query is the raw query string (Azure's api-version).
	Query string
	// Header is the request header without Authorization and api-key.
	Header              http.Header
	Model               string
	Messages            []Message
	Temperature         *float64
	MaxTokens           *int
	MaxCompletionTokens *int
	// ResponseFormat is nil when the request had none.
	ResponseFormat *ResponseFormat
	// PromptTokens is the server's estimate (see Stats); CompletionTokens
	// what the reply reported (0 until it is sent, and for errors).
	PromptTokens     int
	CompletionTokens int
	Body             []byte
	// Status is the HTTP status answered; 0 while in flight.
	Status int
	// Fault is the scripted fault applied, if any.
	Fault *Fault
}

// Schema is the requested json_schema, nil when none.
func (r RecordedRequest) Schema() json.RawMessage {
	if r.ResponseFormat == nil || r.ResponseFormat.JSONSchema == nil {
		return nil
	}
	return r.ResponseFormat.JSONSchema.Schema
}

// Strict reports whether the request asked for strict structured output.
func (r RecordedRequest) Strict() bool {
	return r.ResponseFormat != nil && r.ResponseFormat.JSONSchema != nil &&
		r.ResponseFormat.JSONSchema.Strict != nil && *r.ResponseFormat.JSONSchema.Strict
}

// Stats are the server's counters since start (or Reset).
type Stats struct {
	// Requests counts chat-completion requests received, any outcome.
	Requests int
	// Succeeded counts 200 replies.
	Succeeded int
	// RateLimited counts 429s from the server's own RPM, TPM and
	// concurrency limits (scripted 429s are not included).
	RateLimited int
	// FaultsApplied counts scripted faults used.
	FaultsApplied int
	// ByStatus counts replies per HTTP status.
	ByStatus map[int]int
	// MaxConcurrency is the most valid chat requests in flight at once,
	// counting those then refused by the concurrency limit.
	MaxConcurrency int
	// MaxRequestsPerWindow is the most requests admitted within one
	// sliding window; MaxArrivalsPerWindow counts every arrival, 429s
	// included; MaxTokensPerWindow is the most admitted tokens.
	MaxRequestsPerWindow int
	MaxArrivalsPerWindow int
	MaxTokensPerWindow   int
}

// Server is the fake provider. Its methods are safe for concurrent use.
type Server struct {
	cfg Config

	mu       sync.Mutex
	faults   []Fault
	requests []RecordedRequest
	seq      int
	stats    Stats
	inflight int
	admitted window
	arrivals window
	used     window // replies' usage, with TPMCountsUsage
	url      string
	httpSrv  *http.Server

	done      chan struct{}
	closeOnce sync.Once
}

// NewServer builds a server that is not listening yet: use it as an
// http.Handler, or call Start.
func NewServer(cfg Config) *Server {
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.ContextWindow <= 0 {
		cfg.ContextWindow = DefaultContextWindow
	}
	if cfg.RecordLimit == 0 {
		cfg.RecordLimit = DefaultRecordLimit
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ReasoningModels == nil {
		cfg.ReasoningModels = DefaultReasoningModels
	}
	return &Server{
		cfg:      cfg,
		admitted: window{length: cfg.Window},
		arrivals: window{length: cfg.Window},
		used:     window{length: cfg.Window},
		stats:    Stats{ByStatus: map[int]int{}},
		done:     make(chan struct{}),
	}
}

// Start listens on addr ("127.0.0.1:0" for any free port) and serves in the
// background until Close.
func (s *Server) Start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("llmtest: listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	s.httpSrv = srv
	s.url = "http://" + ln.Addr().String()
	s.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
	return nil
}

// Close stops a started server and wakes every request that is sleeping
// (latency or a Delay fault) so that it answers at once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { close(s.done) })
	s.mu.Lock()
	srv := s.httpSrv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(ctx)
}

// URL is the server's root URL ("http://127.0.0.1:PORT"), empty before it
// listens.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// BaseURL is the OpenAI-style base URL with the /v1 prefix, what a client's
// base URL setting wants.
func (s *Server) BaseURL() string { return s.URL() + "/v1" }

// APIKey is the key the server expects.
func (s *Server) APIKey() string { return s.cfg.APIKey }

// Next queues faults for the next requests, one each, in order.
func (s *Server) Next(faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, faults...)
}

// PendingFaults is how many queued faults have not been used yet.
func (s *Server) PendingFaults() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.faults)
}

// Requests returns a copy of the recorded requests, oldest first.
func (s *Server) Requests() []RecordedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]RecordedRequest, len(s.requests))
	copy(out, s.requests)
	return out
}

// LastRequest returns the most recent recorded request.
func (s *Server) LastRequest() (RecordedRequest, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.requests) == 0 {
		return RecordedRequest{}, false
	}
	return s.requests[len(s.requests)-1], true
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.ByStatus = make(map[int]int, len(s.stats.ByStatus))
	for k, v := range s.stats.ByStatus {
		st.ByStatus[k] = v
	}
	return st
}

// Reset forgets recorded requests, counters, queued faults and the rate
// windows, for reuse between benchmark phases.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults, s.requests = nil, nil
	s.stats = Stats{ByStatus: map[int]int{}}
	s.admitted = window{length: s.cfg.Window}
	s.arrivals = window{length: s.cfg.Window}
	s.used = window{length: s.cfg.Window}
}

// ServeHTTP routes like the real API: unknown routes get OpenAI's
// "Invalid URL" error, not a bare 404 page.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch {
	case r.Method == http.MethodPost && (path == "/v1/chat/completions" || path == "/chat/completions"):
		s.chat(w, r, "")
	case r.Method == http.MethodPost && strings.HasPrefix(path, "/openai/deployments/") && strings.HasSuffix(path, "/chat/completions"):
		deployment := strings.TrimSuffix(strings.TrimPrefix(path, "/openai/deployments/"), "/chat/completions")
		if r.URL.Query().Get("api-version") == "" {
			// Azure's own answer, in its own error shape.
			writeJSON(w, http.StatusNotFound, map[string]any{"error": map[string]string{"code": "404", "message": "Resource not found"}})
			return
		}
		s.chat(w, r, deployment)
	case r.Method == http.MethodGet && (path == "/v1/models" || path == "/models"):
		s.models(w, r)
	default:
		writeAPIError(w, http.StatusNotFound, apiError{
			Message: fmt.Sprintf("Invalid URL (%s %s)", r.Method, path),
			Type:    "invalid_request_error",
		})
	}
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	if e := s.authenticate(r); e != nil {
		writeAPIError(w, e.status, e.apiError)
		return
	}
	models := s.cfg.Models
	if len(models) == 0 {
		models = []string{"gpt-4o-mini"}
	}
	list := modelList{Object: "list"}
	for _, m := range models {
		list.Data = append(list.Data, modelInfo{ID: m, Object: "model", Created: 1700000000, OwnedBy: "llmtest"})
	}
	writeJSON(w, http.StatusOK, list)
}

// authHeader is the credential the client sent: the bearer token, or
// Azure's api-key header.
func authHeader(r *http.Request) (raw, key string) {
	if v := r.Header.Get("Authorization"); v != "" {
		k, ok := strings.CutPrefix(v, "Bearer ")
		if !ok {
			return v, ""
		}
		return v, k
	}
	if v := r.Header.Get("api-key"); v != "" {
		return v, v
	}
	return "", ""
}

func (s *Server) authenticate(r *http.Request) *reqError {
	if s.cfg.APIKey == "" {
		return nil
	}
	raw, key := authHeader(r)
	if raw == "" {
		return &reqError{status: http.StatusUnauthorized, apiError: apiError{
			Message: "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
			Type:    "invalid_request_error",
		}}
	}
	if key != s.cfg.APIKey {
		return &reqError{status: http.StatusUnauthorized, apiError: apiError{
			Message: fmt.Sprintf("Incorrect API key provided: %s. You can find your API key at https://platform.openai.com/account/api-keys.", maskKey(key)),
			Type:    "invalid_request_error",
			Code:    strPtr("invalid_api_key"),
		}}
	}
	return nil
}

// maskKey masks a key the way OpenAI does in its 401 message.
func maskKey(k string) string {
	if len(k) <= 8 {
		return strings.Repeat("*", len(k))
	}
	return k[:3] + strings.Repeat("*", len(k)-7) + k[len(k)-4:]
}

// chat serves one chat completion: authenticate, parse and validate like
// the real API, then apply a scripted fault, the limits, the latency, and
// answer. Every request is recorded, rejected ones included.
func (s *Server) chat(w http.ResponseWriter, r *http.Request, deployment string) {
	now := s.cfg.Now()
	s.mu.Lock()
	s.stats.Requests++
	s.arrivals.prune(now)
	s.arrivals.add(now, 0)
	s.stats.MaxArrivalsPerWindow = max(s.stats.MaxArrivalsPerWindow, s.arrivals.count())
	s.mu.Unlock()

	rec := RecordedRequest{Time: now, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone()}
	rec.Header.Del("Authorization")
	rec.Header.Del("api-key")
	seq := s.record(rec)
	status := http.StatusOK
	defer func() { s.finish(seq, status) }()

	fail := func(e *reqError) {
		status = e.status
		writeAPIError(w, e.status, e.apiError)
	}
	if e := s.authenticate(r); e != nil {
		fail(e)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		fail(invalid("", "", "We could not read the body of your request: %v", err))
		return
	}
	if len(body) > maxBody {
		fail(&reqError{status: http.StatusRequestEntityTooLarge, apiError: apiError{Message: "Request too large.", Type: "invalid_request_error"}})
		return
	}
	parsed, perr := s.parse(body, deployment, &rec)
	s.update(seq, func(r *RecordedRequest) {
		seq, t, st := r.Seq, r.Time, r.Status
		*r = rec
		r.Seq, r.Time, r.Status = seq, t, st
		r.Body = body
	})
	if perr != nil {
		fail(perr)
		return
	}

	s.mu.Lock()
	var fault *Fault
	if len(s.faults) > 0 {
		f := s.faults[0]
		s.faults = s.faults[1:]
		fault = &f
		s.stats.FaultsApplied++
	}
	s.inflight++
	s.stats.MaxConcurrency = max(s.stats.MaxConcurrency, s.inflight)
	inflight := s.inflight
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inflight--
		s.mu.Unlock()
	}()
	if fault != nil {
		s.update(seq, func(r *RecordedRequest) { r.Fault = fault })
	}

	if fault != nil && fault.Delay > 0 && !s.sleep(r.Context(), fault.Delay) {
		status = statusClientClosed
		return
	}
	if fault != nil && (fault.Status != 0 || fault.Body != "") {
		status = s.writeFault(w, r, *fault, parsed)
		return
	}
	if s.cfg.MaxConcurrency > 0 && inflight > s.cfg.MaxConcurrency {
		status = http.StatusTooManyRequests
		s.countRateLimited()
		w.Header().Set("Retry-After", "1")
		writeAPIError(w, status, apiError{
			Message: fmt.Sprintf("Too many concurrent requests for %s: limit %d. Please try again in 1s.", parsed.model, s.cfg.MaxConcurrency),
			Type:    "requests",
			Code:    strPtr("rate_limit_exceeded"),
		})
		return
	}
	requested := parsed.promptTokens + parsed.maxTokens
	if s.cfg.TPMCountsUsage {
		requested = parsed.promptTokens
	}
	if e, wait := s.admit(requested, parsed.model); e != nil {
		status = http.StatusTooManyRequests
		s.rateHeaders(w.Header())
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
		writeAPIError(w, status, *e)
		return
	}
	if s.cfg.Latency > 0 && !s.sleep(r.Context(), s.cfg.Latency) {
		status = statusClientClosed
		return
	}
	status = s.reply(w, r, seq, parsed, fault)
}

// reasoning reports whether model is one of the configured reasoning models.
func (s *Server) reasoning(model string) bool {
	for _, p := range s.cfg.ReasoningModels {
		if p != "" && strings.HasPrefix(model, p) {
			return true
		}
	}
	return false
}

// statusClientClosed is nginx's code for a client that hung up before the
// answer; nothing is written, it only shows in Stats.ByStatus.
const statusClientClosed = 499

// record appends rec and returns its sequence number.
func (s *Server) record(rec RecordedRequest) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	rec.Seq = s.seq
	if s.cfg.RecordLimit < 0 {
		return rec.Seq
	}
	if len(s.requests) >= s.cfg.RecordLimit {
		s.requests = slices.Delete(s.requests, 0, len(s.requests)-s.cfg.RecordLimit+1)
	}
	s.requests = append(s.requests, rec)
	return rec.Seq
}

// update edits the recorded request seq, if it is still kept. Records are
// found by Seq because dropping old ones shifts indexes.
func (s *Server) update(seq int, fn func(*RecordedRequest)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.requests) - 1; i >= 0; i-- {
		if s.requests[i].Seq == seq {
			fn(&s.requests[i])
			return
		}
	}
}

func (s *Server) finish(seq, status int) {
	s.mu.Lock()
	s.stats.ByStatus[status]++
	if status == http.StatusOK {
		s.stats.Succeeded++
	}
	s.mu.Unlock()
	s.update(seq, func(r *RecordedRequest) { r.Status = status })
}

func (s *Server) countRateLimited() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.RateLimited++
}

// sleep waits d, returning false when the client gave up first. Close ends
// every sleep early so a test never waits on a scripted delay.
func (s *Server) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.done:
		return true
	case <-ctx.Done():
		return false
	}
}

// admit applies the RPM and TPM limits and, when the request fits, counts
// it in the window.
func (s *Server) admit(tokens int, model string) (*apiError, time.Duration) {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.admitted.prune(now)
	if rpm := s.cfg.RPM; rpm > 0 && s.admitted.count() >= rpm {
		wait := s.admitted.untilSlot(now, rpm)
		s.stats.RateLimited++
		return &apiError{
			Message: fmt.Sprintf("Rate limit reached for %s in organization org-llmtest on requests per min (RPM): Limit %d, Used %d, Requested 1. Please try again in %s. Visit https://platform.openai.com/account/rate-limits to learn more.",
				model, rpm, s.admitted.count(), formatReset(wait)),
			Type: "requests",
			Code: strPtr("rate_limit_exceeded"),
		}, wait
	}
	counted := &s.admitted
	if s.cfg.TPMCountsUsage {
		s.used.prune(now)
		counted = &s.used
	}
	if tpm := s.cfg.TPM; tpm > 0 && counted.tokens+tokens > tpm {
		wait := counted.untilTokens(now, tpm, tokens)
		s.stats.RateLimited++
		msg := fmt.Sprintf("Rate limit reached for %s in organization org-llmtest on tokens per min (TPM): Limit %d, Used %d, Requested %d. Please try again in %s. Visit https://platform.openai.com/account/rate-limits to learn more.",
			model, tpm, counted.tokens, tokens, formatReset(wait))
		if tokens > tpm {
			msg = fmt.Sprintf("Request too large for %s in organization org-llmtest on tokens per min (TPM): Limit %d, Requested %d. The input or output tokens must be reduced in order to run successfully.", model, tpm, tokens)
		}
		return &apiError{Message: msg, Type: "tokens", Code: strPtr("rate_limit_exceeded")}, wait
	}
	if s.cfg.TPMCountsUsage {
		tokens = 0 // counted when the reply is sent (countUsage)
	}
	s.admitted.add(now, tokens)
	s.stats.MaxRequestsPerWindow = max(s.stats.MaxRequestsPerWindow, s.admitted.count())
	if !s.cfg.TPMCountsUsage {
		s.stats.MaxTokensPerWindow = max(s.stats.MaxTokensPerWindow, s.admitted.tokens)
	}
	return nil, 0
}

// countUsage records what a reply used: against TPM with TPMCountsUsage, and on
// the recorded request always.
func (s *Server) countUsage(seq, prompt, completion int) {
	s.update(seq, func(r *RecordedRequest) { r.CompletionTokens = completion })
	if !s.cfg.TPMCountsUsage {
		return
	}
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.used.prune(now)
	s.used.add(now, prompt+completion)
	s.stats.MaxTokensPerWindow = max(s.stats.MaxTokensPerWindow, s.used.tokens)
}

// rateHeaders sets the x-ratelimit-* headers from the current window.
func (s *Server) rateHeaders(h http.Header) {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.admitted.prune(now)
	s.used.prune(now)
	rpm, tpm := s.cfg.RPM, s.cfg.TPM
	if rpm <= 0 {
		rpm = NominalRPM
	}
	if tpm <= 0 {
		tpm = NominalTPM
	}
	reset := formatReset(s.admitted.resetIn(now))
	h.Set("x-ratelimit-limit-requests", strconv.Itoa(rpm))
	h.Set("x-ratelimit-remaining-requests", strconv.Itoa(max(0, rpm-s.admitted.count())))
	h.Set("x-ratelimit-reset-requests", reset)
	h.Set("x-ratelimit-limit-tokens", strconv.Itoa(tpm))
	tokens := s.admitted.tokens
	if s.cfg.TPMCountsUsage {
		tokens = s.used.tokens
	}
	h.Set("x-ratelimit-remaining-tokens", strconv.Itoa(max(0, tpm-tokens)))
	h.Set("x-ratelimit-reset-tokens", reset)
}

// parsedRequest is what chat needs from a validated request.
type parsedRequest struct {
	model        string
	messages     []Message
	format       *ResponseFormat
	promptTokens int
	maxTokens    int
	images       int
}

var schemaNameRE = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// parse validates the body as the real API does and fills rec.
func (s *Server) parse(body []byte, deployment string, rec *RecordedRequest) (parsedRequest, *reqError) {
	var p parsedRequest
	var req chatRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return p, invalid("", "", "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)")
	}
	p.model = req.Model
	if deployment != "" {
		p.model = deployment
	}
	rec.Model = p.model
	rec.Temperature, rec.MaxTokens, rec.MaxCompletionTokens = req.Temperature, req.MaxTokens, req.MaxCompletionTokens

	msgs, e := parseMessages(req.Messages)
	rec.Messages = msgs
	p.messages = msgs
	for _, m := range msgs {
		text := len(m.Content)
		for _, part := range m.Parts {
			if part.Type == "image_url" {
				p.images++
			}
		}
		p.promptTokens += text
	}
	p.promptTokens = estimateTokens(p.promptTokens) + p.images*ImageTokens
	rec.PromptTokens = p.promptTokens

	if len(req.ResponseFormat) > 0 && string(req.ResponseFormat) != "null" {
		var rf ResponseFormat
		if err := json.Unmarshal(req.ResponseFormat, &rf); err != nil {
			return p, invalid("response_format", "invalid_type", "Invalid type for 'response_format': expected an object, but got %s instead.", jsonKind(req.ResponseFormat))
		}
		rec.ResponseFormat = &rf
		p.format = &rf
	}

	switch {
	case strings.TrimSpace(p.model) == "":
		return p, invalid("", "", "you must provide a model parameter")
	case e != nil:
		return p, e
	case req.Stream:
		return p, invalid("stream", "unsupported_value", "llmtest does not support streaming; send stream: false")
	}
	if len(s.cfg.Models) > 0 && !slices.Contains(s.cfg.Models, p.model) {
		return p, &reqError{status: http.StatusNotFound, apiError: apiError{
			Message: fmt.Sprintf("The model `%s` does not exist or you do not have access to it.", p.model),
			Type:    "invalid_request_error",
			Code:    strPtr("model_not_found"),
		}}
	}
	if t := req.Temperature; t != nil && (*t < 0 || *t > 2) {
		return p, invalid("temperature", "decimal_above_max_value", "Invalid 'temperature': decimal out of range. Expected a value between 0 and 2, but got %v instead.", *t)
	}
	if s.reasoning(p.model) {
		// OpenAI's own words for its reasoning models (o1, o3, o4-mini, gpt-5).
		if req.MaxTokens != nil {
			return p, invalid("max_tokens", "unsupported_parameter", "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.")
		}
		if t := req.Temperature; t != nil && *t != 1 {
			return p, invalid("temperature", "unsupported_value", "Unsupported value: 'temperature' does not support %v with this model. Only the default (1) value is supported.", *t)
		}
	}
	for _, mt := range []struct {
		name string
		v    *int
	}{{"max_tokens", req.MaxTokens}, {"max_completion_tokens", req.MaxCompletionTokens}} {
		if mt.v == nil {
			continue
		}
		if *mt.v < 1 {
			return p, invalid(mt.name, "integer_below_min_value", "Invalid '%s': integer below minimum value. Expected a value >= 1, but got %d instead.", mt.name, *mt.v)
		}
		p.maxTokens = *mt.v
	}
	if req.MaxTokens != nil && req.MaxCompletionTokens != nil {
		return p, invalid("max_tokens", "invalid_request_error", "max_tokens and max_completion_tokens cannot both be set")
	}
	if p.promptTokens+p.maxTokens > s.cfg.ContextWindow {
		return p, invalid("messages", "context_length_exceeded",
			"This model's maximum context length is %d tokens. However, you requested %d tokens (%d in the messages, %d in the completion). Please reduce the length of the messages or completion.",
			s.cfg.ContextWindow, p.promptTokens+p.maxTokens, p.promptTokens, p.maxTokens)
	}
	if p.format != nil {
		if e := s.checkFormat(p.format, msgs); e != nil {
			return p, e
		}
	}
	return p, nil
}

func (s *Server) checkFormat(rf *ResponseFormat, msgs []Message) *reqError {
	switch rf.Type {
	case "text":
	case "json_object":
		for _, m := range msgs {
			if strings.Contains(strings.ToLower(m.Content), "json") {
				return nil
			}
		}
		return invalid("messages", "", "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.")
	case "json_schema":
		js := rf.JSONSchema
		if js == nil {
			return invalid("response_format.json_schema", "missing_required_parameter", "Missing required parameter: 'response_format.json_schema'.")
		}
		if !schemaNameRE.MatchString(js.Name) {
			return invalid("response_format.json_schema.name", "invalid_value", "Invalid 'response_format.json_schema.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.")
		}
		var obj map[string]any
		if err := json.Unmarshal(js.Schema, &obj); err != nil || obj == nil {
			return invalid("response_format.json_schema.schema", "invalid_type", "Invalid type for 'response_format.json_schema.schema': expected an object.")
		}
		if js.Strict != nil && *js.Strict && !s.cfg.LenientSchemas {
			if problem := strictProblem(js.Schema); problem != "" {
				return invalid("response_format", "", "Invalid schema for response_format '%s': %s", js.Name, problem)
			}
		}
	default:
		return invalid("response_format.type", "invalid_value", "Invalid value: '%s'. Supported values are: 'json_object', 'json_schema', and 'text'.", rf.Type)
	}
	return nil
}

func parseMessages(raw json.RawMessage) ([]Message, *reqError) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, invalid("messages", "missing_required_parameter", "Missing required parameter: 'messages'.")
	}
	var wms []wireMessage
	if err := json.Unmarshal(raw, &wms); err != nil {
		return nil, invalid("messages", "invalid_type", "Invalid type for 'messages': expected an array of objects.")
	}
	if len(wms) == 0 {
		return nil, invalid("messages", "empty_array", "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.")
	}
	out := make([]Message, 0, len(wms))
	for i, wm := range wms {
		switch wm.Role {
		case "system", "developer", "user", "assistant", "tool", "function":
		default:
			return out, invalid(fmt.Sprintf("messages[%d].role", i), "invalid_value",
				"Invalid value: '%s'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'.", wm.Role)
		}
		m := Message{Role: wm.Role}
		content := strings.TrimSpace(string(wm.Content))
		switch {
		case content == "" || content == "null":
			if wm.Role != "assistant" {
				return out, invalid(fmt.Sprintf("messages[%d].content", i), "",
					"Invalid value for 'content': expected a string, got null.")
			}
		case content[0] == '"':
			_ = json.Unmarshal(wm.Content, &m.Content)
		case content[0] == '[':
			var parts []wirePart
			if err := json.Unmarshal(wm.Content, &parts); err != nil {
				return out, invalid(fmt.Sprintf("messages[%d].content", i), "invalid_type", "Invalid type for 'messages[%d].content': expected one of a string or array of objects.", i)
			}
			var sb strings.Builder
			for j, wp := range parts {
				param := fmt.Sprintf("messages[%d].content[%d]", i, j)
				switch wp.Type {
				case "text":
					sb.WriteString(wp.Text)
					m.Parts = append(m.Parts, ContentPart{Type: "text", Text: wp.Text})
				case "image_url":
					if wp.ImageURL == nil || wp.ImageURL.URL == "" {
						return out, invalid(param+".image_url", "missing_required_parameter", "Missing required parameter: '%s.image_url.url'.", param)
					}
					if wm.Role != "user" {
						return out, invalid(param+".type", "invalid_value", "Image URLs are only allowed for messages with role 'user', but this message with role '%s' contains an image URL.", wm.Role)
					}
					if e := checkImageURL(wp.ImageURL.URL, param); e != nil {
						return out, e
					}
					m.Parts = append(m.Parts, ContentPart{Type: "image_url", ImageURL: wp.ImageURL.URL, Detail: wp.ImageURL.Detail})
				default:
					return out, invalid(param+".type", "invalid_value", "Invalid value: '%s'. Supported values are: 'text', 'image_url', 'input_audio', 'refusal', 'audio', and 'file'.", wp.Type)
				}
			}
			m.Content = sb.String()
		default:
			return out, invalid(fmt.Sprintf("messages[%d].content", i), "invalid_type", "Invalid type for 'messages[%d].content': expected one of a string or array of objects.", i)
		}
		out = append(out, m)
	}
	return out, nil
}

// checkImageURL accepts http(s) URLs and well-formed base64 data URLs of
// the image types OpenAI reads.
func checkImageURL(u, param string) *reqError {
	if strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "http://") {
		return nil
	}
	bad := invalid(param+".image_url.url", "invalid_image_format",
		"You uploaded an unsupported image. Please make sure your image has of one the following formats: ['png', 'jpeg', 'gif', 'webp'].")
	meta, data, ok := strings.Cut(strings.TrimPrefix(u, "data:"), ",")
	if !ok || !strings.HasPrefix(u, "data:") || !strings.HasSuffix(meta, ";base64") {
		return invalid(param+".image_url.url", "invalid_image_url", "Invalid image URL: expected a base64-encoded data URL with an image MIME type (e.g. 'data:image/png;base64,...') or an http(s) URL.")
	}
	switch strings.TrimSuffix(meta, ";base64") {
	case "image/png", "image/jpeg", "image/gif", "image/webp":
	default:
		return bad
	}
	if _, err := base64.StdEncoding.DecodeString(data); err != nil || data == "" {
		return invalid(param+".image_url.url", "invalid_image", "Invalid image.")
	}
	return nil
}

func jsonKind(raw json.RawMessage) string {
	s := strings.TrimSpace(string(raw))
	switch {
	case s == "":
		return "nothing"
	case s[0] == '"':
		return "a string"
	case s[0] == '[':
		return "an array"
	case s == "true" || s == "false":
		return "a boolean"
	}
	return "a number"
}

// estimateTokens is ceil(bytes/4), the same rule labelq's client budgets
// with.
func estimateTokens(n int) int {
	if n <= 0 {
		return 0
	}
	return (n + 3) / 4
}

// writeFault answers with a scripted error and returns the status written.
func (s *Server) writeFault(w http.ResponseWriter, r *http.Request, f Fault, p parsedRequest) int {
	status := f.Status
	if status == 0 {
		status = http.StatusOK
	}
	e := defaultError(status, f.Code, p)
	if f.Type != "" {
		e.Type = f.Type
	}
	if f.Message != "" {
		e.Message = f.Message
	}
	if f.EchoAuth {
		raw, _ := authHeader(r)
		e.Message += " (received credentials: " + raw + ")"
	}
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(f.RetryAfter.Seconds()))))
	}
	for k, v := range f.Headers {
		w.Header().Set(k, v)
	}
	if f.Body != "" {
		body := f.Body
		if f.EchoAuth {
			raw, _ := authHeader(r)
			body += "\n" + raw
		}
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
		return status
	}
	writeAPIError(w, status, e)
	return status
}

// defaultError is the real API's error for a status (and code).
func defaultError(status int, code string, p parsedRequest) apiError {
	e := apiError{Type: "invalid_request_error", Code: strPtr(code)}
	switch status {
	case http.StatusBadRequest:
		e.Message = "Invalid request."
		if code == "context_length_exceeded" {
			e.Param = strPtr("messages")
			e.Message = fmt.Sprintf("This model's maximum context length is 128000 tokens. However, your messages resulted in %d tokens. Please reduce the length of the messages.", max(p.promptTokens, 128001))
		}
	case http.StatusUnauthorized:
		e.Message = "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys."
		if code == "" {
			e.Code = strPtr("invalid_api_key")
		}
	case http.StatusForbidden:
		e.Message = "You are not allowed to sample from this model."
	case http.StatusNotFound:
		e.Message = fmt.Sprintf("The model `%s` does not exist or you do not have access to it.", p.model)
		if code == "" {
			e.Code = strPtr("model_not_found")
		}
	case http.StatusTooManyRequests:
		e.Type = "requests"
		e.Message = fmt.Sprintf("Rate limit reached for %s in organization org-llmtest on requests per min (RPM). Please try again later.", p.model)
		if code == "" {
			e.Code = strPtr("rate_limit_exceeded")
		}
	case http.StatusInternalServerError:
		e.Type = "server_error"
		e.Message = "The server had an error while processing your request. Sorry about that!"
	case http.StatusServiceUnavailable:
		e.Type = "server_error"
		e.Message = "The engine is currently overloaded, please try again later."
	default:
		if status >= 500 {
			e.Type = "server_error"
		}
		e.Message = http.StatusText(status)
	}
	return e
}

// reply writes a successful completion, shaped by the response format and
// the fault's flags, and returns the status written.
func (s *Server) reply(w http.ResponseWriter, r *http.Request, seq int, p parsedRequest, f *Fault) int {
	if f == nil {
		f = &Fault{}
	}
	s.rateHeaders(w.Header())
	w.Header().Set("x-request-id", fmt.Sprintf("req_llmtest_%06d", seq))
	w.Header().Set("openai-organization", "org-llmtest")
	w.Header().Set("openai-version", "2020-10-01")
	w.Header().Set("openai-processing-ms", strconv.FormatInt(s.cfg.Latency.Milliseconds(), 10))
	for k, v := range f.Headers {
		w.Header().Set(k, v)
	}
	if f.Empty {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		return http.StatusOK
	}

	content, err := s.content(p, f)
	if err != nil {
		writeAPIError(w, http.StatusInternalServerError, apiError{Message: "llmtest: " + err.Error(), Type: "server_error"})
		return http.StatusInternalServerError
	}
	msg := responseMessage{Role: "assistant", Annotations: []struct{}{}}
	finish := "stop"
	switch {
	case f.Refusal:
		refusal := "I'm sorry, but I can't help with that request."
		if f.Message != "" {
			refusal = f.Message
		}
		if f.EchoAuth {
			raw, _ := authHeader(r)
			refusal += " (" + raw + ")"
		}
		msg.Refusal = &refusal
		content = refusal
	case f.ContentFilter:
		empty := ""
		msg.Content = &empty
		finish = "content_filter"
		content = ""
	default:
		if p.maxTokens > 0 && estimateTokens(len(content)) > p.maxTokens {
			content = cutUTF8(content, p.maxTokens*4)
			finish = "length"
		}
		msg.Content = &content
	}
	completionTokens := estimateTokens(len(content))
	s.countUsage(seq, p.promptTokens, completionTokens)
	resp := completion{
		ID:                fmt.Sprintf("chatcmpl-llmtest%06d", seq),
		Object:            "chat.completion",
		Created:           s.cfg.Now().Unix(),
		Model:             p.model,
		Choices:           []choice{{Index: 0, Message: msg, FinishReason: finish}},
		SystemFingerprint: "fp_llmtest",
		ServiceTier:       "default",
	}
	resp.Usage.PromptTokens = p.promptTokens
	resp.Usage.CompletionTokens = completionTokens
	resp.Usage.TotalTokens = p.promptTokens + completionTokens

	if f.Malformed {
		b, _ := json.Marshal(resp)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(b[:len(b)/2])
		return http.StatusOK
	}
	writeJSON(w, http.StatusOK, resp)
	return http.StatusOK
}

// content is the assistant's reply text before max-token cutting.
func (s *Server) content(p parsedRequest, f *Fault) (string, error) {
	if f.Content != "" {
		return f.Content, nil
	}
	wrap := cmp.Or(f.Wrap, s.cfg.Wrap)
	if p.format != nil && p.format.Type == "json_schema" && p.format.JSONSchema != nil {
		if f.SchemaViolation {
			b, err := violation(p.format.JSONSchema.Schema)
			return wrap.Apply(string(b)), err
		}
		v, err := MinimalInstance(p.format.JSONSchema.Schema)
		if err != nil {
			return "", err
		}
		b, err := json.Marshal(v)
		return wrap.Apply(string(b)), err
	}
	if p.format != nil && p.format.Type == "json_object" {
		if f.SchemaViolation {
			return wrap.Apply(`{"llmtest": `), nil
		}
		return wrap.Apply(`{"annotation":"llmtest"}`), nil
	}
	if s.cfg.Reply != nil {
		rec := RecordedRequest{Model: p.model, Messages: p.messages, ResponseFormat: p.format, PromptTokens: p.promptTokens}
		return s.cfg.Reply(rec), nil
	}
	return fmt.Sprintf("llmtest reply from %s: %d message(s), %d prompt tokens, %d image(s).", p.model, len(p.messages), p.promptTokens, p.images), nil
}

func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
