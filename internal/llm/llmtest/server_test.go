package llmtest_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/llm"
	"github.com/labelq/labelq/internal/llm/llmtest"
)

const schema = `{"type":"object","properties":{"label":{"type":"string","enum":["cat","dog"]},"score":{"type":"number","minimum":0.5,"maximum":1}},"required":["label","score"],"additionalProperties":false}`

// post sends a raw chat-completion request, so these tests check the wire
// format itself rather than what one client library makes of it.
func post(t *testing.T, srv *llmtest.Server, key string, body any) (*http.Response, map[string]any) {
	t.Helper()
	return do(t, http.MethodPost, srv.BaseURL()+"/chat/completions", key, body)
}

func do(t *testing.T, method, url, key string, body any) (*http.Response, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			var err error
			b, err = json.Marshal(body)
			require.NoError(t, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	var out map[string]any
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &out)
	}
	if out == nil {
		out = map[string]any{"_raw": string(raw)}
	}
	return resp, out
}

func chatBody(extra map[string]any) map[string]any {
	b := map[string]any{
		"model":    "gpt-4o-mini",
		"messages": []any{map[string]any{"role": "user", "content": "Is this a cat or a dog?"}},
	}
	for k, v := range extra {
		b[k] = v
	}
	return b
}

func schemaFormat(s string, strict bool) map[string]any {
	return map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": "pet", "schema": json.RawMessage(s), "strict": strict}}
}

// requireAPIError checks OpenAI's error shape: exactly message, type,
// param and code, with param and code null or strings.
func requireAPIError(t *testing.T, body map[string]any, code any) map[string]any {
	t.Helper()
	e, ok := body["error"].(map[string]any)
	require.True(t, ok, "body %v", body)
	require.Len(t, e, 4, "error keys: %v", e)
	for _, k := range []string{"message", "type", "param", "code"} {
		require.Contains(t, e, k)
	}
	require.NotEmpty(t, e["message"])
	require.NotEmpty(t, e["type"])
	require.Equal(t, code, e["code"])
	return e
}

func TestAuth(t *testing.T) {
	srv := llmtest.New(t)
	resp, body := post(t, srv, "", chatBody(nil))
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	requireAPIError(t, body, nil)

	resp, body = post(t, srv, "sk-wrong-key-1234567890", chatBody(nil))
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	e := requireAPIError(t, body, "invalid_api_key")
	require.Contains(t, e["message"], "sk-*")
	require.NotContains(t, e["message"], "wrong-key", "OpenAI masks the key it quotes")

	resp, _ = post(t, srv, llmtest.DefaultAPIKey, chatBody(nil))
	require.Equal(t, http.StatusOK, resp.StatusCode)

	resp, _ = do(t, http.MethodGet, srv.BaseURL()+"/models", "nope", nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	st := srv.Stats()
	require.Equal(t, 3, st.Requests)
	require.Equal(t, 2, st.ByStatus[401])
	require.Len(t, srv.Requests(), 3, "rejected requests are recorded too")
}

func TestValidationLikeTheRealAPI(t *testing.T) {
	srv := llmtest.New(t, llmtest.WithModels("gpt-4o-mini"))
	key := srv.APIKey()
	tests := []struct {
		name   string
		body   any
		status int
		code   any
		param  any
	}{
		{"not JSON", []byte("{"), 400, nil, nil},
		{"no model", map[string]any{"messages": []any{map[string]any{"role": "user", "content": "x"}}}, 400, nil, nil},
		{"no messages", map[string]any{"model": "gpt-4o-mini"}, 400, "missing_required_parameter", "messages"},
		{"empty messages", chatBody(map[string]any{"messages": []any{}}), 400, "empty_array", "messages"},
		{"bad role", chatBody(map[string]any{"messages": []any{map[string]any{"role": "robot", "content": "x"}}}), 400, "invalid_value", "messages[0].role"},
		{"null user content", chatBody(map[string]any{"messages": []any{map[string]any{"role": "user"}}}), 400, nil, "messages[0].content"},
		{"unknown model", chatBody(map[string]any{"model": "gpt-9"}), 404, "model_not_found", nil},
		{"temperature", chatBody(map[string]any{"temperature": 2.5}), 400, "decimal_above_max_value", "temperature"},
		{"max tokens", chatBody(map[string]any{"max_tokens": 0}), 400, "integer_below_min_value", "max_tokens"},
		{"stream", chatBody(map[string]any{"stream": true}), 400, "unsupported_value", "stream"},
		{"bad format type", chatBody(map[string]any{"response_format": map[string]any{"type": "yaml"}}), 400, "invalid_value", "response_format.type"},
		{"json_object without the word", chatBody(map[string]any{
			"messages":        []any{map[string]any{"role": "user", "content": "hello"}},
			"response_format": map[string]any{"type": "json_object"},
		}), 400, nil, "messages"},
		{"schema name", chatBody(map[string]any{"response_format": map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": "a b", "schema": map[string]any{"type": "object"}}}}), 400, "invalid_value", "response_format.json_schema.name"},
		{"strict needs additionalProperties false", chatBody(map[string]any{"response_format": schemaFormat(`{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}`, true)}), 400, nil, "response_format"},
		{"strict needs every property required", chatBody(map[string]any{"response_format": schemaFormat(`{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}},"required":["a"],"additionalProperties":false}`, true)}), 400, nil, "response_format"},
		{"strict root must be an object", chatBody(map[string]any{"response_format": schemaFormat(`{"type":"array","items":{"type":"string"}}`, true)}), 400, nil, "response_format"},
		{"image in a data URL that is not base64", chatBody(map[string]any{"messages": []any{map[string]any{"role": "user", "content": []any{
			map[string]any{"type": "image_url", "image_url": map[string]any{"url": "data:image/png;base64,!!!"}},
		}}}}), 400, "invalid_image", "messages[0].content[0].image_url.url"},
		{"image of an unsupported type", chatBody(map[string]any{"messages": []any{map[string]any{"role": "user", "content": []any{
			map[string]any{"type": "image_url", "image_url": map[string]any{"url": "data:image/tiff;base64,AAAA"}},
		}}}}), 400, "invalid_image_format", "messages[0].content[0].image_url.url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := post(t, srv, key, tt.body)
			require.Equal(t, tt.status, resp.StatusCode, "body %v", body)
			e := requireAPIError(t, body, tt.code)
			require.Equal(t, tt.param, e["param"])
		})
	}
	require.Zero(t, srv.Stats().Succeeded)
}

func TestLenientSchemas(t *testing.T) {
	srv := llmtest.New(t, llmtest.WithLenientSchemas())
	loose := `{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}},"required":["a"]}`
	resp, body := post(t, srv, srv.APIKey(), chatBody(map[string]any{"response_format": schemaFormat(loose, true)}))
	require.Equal(t, http.StatusOK, resp.StatusCode, "body %v", body)
	content := body["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)["content"].(string)
	require.NoError(t, llm.ValidateOutput(json.RawMessage(loose), content))
}

func TestReplyShape(t *testing.T) {
	srv := llmtest.New(t, llmtest.WithRPM(50), llmtest.WithTPM(10000))
	resp, body := post(t, srv, srv.APIKey(), chatBody(map[string]any{"response_format": schemaFormat(schema, true), "max_tokens": 100}))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))

	require.Regexp(t, `^chatcmpl-`, body["id"])
	require.Equal(t, "chat.completion", body["object"])
	require.Positive(t, body["created"])
	require.Equal(t, "gpt-4o-mini", body["model"])
	choice := body["choices"].([]any)[0].(map[string]any)
	require.Equal(t, "stop", choice["finish_reason"])
	msg := choice["message"].(map[string]any)
	require.Equal(t, "assistant", msg["role"])
	require.Contains(t, msg, "refusal")
	require.Nil(t, msg["refusal"])
	content := msg["content"].(string)
	require.JSONEq(t, `{"label":"cat","score":0.5}`, content, "enum's first value, the minimum")

	u := body["usage"].(map[string]any)
	prompt := len("Is this a cat or a dog?")
	require.EqualValues(t, (prompt+3)/4, u["prompt_tokens"])
	require.EqualValues(t, (len(content)+3)/4, u["completion_tokens"])
	require.EqualValues(t, u["prompt_tokens"].(float64)+u["completion_tokens"].(float64), u["total_tokens"])

	require.Equal(t, "50", resp.Header.Get("x-ratelimit-limit-requests"))
	require.Equal(t, "49", resp.Header.Get("x-ratelimit-remaining-requests"))
	require.Equal(t, "10000", resp.Header.Get("x-ratelimit-limit-tokens"))
	require.Equal(t, "9894", resp.Header.Get("x-ratelimit-remaining-tokens"), "prompt estimate plus max_tokens")
	reset, err := time.ParseDuration(resp.Header.Get("x-ratelimit-reset-requests"))
	require.NoError(t, err)
	require.InDelta(t, time.Minute.Seconds(), reset.Seconds(), 1)
	require.NotEmpty(t, resp.Header.Get("x-ratelimit-reset-tokens"))
	require.NotEmpty(t, resp.Header.Get("x-request-id"))
}

func TestPlainReplyAndMaxTokens(t *testing.T) {
	srv := llmtest.New(t, llmtest.WithReply(func(llmtest.RecordedRequest) string { return strings.Repeat("word ", 40) }))
	_, body := post(t, srv, srv.APIKey(), chatBody(nil))
	choice := body["choices"].([]any)[0].(map[string]any)
	require.Equal(t, strings.Repeat("word ", 40), choice["message"].(map[string]any)["content"])

	_, body = post(t, srv, srv.APIKey(), chatBody(map[string]any{"max_tokens": 5}))
	choice = body["choices"].([]any)[0].(map[string]any)
	require.Equal(t, "length", choice["finish_reason"], "a reply over max_tokens is cut like the real API cuts it")
	require.Equal(t, "word word word word ", choice["message"].(map[string]any)["content"])
	require.EqualValues(t, 5, body["usage"].(map[string]any)["completion_tokens"])
}

func TestContextWindow(t *testing.T) {
	srv := llmtest.New(t, llmtest.WithContextWindow(10))
	resp, body := post(t, srv, srv.APIKey(), chatBody(map[string]any{"max_tokens": 5}))
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	e := requireAPIError(t, body, "context_length_exceeded")
	require.Contains(t, e["message"], "maximum context length is 10 tokens")
}

func TestFaults(t *testing.T) {
	srv := llmtest.New(t)
	key := srv.APIKey()
	srv.Next(
		llmtest.Fault{Status: 429, RetryAfter: 1500 * time.Millisecond},
		llmtest.Fault{Status: 500},
		llmtest.Fault{Malformed: true},
		llmtest.Fault{Refusal: true},
		llmtest.Fault{ContentFilter: true},
		llmtest.Fault{SchemaViolation: true},
		llmtest.Fault{Status: 400, Code: "context_length_exceeded"},
		llmtest.Fault{Status: 401, EchoAuth: true},
		llmtest.Fault{Delay: 150 * time.Millisecond},
	)
	require.Equal(t, 9, srv.PendingFaults())
	withSchema := chatBody(map[string]any{"response_format": schemaFormat(schema, true)})

	resp, body := post(t, srv, key, withSchema)
	require.Equal(t, 429, resp.StatusCode)
	require.Equal(t, "2", resp.Header.Get("Retry-After"), "whole seconds, rounded up")
	require.Empty(t, resp.Header.Get("x-ratelimit-limit-requests"), "a fault carries only the headers it names")
	requireAPIError(t, body, "rate_limit_exceeded")

	resp, body = post(t, srv, key, withSchema)
	require.Equal(t, 500, resp.StatusCode)
	require.Equal(t, "server_error", requireAPIError(t, body, nil)["type"])

	resp, body = post(t, srv, key, withSchema)
	require.Equal(t, 200, resp.StatusCode)
	require.False(t, json.Valid([]byte(body["_raw"].(string))), "malformed means truncated JSON")
	require.True(t, strings.HasPrefix(body["_raw"].(string), `{"id":"chatcmpl-`))

	_, body = post(t, srv, key, withSchema)
	msg := body["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)
	require.Nil(t, msg["content"])
	require.NotEmpty(t, msg["refusal"])

	_, body = post(t, srv, key, withSchema)
	require.Equal(t, "content_filter", body["choices"].([]any)[0].(map[string]any)["finish_reason"])

	_, body = post(t, srv, key, withSchema)
	content := body["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)["content"].(string)
	require.True(t, json.Valid([]byte(content)))
	require.ErrorContains(t, llm.ValidateOutput(json.RawMessage(schema), content), "/label: required property is missing")

	resp, body = post(t, srv, key, withSchema)
	require.Equal(t, 400, resp.StatusCode)
	require.Equal(t, "messages", requireAPIError(t, body, "context_length_exceeded")["param"])

	resp, body = post(t, srv, key, withSchema)
	require.Equal(t, 401, resp.StatusCode)
	require.Contains(t, requireAPIError(t, body, "invalid_api_key")["message"], key, "EchoAuth leaks the key on purpose")

	start := time.Now()
	resp, _ = post(t, srv, key, withSchema)
	require.Equal(t, 200, resp.StatusCode)
	require.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond)

	require.Zero(t, srv.PendingFaults())
	st := srv.Stats()
	require.Equal(t, 9, st.FaultsApplied)
	require.Zero(t, st.RateLimited, "scripted 429s are not the server's own")
	reqs := srv.Requests()
	require.Len(t, reqs, 9)
	require.Equal(t, 429, reqs[0].Status)
	require.NotNil(t, reqs[0].Fault)
	require.Equal(t, 429, reqs[0].Fault.Status)
	for i, r := range reqs {
		require.Equal(t, i+1, r.Seq)
		require.Empty(t, r.Header.Get("Authorization"))
		require.True(t, r.Strict())
		require.JSONEq(t, schema, string(r.Schema()))
	}
}

func TestLatencyAndCloseWakesSleepers(t *testing.T) {
	srv := llmtest.New(t, llmtest.WithLatency(50*time.Millisecond))
	start := time.Now()
	resp, _ := post(t, srv, srv.APIKey(), chatBody(nil))
	require.Equal(t, 200, resp.StatusCode)
	require.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)

	// A request stuck in a long scripted delay must not hold up Close.
	srv.Next(llmtest.Fault{Delay: time.Hour})
	done := make(chan int)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, srv.BaseURL()+"/chat/completions", strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"x"}]}`))
		req.Header.Set("Authorization", "Bearer "+srv.APIKey())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- -1
			return
		}
		_ = resp.Body.Close() // only the status is wanted
		done <- resp.StatusCode
	}()
	require.Eventually(t, func() bool { return srv.PendingFaults() == 0 }, 2*time.Second, 5*time.Millisecond)
	closed := time.Now()
	require.NoError(t, srv.Close())
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Close did not wake the sleeping request")
	}
	require.Less(t, time.Since(closed), 3*time.Second)
}

func TestRPMLimitSlidingWindow(t *testing.T) {
	srv := llmtest.New(t, llmtest.WithRPM(3), llmtest.WithWindow(300*time.Millisecond))
	key := srv.APIKey()
	statuses := []int{}
	var lastLimited *http.Response
	var lastBody map[string]any
	for range 5 {
		resp, body := post(t, srv, key, chatBody(nil))
		statuses = append(statuses, resp.StatusCode)
		if resp.StatusCode == 429 {
			lastLimited, lastBody = resp, body
		}
	}
	require.Equal(t, []int{200, 200, 200, 429, 429}, statuses)
	require.Equal(t, "1", lastLimited.Header.Get("Retry-After"), "at least a second, rounded up")
	require.Equal(t, "0", lastLimited.Header.Get("x-ratelimit-remaining-requests"))
	e := requireAPIError(t, lastBody, "rate_limit_exceeded")
	require.Equal(t, "requests", e["type"])
	require.Contains(t, e["message"], "Limit 3, Used 3")

	st := srv.Stats()
	require.Equal(t, 2, st.RateLimited)
	require.Equal(t, 3, st.MaxRequestsPerWindow)
	require.Equal(t, 5, st.MaxArrivalsPerWindow)

	// The window slides: once the first requests are older than it, there
	// is room again.
	time.Sleep(350 * time.Millisecond)
	resp, _ := post(t, srv, key, chatBody(nil))
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, 2, srv.Stats().RateLimited)
}

func TestTPMLimit(t *testing.T) {
	srv := llmtest.New(t, llmtest.WithTPM(250))
	key := srv.APIKey()
	body := chatBody(map[string]any{"max_tokens": 100}) // ≈106 tokens requested
	r1, _ := post(t, srv, key, body)
	r2, _ := post(t, srv, key, body)
	r3, b3 := post(t, srv, key, body)
	require.Equal(t, []int{200, 200, 429}, []int{r1.StatusCode, r2.StatusCode, r3.StatusCode})
	require.Equal(t, "tokens", requireAPIError(t, b3, "rate_limit_exceeded")["type"])
	require.NotEmpty(t, r3.Header.Get("Retry-After"))

	big, bb := post(t, srv, key, chatBody(map[string]any{"max_tokens": 1000}))
	require.Equal(t, 429, big.StatusCode)
	require.Contains(t, requireAPIError(t, bb, "rate_limit_exceeded")["message"], "Request too large")
	st := srv.Stats()
	require.Equal(t, 2, st.RateLimited)
	require.Equal(t, 212, st.MaxTokensPerWindow)
}

func TestMaxConcurrency(t *testing.T) {
	srv := llmtest.New(t, llmtest.WithMaxConcurrency(2), llmtest.WithLatency(400*time.Millisecond))
	key := srv.APIKey()
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	start := make(chan struct{})
	for range 5 {
		wg.Go(func() {
			<-start
			resp, _ := post(t, srv, key, chatBody(nil))
			mu.Lock()
			codes[resp.StatusCode]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	require.Equal(t, map[int]int{200: 2, 429: 3}, codes)
	st := srv.Stats()
	require.Equal(t, 3, st.RateLimited)
	require.GreaterOrEqual(t, st.MaxConcurrency, 3)
	require.LessOrEqual(t, st.MaxConcurrency, 5)
}

func TestRoutes(t *testing.T) {
	srv := llmtest.New(t, llmtest.WithModels("gpt-4o-mini", "llama3.1:8b"))
	resp, body := do(t, http.MethodGet, srv.BaseURL()+"/models", srv.APIKey(), nil)
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "list", body["object"])
	require.Len(t, body["data"], 2)
	require.Equal(t, "llama3.1:8b", body["data"].([]any)[1].(map[string]any)["id"])

	resp, _ = do(t, http.MethodPost, srv.URL()+"/chat/completions", srv.APIKey(), chatBody(nil))
	require.Equal(t, 200, resp.StatusCode, "the unversioned path works too")

	resp, body = do(t, http.MethodPost, srv.BaseURL()+"/embeddings", srv.APIKey(), chatBody(nil))
	require.Equal(t, 404, resp.StatusCode)
	require.Contains(t, requireAPIError(t, body, nil)["message"], "Invalid URL (POST /v1/embeddings)")

	resp, _ = do(t, http.MethodGet, srv.BaseURL()+"/chat/completions", srv.APIKey(), nil)
	require.Equal(t, 404, resp.StatusCode)

	resp, _ = do(t, http.MethodPost, srv.URL()+"/openai/deployments/gpt-4o-mini/chat/completions", srv.APIKey(), chatBody(nil))
	require.Equal(t, 404, resp.StatusCode, "Azure needs an api-version")
	resp, body = do(t, http.MethodPost, srv.URL()+"/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21", srv.APIKey(), chatBody(nil))
	require.Equal(t, 200, resp.StatusCode, "body %v", body)
}

func TestStartAsProcessLevelServer(t *testing.T) {
	srv := llmtest.NewServer(llmtest.Config{APIKey: "sk-bench", RPM: 1000})
	require.NoError(t, srv.Start("127.0.0.1:0"))
	t.Cleanup(func() { require.NoError(t, srv.Close()) })
	require.True(t, strings.HasPrefix(srv.BaseURL(), "http://127.0.0.1:"))

	c, err := llm.NewClient(llm.Config{BaseURL: srv.BaseURL(), APIKey: "sk-bench"})
	require.NoError(t, err)
	_ = c
	resp, body := post(t, srv, "sk-bench", chatBody(nil))
	require.Equal(t, 200, resp.StatusCode, "body %v", body)
	srv.Reset()
	require.Zero(t, srv.Stats().Requests)
	require.Empty(t, srv.Requests())
}

func TestRecordLimit(t *testing.T) {
	srv := llmtest.NewServer(llmtest.Config{RecordLimit: 2})
	require.NoError(t, srv.Start("127.0.0.1:0"))
	t.Cleanup(func() { _ = srv.Close() })
	for range 3 {
		resp, _ := post(t, srv, "", chatBody(nil))
		require.Equal(t, 200, resp.StatusCode)
	}
	reqs := srv.Requests()
	require.Len(t, reqs, 2)
	require.Equal(t, []int{2, 3}, []int{reqs[0].Seq, reqs[1].Seq})
	require.Equal(t, []int{200, 200}, []int{reqs[0].Status, reqs[1].Status})
}

func TestReasoningModelsRefuseMaxTokensAndTemperature(t *testing.T) {
	srv := llmtest.New(t)
	key := srv.APIKey()
	for _, model := range []string{"o1", "o3-mini", "o4-mini", "gpt-5"} {
		resp, body := post(t, srv, key, chatBody(map[string]any{"model": model, "max_tokens": 100}))
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, model)
		e := requireAPIError(t, body, "unsupported_parameter")
		require.Equal(t, "max_tokens", e["param"])
		require.Equal(t, "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.", e["message"])

		resp, body = post(t, srv, key, chatBody(map[string]any{"model": model, "max_completion_tokens": 100, "temperature": 0}))
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, model)
		e = requireAPIError(t, body, "unsupported_value")
		require.Equal(t, "temperature", e["param"])

		resp, _ = post(t, srv, key, chatBody(map[string]any{"model": model, "max_completion_tokens": 100, "temperature": 1}))
		require.Equal(t, http.StatusOK, resp.StatusCode, model)
	}
	resp, _ := post(t, srv, key, chatBody(map[string]any{"model": "gpt-4o-mini", "max_tokens": 100, "temperature": 0}))
	require.Equal(t, http.StatusOK, resp.StatusCode, "other models take both")

	none := llmtest.New(t, llmtest.WithReasoningModels())
	resp, _ = post(t, none, none.APIKey(), chatBody(map[string]any{"model": "o1", "max_tokens": 100}))
	require.Equal(t, http.StatusOK, resp.StatusCode, "an OpenAI-compatible server that has no such rule")
}

func TestWrappedJSONReplies(t *testing.T) {
	want, err := llmtest.MinimalInstance(json.RawMessage(schema))
	require.NoError(t, err)
	wantJSON, err := json.Marshal(want)
	require.NoError(t, err)
	for _, tc := range []struct {
		wrap llmtest.Wrap
		how  llm.Unwrapping
	}{
		{llmtest.WrapFence, llm.UnwrappedFence},
		{llmtest.WrapBareFence, llm.UnwrappedFence},
		{llmtest.WrapChattyFence, llm.UnwrappedFence},
		{llmtest.WrapProse, llm.UnwrappedProse},
	} {
		t.Run(string(tc.wrap), func(t *testing.T) {
			srv := llmtest.New(t, llmtest.WithWrap(tc.wrap))
			_, body := post(t, srv, srv.APIKey(), chatBody(map[string]any{"response_format": schemaFormat(schema, true)}))
			content := body["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)["content"].(string)
			require.False(t, json.Valid([]byte(content)), "the reply is wrapped: %q", content)
			got, how, ok := llm.UnwrapJSON(content)
			require.True(t, ok, content)
			require.Equal(t, tc.how, how)
			require.JSONEq(t, string(wantJSON), got)
			usage := body["usage"].(map[string]any)
			require.EqualValues(t, (len(content)+3)/4, usage["completion_tokens"], "the wrapping is paid for")
		})
	}

	// A fault wraps one reply, on top of a bare server; a violation stays one.
	srv := llmtest.New(t)
	srv.Next(llmtest.Fault{Wrap: llmtest.WrapProse, SchemaViolation: true})
	_, body := post(t, srv, srv.APIKey(), chatBody(map[string]any{"response_format": schemaFormat(schema, true)}))
	content := body["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)["content"].(string)
	require.True(t, strings.HasPrefix(content, "Here is the result: "), content)
	got, _, ok := llm.UnwrapJSON(content)
	require.True(t, ok)
	require.Error(t, llm.ValidateOutput(json.RawMessage(schema), got))
	_, body = post(t, srv, srv.APIKey(), chatBody(map[string]any{"response_format": schemaFormat(schema, true)}))
	content = body["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)["content"].(string)
	require.JSONEq(t, string(wantJSON), content, "the next reply is bare again")
}

func TestTPMCountsUsage(t *testing.T) {
	srv := llmtest.New(t, llmtest.WithTPM(300), llmtest.WithTPMCountsUsage())
	key := srv.APIKey()
	// 1,000 max tokens would be "Request too large" for a limit of 300 counted
	// OpenAI's way; counted by usage only what replies use matters.
	body := chatBody(map[string]any{"max_tokens": 1000})
	used, codes := 0, []int{}
	for range 30 {
		resp, b := post(t, srv, key, body)
		codes = append(codes, resp.StatusCode)
		if resp.StatusCode == http.StatusTooManyRequests {
			require.Equal(t, "tokens", requireAPIError(t, b, "rate_limit_exceeded")["type"])
			break
		}
		require.Equal(t, http.StatusOK, resp.StatusCode)
		u := b["usage"].(map[string]any)
		used += int(u["total_tokens"].(float64))
	}
	require.Equal(t, http.StatusTooManyRequests, codes[len(codes)-1], "the limit bites: %v", codes)
	require.Greater(t, len(codes), 5, "many replies fit: %v", codes)
	st := srv.Stats()
	require.Equal(t, used, st.MaxTokensPerWindow, "the window holds what the replies used")
	reqs := srv.Requests()
	require.Greater(t, used+reqs[len(reqs)-1].PromptTokens, 300, "refused only when usage plus the prompt is over")
	last := reqs[len(reqs)-2] // the last one admitted
	require.LessOrEqual(t, used-last.CompletionTokens, 300, "it came in when the usage before it plus its prompt fitted")
	require.Positive(t, reqs[0].CompletionTokens, "the reply's usage is recorded")
	require.Zero(t, reqs[len(reqs)-1].CompletionTokens, "a refused request used nothing")
}
