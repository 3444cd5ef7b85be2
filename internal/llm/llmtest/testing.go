package llmtest

import (
	"net/http/httptest"
	"testing"
	"time"
)

// DefaultAPIKey is the key New configures unless WithAPIKey says
// otherwise. It is long and distinctive so that a test can search any
// error or log text for it.
const DefaultAPIKey = "sk-llmtest-5e7b1c9d3f2a4086b1d2c3e4f5a6b7c8"

// Option adjusts the Config New starts the server with.
type Option func(*Config)

// WithAPIKey sets the expected key ("" accepts any request).
func WithAPIKey(key string) Option { return func(c *Config) { c.APIKey = key } }

// WithLatency adds d to every successful reply.
func WithLatency(d time.Duration) Option { return func(c *Config) { c.Latency = d } }

// WithRPM enforces n requests per window.
func WithRPM(n int) Option { return func(c *Config) { c.RPM = n } }

// WithTPM enforces n tokens per window.
func WithTPM(n int) Option { return func(c *Config) { c.TPM = n } }

// WithMaxConcurrency answers 429 to requests beyond n in flight.
func WithMaxConcurrency(n int) Option { return func(c *Config) { c.MaxConcurrency = n } }

// WithTPMCountsUsage counts replies' usage against the TPM limit (see
// Config.TPMCountsUsage).
func WithTPMCountsUsage() Option { return func(c *Config) { c.TPMCountsUsage = true } }

// WithReasoningModels sets the model-name prefixes answered as reasoning
// models (none when called without any).
func WithReasoningModels(prefixes ...string) Option {
	return func(c *Config) { c.ReasoningModels = append([]string{}, prefixes...) }
}

// WithWrap wraps every generated JSON reply (see Config.Wrap).
func WithWrap(w Wrap) Option { return func(c *Config) { c.Wrap = w } }

// WithWindow sets the sliding window of the RPM and TPM limits.
func WithWindow(d time.Duration) Option { return func(c *Config) { c.Window = d } }

// WithModels restricts the accepted models.
func WithModels(models ...string) Option { return func(c *Config) { c.Models = models } }

// WithContextWindow sets the model's context window in tokens.
func WithContextWindow(tokens int) Option { return func(c *Config) { c.ContextWindow = tokens } }

// WithLenientSchemas accepts strict schemas OpenAI would reject.
func WithLenientSchemas() Option { return func(c *Config) { c.LenientSchemas = true } }

// WithReply sets the plain-text reply generator.
func WithReply(fn func(RecordedRequest) string) Option { return func(c *Config) { c.Reply = fn } }

// New starts a Server on a local port for the duration of the test. The
// server expects DefaultAPIKey unless an option says otherwise; it is
// closed in t.Cleanup, waking any request still sleeping.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	cfg := Config{APIKey: DefaultAPIKey}
	for _, o := range opts {
		o(&cfg)
	}
	s := NewServer(cfg)
	hs := httptest.NewServer(s)
	s.mu.Lock()
	s.url = hs.URL
	s.mu.Unlock()
	t.Cleanup(func() {
		// Wake sleepers first: httptest's Close waits for them.
		_ = s.Close()
		hs.Close()
	})
	return s
}
