package llm_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/llm"
	"github.com/labelq/labelq/internal/llm/llmtest"
)

// labelSchema is strict-mode compatible, like a project schema must be.
const labelSchema = `{
  "type": "object",
  "properties": {
    "label": {"type": "string", "enum": ["positive", "negative", "neutral"]},
    "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    "spans": {
      "type": "array",
      "items": {
        "type": "object",
        "properties": {"start": {"type": "integer", "minimum": 0}, "end": {"type": "integer", "minimum": 0}},
        "required": ["start", "end"],
        "additionalProperties": false
      }
    }
  },
  "required": ["label", "confidence", "spans"],
  "additionalProperties": false
}`

func newClient(t *testing.T, srv *llmtest.Server, mutate ...func(*llm.Config)) *llm.Client {
	t.Helper()
	cfg := llm.Config{BaseURL: srv.BaseURL(), APIKey: srv.APIKey(), Timeout: 5 * time.Second}
	for _, m := range mutate {
		m(&cfg)
	}
	c, err := llm.NewClient(cfg)
	require.NoError(t, err)
	return c
}

func textRequest(schema string) llm.Request {
	r := llm.Request{
		Model:        "gpt-4o-mini",
		Temperature:  0,
		MaxTokens:    256,
		SystemPrompt: "You label customer reviews.",
		Instructions: "Label the sentiment of the review.",
		Input:        llm.Input{Name: "review.txt", ContentType: "text/plain; charset=utf-8", Data: []byte("The product arrived broken.")},
	}
	if schema != "" {
		r.Schema = json.RawMessage(schema)
	}
	return r
}

func TestCompleteStructuredOutput(t *testing.T) {
	srv := llmtest.New(t, llmtest.WithRPM(100), llmtest.WithTPM(1000000))
	c := newClient(t, srv, func(cfg *llm.Config) {
		cfg.Prices = llm.Prices{"gpt-4o-mini": {InputPerMTok: 0.15, OutputPerMTok: 0.60}}
	})

	resp, err := c.Complete(context.Background(), textRequest(labelSchema))
	require.NoError(t, err)

	rec, ok := srv.LastRequest()
	require.True(t, ok)
	require.Equal(t, "gpt-4o-mini", rec.Model)
	require.NotNil(t, rec.ResponseFormat)
	require.Equal(t, "json_schema", rec.ResponseFormat.Type)
	require.True(t, rec.Strict(), "structured output must be requested with strict: true")
	require.Equal(t, "annotation", rec.ResponseFormat.JSONSchema.Name)
	require.JSONEq(t, labelSchema, string(rec.Schema()))
	require.NotNil(t, rec.MaxTokens)
	require.Equal(t, 256, *rec.MaxTokens)
	require.Empty(t, rec.Header.Get("Authorization"), "the recorder must not keep the key")

	require.NoError(t, llm.ValidateOutput(json.RawMessage(labelSchema), resp.Content))
	require.Equal(t, "stop", resp.FinishReason)
	require.Equal(t, rec.PromptTokens, resp.PromptTokens)
	require.Positive(t, resp.PromptTokens)
	require.Positive(t, resp.CompletionTokens)
	require.Equal(t, resp.PromptTokens+resp.CompletionTokens, resp.TotalTokens)
	require.Positive(t, resp.Latency)
	require.NotEmpty(t, resp.ID)
	require.InDelta(t, (float64(resp.PromptTokens)*0.15+float64(resp.CompletionTokens)*0.60)/1e6, resp.Cost, 1e-12)

	require.EqualValues(t, 100, resp.RateLimit.LimitRequests)
	require.EqualValues(t, 99, resp.RateLimit.RemainingRequests)
	require.EqualValues(t, 1000000, resp.RateLimit.LimitTokens)
	require.Positive(t, resp.RateLimit.ResetRequests)
}

func TestCompletePlainText(t *testing.T) {
	srv := llmtest.New(t, llmtest.WithReply(func(r llmtest.RecordedRequest) string {
		return "negative (" + r.Messages[len(r.Messages)-1].Role + ")"
	}))
	c := newClient(t, srv)

	resp, err := c.Complete(context.Background(), textRequest(""))
	require.NoError(t, err)
	require.Equal(t, "negative (user)", resp.Content)

	rec, _ := srv.LastRequest()
	require.Nil(t, rec.ResponseFormat, "no schema means no response_format")
	// go-openai drops a zero temperature; the client must still send one.
	require.NotNil(t, rec.Temperature, "temperature 0 must be sent, not omitted")
	require.Less(t, *rec.Temperature, 1e-6)
	require.Len(t, rec.Messages, 2)
	require.Equal(t, "system", rec.Messages[0].Role)
	require.Contains(t, rec.Messages[0].Content, "Label the sentiment of the review.")
	require.NotContains(t, rec.Messages[0].Content, "arrived broken", "the input belongs in the user message")
	require.Contains(t, rec.Messages[1].Content, "The product arrived broken.")
}

func TestCompleteImageInput(t *testing.T) {
	srv := llmtest.New(t)
	c := newClient(t, srv)
	png := []byte("\x89PNG\r\n\x1a\nnot really a png but bytes are bytes")
	req := textRequest(labelSchema)
	req.Input = llm.Input{Name: "cat.png", ContentType: "image/png", Data: png}

	_, err := c.Complete(context.Background(), req)
	require.NoError(t, err)

	rec, _ := srv.LastRequest()
	user := rec.Messages[1]
	require.Len(t, user.Parts, 2)
	require.Equal(t, "image_url", user.Parts[1].Type)
	require.Equal(t, "data:image/png;base64,"+base64.StdEncoding.EncodeToString(png), user.Parts[1].ImageURL)
	require.Equal(t, llmtest.ImageTokens+estimate(user.Content)+estimate(rec.Messages[0].Content), rec.PromptTokens)
}

func estimate(s string) int { return llm.EstimateTokens(len(s)) }

func TestCompleteUnsupportedContentSendsNothing(t *testing.T) {
	srv := llmtest.New(t)
	c := newClient(t, srv)
	req := textRequest("")
	req.Input = llm.Input{ContentType: "application/pdf", Data: []byte("%PDF-1.7")}

	_, err := c.Complete(context.Background(), req)
	require.ErrorIs(t, err, llm.ErrUnsupportedContent)
	kind, _ := llm.Classify(err)
	require.Equal(t, llm.KindPermanent, kind)
	require.Zero(t, srv.Stats().Requests)
}

func TestCompleteErrorClassification(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		fault      llmtest.Fault
		kind       llm.ErrorKind
		retryAfter time.Duration
		status     int
		code       string
		reason     []string
	}{
		{
			name:       "429 with Retry-After seconds",
			fault:      llmtest.Fault{Status: 429, RetryAfter: 2 * time.Second},
			kind:       llm.KindRateLimited,
			retryAfter: 2 * time.Second,
			status:     429,
			code:       "rate_limit_exceeded",
			reason:     []string{"rate limiting", "retry after 2s"},
		},
		{
			name:       "429 with only x-ratelimit-reset-requests",
			fault:      llmtest.Fault{Status: 429, Headers: map[string]string{"x-ratelimit-reset-requests": "1.5s"}},
			kind:       llm.KindRateLimited,
			retryAfter: 1500 * time.Millisecond,
			status:     429,
		},
		{
			name: "429 prefers the exhausted quota's reset",
			fault: llmtest.Fault{Status: 429, Headers: map[string]string{
				"x-ratelimit-remaining-requests": "12", "x-ratelimit-reset-requests": "6m0s",
				"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "20ms",
			}},
			kind:       llm.KindRateLimited,
			retryAfter: 20 * time.Millisecond,
			status:     429,
		},
		{
			name:       "429 with Retry-After HTTP date",
			fault:      llmtest.Fault{Status: 429, Headers: map[string]string{"Retry-After": now.Add(30 * time.Second).Format(http.TimeFormat)}},
			kind:       llm.KindRateLimited,
			retryAfter: 30 * time.Second,
			status:     429,
		},
		{
			name:   "429 insufficient_quota is permanent",
			fault:  llmtest.Fault{Status: 429, Code: "insufficient_quota", Type: "insufficient_quota", Message: "You exceeded your current quota."},
			kind:   llm.KindPermanent,
			status: 429,
			reason: []string{"out of quota", llm.EnvAPIKey},
		},
		{
			name:   "500",
			fault:  llmtest.Fault{Status: 500},
			kind:   llm.KindTransient,
			status: 500,
			reason: []string{"the provider failed (500)"},
		},
		{
			name:       "503 keeps its Retry-After",
			fault:      llmtest.Fault{Status: 503, RetryAfter: 3 * time.Second},
			kind:       llm.KindTransient,
			retryAfter: 3 * time.Second,
			status:     503,
		},
		{
			name:   "502 HTML page from a proxy",
			fault:  llmtest.Fault{Status: 502, Body: "<html><body>502 Bad Gateway</body></html>"},
			kind:   llm.KindTransient,
			status: 502,
			reason: []string{"502 Bad Gateway"},
		},
		{
			name:   "malformed JSON reply",
			fault:  llmtest.Fault{Malformed: true},
			kind:   llm.KindTransient,
			status: 200,
			reason: []string{"malformed reply"},
		},
		{
			name:   "empty reply body",
			fault:  llmtest.Fault{Empty: true},
			kind:   llm.KindTransient,
			status: 200,
			reason: []string{"empty reply"},
		},
		{
			name:   "401",
			fault:  llmtest.Fault{Status: 401},
			kind:   llm.KindPermanent,
			status: 401,
			code:   "invalid_api_key",
			reason: []string{"rejected the API key (401 invalid_api_key): check LABELQ_LLM_API_KEY"},
		},
		{
			name:   "400 context_length_exceeded",
			fault:  llmtest.Fault{Status: 400, Code: "context_length_exceeded"},
			kind:   llm.KindPermanent,
			status: 400,
			code:   "context_length_exceeded",
			reason: []string{"too long for the model's context window"},
		},
		{
			name:   "400 Azure content filter is a refusal",
			fault:  llmtest.Fault{Status: 400, Code: "content_filter", Message: "The response was filtered due to the prompt triggering Azure OpenAI's content management policy."},
			kind:   llm.KindRefusal,
			status: 400,
			code:   "content_filter",
		},
		{
			name:   "403",
			fault:  llmtest.Fault{Status: 403, Code: "unsupported_country_region_territory"},
			kind:   llm.KindPermanent,
			status: 403,
			reason: []string{"denied access"},
		},
		{
			name:   "404 unknown model",
			fault:  llmtest.Fault{Status: 404},
			kind:   llm.KindPermanent,
			status: 404,
			code:   "model_not_found",
			reason: []string{"not found", llm.EnvBaseURL},
		},
		{
			name:   "422",
			fault:  llmtest.Fault{Status: 422},
			kind:   llm.KindPermanent,
			status: 422,
		},
		{
			name:   "refusal",
			fault:  llmtest.Fault{Refusal: true},
			kind:   llm.KindRefusal,
			status: 200,
			reason: []string{"refused", "can't help"},
		},
		{
			name:   "finish_reason content_filter",
			fault:  llmtest.Fault{ContentFilter: true},
			kind:   llm.KindRefusal,
			status: 200,
			reason: []string{"content_filter"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := llmtest.New(t)
			c := newClient(t, srv, func(cfg *llm.Config) { cfg.Now = func() time.Time { return now } })
			srv.Next(tt.fault)

			resp, err := c.Complete(context.Background(), textRequest(labelSchema))
			require.Error(t, err)
			kind, retryAfter := llm.Classify(err)
			require.Equal(t, tt.kind, kind, "error: %v", err)
			require.Equal(t, tt.retryAfter, retryAfter)
			require.Equal(t, tt.kind.Retryable(), llm.IsRetryable(err))

			var e *llm.Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, tt.status, e.StatusCode)
			if tt.code != "" {
				require.Equal(t, tt.code, e.Code)
			}
			for _, want := range tt.reason {
				require.Contains(t, err.Error(), want)
			}
			sentinel := map[llm.ErrorKind]error{
				llm.KindTransient: llm.ErrTransient, llm.KindRateLimited: llm.ErrRateLimited,
				llm.KindPermanent: llm.ErrPermanent, llm.KindRefusal: llm.ErrRefusal,
			}[tt.kind]
			require.ErrorIs(t, err, sentinel)
			if tt.kind == llm.KindRefusal && tt.status == 200 {
				require.Positive(t, resp.PromptTokens, "a refusal still reports the tokens spent")
			}
			require.Zero(t, srv.PendingFaults())
		})
	}
}

func TestCompleteWrongKeyAgainstRealAuth(t *testing.T) {
	srv := llmtest.New(t)
	const wrong = "sk-wrong-0123456789abcdefghijklmnop"
	c := newClient(t, srv, func(cfg *llm.Config) { cfg.APIKey = wrong })

	_, err := c.Complete(context.Background(), textRequest(""))
	kind, _ := llm.Classify(err)
	require.Equal(t, llm.KindPermanent, kind)
	require.Contains(t, err.Error(), "check "+llm.EnvAPIKey)
	require.NotContains(t, err.Error(), wrong)
	require.NotContains(t, err.Error(), wrong[len(wrong)-4:], "not even the masked tail OpenAI quotes")
}

func TestCompleteContextLengthFromServer(t *testing.T) {
	srv := llmtest.New(t, llmtest.WithContextWindow(500))
	c := newClient(t, srv)
	req := textRequest("")
	req.Input.Data = bytes.Repeat([]byte("word "), 1000) // ≈1,250 tokens

	_, err := c.Complete(context.Background(), req)
	var e *llm.Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, llm.KindPermanent, e.Kind)
	require.Equal(t, "context_length_exceeded", e.Code)
}

func TestCompleteTimeoutAndCancel(t *testing.T) {
	t.Run("per-call timeout is transient", func(t *testing.T) {
		srv := llmtest.New(t)
		c := newClient(t, srv, func(cfg *llm.Config) { cfg.Timeout = 100 * time.Millisecond })
		srv.Next(llmtest.Fault{Delay: 2 * time.Second})

		start := time.Now()
		_, err := c.Complete(context.Background(), textRequest(""))
		require.Less(t, time.Since(start), time.Second)
		kind, _ := llm.Classify(err)
		require.Equal(t, llm.KindTransient, kind)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Contains(t, err.Error(), "did not answer within 100ms")
	})
	t.Run("caller cancellation is transient and unwraps", func(t *testing.T) {
		srv := llmtest.New(t)
		c := newClient(t, srv)
		srv.Next(llmtest.Fault{Delay: 2 * time.Second})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()

		_, err := c.Complete(ctx, textRequest(""))
		kind, _ := llm.Classify(err)
		require.Equal(t, llm.KindTransient, kind)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Contains(t, err.Error(), "cancelled")
	})
	t.Run("connection refused is transient", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())
		c, err := llm.NewClient(llm.Config{BaseURL: "http://" + addr + "/v1", APIKey: "sk-x", Timeout: time.Second})
		require.NoError(t, err)

		_, err = c.Complete(context.Background(), textRequest(""))
		kind, _ := llm.Classify(err)
		require.Equal(t, llm.KindTransient, kind)
		require.Contains(t, err.Error(), "could not reach the provider")
		require.Contains(t, err.Error(), "refused")
	})
}

func TestSchemaViolationThenRepair(t *testing.T) {
	srv := llmtest.New(t)
	c := newClient(t, srv)
	req := textRequest(labelSchema)
	srv.Next(llmtest.Fault{SchemaViolation: true})

	first, err := c.Complete(context.Background(), req)
	require.NoError(t, err, "a schema-violating reply is a successful call")
	verr := llm.ValidateOutput(req.Schema, first.Content)
	var oe *llm.OutputError
	require.ErrorAs(t, verr, &oe)
	require.Contains(t, verr.Error(), "/label: required property is missing")
	kind, _ := llm.Classify(verr)
	require.Equal(t, llm.KindPermanent, kind)

	second, err := c.Complete(context.Background(), req.WithRepair(first.Content, verr))
	require.NoError(t, err)
	require.NoError(t, llm.ValidateOutput(req.Schema, second.Content))

	rec, _ := srv.LastRequest()
	require.Len(t, rec.Messages, 4)
	require.Equal(t, "assistant", rec.Messages[2].Role)
	require.Equal(t, first.Content, rec.Messages[2].Content)
	require.Equal(t, "user", rec.Messages[3].Role)
	require.Contains(t, rec.Messages[3].Content, "/label: required property is missing")

	k1, err := c.CacheKey(strings.Repeat("a", 64), req)
	require.NoError(t, err)
	k2, err := c.CacheKey(strings.Repeat("a", 64), req.WithRepair(first.Content, verr))
	require.NoError(t, err)
	require.Equal(t, k1, k2, "the repair attempt belongs to the same cache entry")
}

func TestServerRPMLimitClassifiedAndCounted(t *testing.T) {
	srv := llmtest.New(t, llmtest.WithRPM(2))
	c := newClient(t, srv)

	for range 2 {
		_, err := c.Complete(context.Background(), textRequest(""))
		require.NoError(t, err)
	}
	resp, err := c.Complete(context.Background(), textRequest(""))
	kind, retryAfter := llm.Classify(err)
	require.Equal(t, llm.KindRateLimited, kind, "error: %v", err)
	require.Greater(t, retryAfter, 50*time.Second, "the oldest request leaves the one-minute window in ≈60s")
	require.LessOrEqual(t, retryAfter, 61*time.Second)
	require.EqualValues(t, 0, resp.RateLimit.RemainingRequests)

	st := srv.Stats()
	require.Equal(t, 1, st.RateLimited)
	require.Equal(t, 2, st.MaxRequestsPerWindow)
	require.Equal(t, 3, st.MaxArrivalsPerWindow)
	require.Equal(t, 1, st.ByStatus[429])
}

func TestAzureProvider(t *testing.T) {
	srv := llmtest.New(t)
	c := newClient(t, srv, func(cfg *llm.Config) {
		cfg.BaseURL = srv.URL()
		cfg.Provider = llm.ProviderAzure
	})
	req := textRequest(labelSchema)
	req.Model = "labelq-gpt-4o.mini"

	resp, err := c.Complete(context.Background(), req)
	require.NoError(t, err)
	require.NoError(t, llm.ValidateOutput(req.Schema, resp.Content))
	rec, _ := srv.LastRequest()
	require.Equal(t, "/openai/deployments/labelq-gpt-4o.mini/chat/completions", rec.Path)
	require.Equal(t, "api-version="+llm.DefaultAzureAPIVersion, rec.Query)
	require.Equal(t, "labelq-gpt-4o.mini", rec.Model)
	require.Empty(t, rec.Header.Get("api-key"))
}

// TestAPIKeyNeverLeaks drives every failure path with a server that echoes
// the credentials it received, and checks every string a caller could log.
// The second key looks like no known key format, so only exact redaction
// can catch it.
func TestAPIKeyNeverLeaks(t *testing.T) {
	for _, key := range []string{llmtest.DefaultAPIKey, "lbq_live_7Hq2ZxK9mN4pR8sT1vW3yB6dF0gJ5kLx"} {
		t.Run(key[:8], func(t *testing.T) {
			srv := llmtest.New(t, llmtest.WithAPIKey(key))
			c := newClient(t, srv)

			faults := []llmtest.Fault{
				{Status: 400, EchoAuth: true},
				{Status: 401, EchoAuth: true},
				{Status: 403, EchoAuth: true},
				{Status: 404, EchoAuth: true},
				{Status: 422, EchoAuth: true, Message: "bad request from key " + key},
				{Status: 429, EchoAuth: true, RetryAfter: time.Second},
				{Status: 500, EchoAuth: true},
				{Status: 502, EchoAuth: true, Body: "<html>upstream said: Authorization: Bearer " + key + "</html>"},
				{Status: 503, EchoAuth: true, Body: "api-key=" + key},
				{Status: 504, Body: "the key was " + key},
				{Status: 500, Code: key, Type: key, Message: key},
				{Refusal: true, EchoAuth: true},
				{Refusal: true, Message: "I will not, " + key},
			}
			var logs bytes.Buffer
			logger := slog.New(slog.NewJSONHandler(&logs, nil))
			for _, f := range faults {
				srv.Next(f)
				resp, err := c.Complete(context.Background(), textRequest(labelSchema))
				require.Error(t, err)
				var e *llm.Error
				require.ErrorAs(t, err, &e)
				for _, s := range []string{err.Error(), fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err), e.Reason, e.Code, e.Type, resp.Refusal} {
					require.NotContains(t, s, key, "fault %+v", f)
					require.NotContains(t, s, key[len(key)-8:], "fault %+v", f)
				}
				logger.Error("call failed", "err", err)
			}
			require.Equal(t, len(faults), srv.Stats().FaultsApplied)

			cfg := llm.Config{BaseURL: "https://user:hunter2@llm.example.com/v1", APIKey: key, Prices: llm.Prices{"m": {}}}
			logger.Info("config", "cfg", cfg, "client", c)
			js, err := json.Marshal(cfg)
			require.NoError(t, err)
			for _, s := range []string{
				fmt.Sprint(cfg), fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%+v", &cfg),
				fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprintf("%+v", *c), fmt.Sprintf("%+v", struct{ C llm.Config }{cfg}),
				string(js), logs.String(),
			} {
				require.NotContains(t, s, key)
				require.NotContains(t, s, "hunter2")
			}
			require.Contains(t, fmt.Sprintf("%+v", cfg), "[REDACTED]")
			require.Contains(t, logs.String(), "[REDACTED]", "the echoed key was there to redact")
		})
	}
}

func TestNewClientRejectsBadConfig(t *testing.T) {
	for name, cfg := range map[string]llm.Config{
		"no base URL":      {APIKey: "k"},
		"not http":         {BaseURL: "ftp://example.com", APIKey: "k"},
		"unknown provider": {BaseURL: "http://x/v1", Provider: "bedrock"},
		"negative timeout": {BaseURL: "http://x/v1", Timeout: -time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := llm.NewClient(cfg)
			require.Error(t, err)
		})
	}
}

func TestCompleteRequiresModel(t *testing.T) {
	srv := llmtest.New(t)
	c := newClient(t, srv)
	req := textRequest("")
	req.Model = ""
	_, err := c.Complete(context.Background(), req)
	require.ErrorIs(t, err, llm.ErrPermanent)
	require.Zero(t, srv.Stats().Requests)
}

func TestClassifyOtherErrors(t *testing.T) {
	kind, d := llm.Classify(nil)
	require.Equal(t, llm.KindNone, kind)
	require.Zero(t, d)
	kind, _ = llm.Classify(fmt.Errorf("wrap: %w", context.Canceled))
	require.Equal(t, llm.KindTransient, kind)
	kind, _ = llm.Classify(errors.New("something else"))
	require.Equal(t, llm.KindTransient, kind, "unknown errors are left to the retry limit")
	kind, _ = llm.Classify(fmt.Errorf("wrap: %w", &llm.OutputError{Syntax: "x"}))
	require.Equal(t, llm.KindPermanent, kind)
	require.Equal(t, "rate_limited", llm.KindRateLimited.String())
}
