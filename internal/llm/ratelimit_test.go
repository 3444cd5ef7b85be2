package llm

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		header      map[string]string
		rateLimited bool
		want        time.Duration
	}{
		{"nothing", nil, true, 0},
		{"seconds", map[string]string{"Retry-After": "2"}, true, 2 * time.Second},
		{"fractional seconds", map[string]string{"Retry-After": "0.5"}, true, 500 * time.Millisecond},
		{"HTTP date", map[string]string{"Retry-After": now.Add(90 * time.Second).Format(http.TimeFormat)}, true, 90 * time.Second},
		{"HTTP date in the past", map[string]string{"Retry-After": now.Add(-time.Minute).Format(http.TimeFormat)}, true, 0},
		{"garbage", map[string]string{"Retry-After": "soon"}, true, 0},
		{"retry-after-ms wins", map[string]string{"retry-after-ms": "250", "Retry-After": "1"}, true, 250 * time.Millisecond},
		{"capped", map[string]string{"Retry-After": "999999999"}, true, maxRetryAfter},
		{"reset requests", map[string]string{"x-ratelimit-reset-requests": "1.5s"}, true, 1500 * time.Millisecond},
		{"reset minutes", map[string]string{"x-ratelimit-reset-tokens": "6m0s"}, true, 6 * time.Minute},
		{"reset bare seconds", map[string]string{"x-ratelimit-reset-requests": "7"}, true, 7 * time.Second},
		{"longer of both when unclear", map[string]string{"x-ratelimit-reset-requests": "20ms", "x-ratelimit-reset-tokens": "3s"}, true, 3 * time.Second},
		{"exhausted requests decide", map[string]string{
			"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "20ms",
			"x-ratelimit-remaining-tokens": "5000", "x-ratelimit-reset-tokens": "3s",
		}, true, 20 * time.Millisecond},
		{"reset headers ignored unless rate limited", map[string]string{"x-ratelimit-reset-requests": "1s"}, false, 0},
		{"Retry-After honoured on a 503", map[string]string{"Retry-After": "4"}, false, 4 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.header {
				h.Set(k, v)
			}
			require.Equal(t, tt.want, retryAfter(h, tt.rateLimited, now))
		})
	}
}

func TestParseRateLimit(t *testing.T) {
	h := http.Header{}
	h.Set("x-ratelimit-limit-requests", "500")
	h.Set("x-ratelimit-remaining-requests", "0")
	h.Set("x-ratelimit-reset-requests", "120ms")
	h.Set("x-ratelimit-limit-tokens", "not a number")
	rl := ParseRateLimit(h)
	require.Equal(t, RateLimit{
		LimitRequests: 500, RemainingRequests: 0, ResetRequests: 120 * time.Millisecond,
		LimitTokens: -1, RemainingTokens: -1,
	}, rl)
	require.True(t, rl.Known())
	require.False(t, ParseRateLimit(http.Header{}).Known())
}

func TestRedactor(t *testing.T) {
	const key = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"
	r := redactor{key: key}
	for _, in := range []string{
		"bad key " + key,
		"Authorization: Bearer " + key,
		"authorization: bearer some-other-token-value",
		`{"api_key": "` + key + `"}`,
		"api-key=zzzz-secret-zzzz",
		"Incorrect API key provided: sk-proj-********************6789.",
	} {
		out := r.clean(in)
		require.NotContains(t, out, key)
		require.NotContains(t, out, "6789")
		require.NotContains(t, out, "some-other-token-value")
		require.NotContains(t, out, "zzzz-secret-zzzz")
		require.Contains(t, out, redacted)
	}
	long := r.clean("é" + stringOf('x', 1000))
	require.LessOrEqual(t, len(long), maxReasonText+len("…"))
}

func stringOf(c byte, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return string(b)
}

func TestPricesLookup(t *testing.T) {
	p := Prices{
		"gpt-4o":      {InputPerMTok: 2.5, OutputPerMTok: 10},
		"gpt-4o-mini": {InputPerMTok: 0.15, OutputPerMTok: 0.6},
	}
	require.InDelta(t, 0.15+0.6, p.Cost("gpt-4o-mini", 1_000_000, 1_000_000), 1e-9)
	require.InDelta(t, 0.15, p.Cost("gpt-4o-mini-2024-07-18", 1_000_000, 0), 1e-9, "longest prefix wins")
	require.InDelta(t, 10, p.Cost("gpt-4o-2024-08-06", 0, 1_000_000), 1e-9)
	require.Zero(t, p.Cost("llama3.1:8b", 1000, 1000))
	require.Zero(t, Prices(nil).Cost("gpt-4o", 1000, 1000))
}

func TestParsePrices(t *testing.T) {
	p, err := ParsePrices(" gpt-4o-mini = 0.15/0.60 , gpt-4o=2.50/10,llama3.1:8b=0/0,")
	require.NoError(t, err)
	require.Equal(t, Prices{
		"gpt-4o-mini": {InputPerMTok: 0.15, OutputPerMTok: 0.60},
		"gpt-4o":      {InputPerMTok: 2.50, OutputPerMTok: 10},
		"llama3.1:8b": {},
	}, p)
	require.InDelta(t, 0.15, p.Cost("gpt-4o-mini-2024-07-18", 1_000_000, 0), 1e-9)

	empty, err := ParsePrices("")
	require.NoError(t, err)
	require.Empty(t, empty)

	for _, bad := range []string{"gpt-4o", "gpt-4o=1", "=1/2", "gpt-4o=a/2", "gpt-4o=1/-2", "gpt-4o=1/NaN", "gpt-4o=1/2,gpt-4o=3/4"} {
		_, err := ParsePrices(bad)
		require.Error(t, err, bad)
	}
}

func TestPricesAllowOnlyListedModels(t *testing.T) {
	p, err := ParsePrices("gpt-4o=2.50/10,gpt-4o-mini=0.15/0.60")
	require.NoError(t, err)
	require.True(t, p.Allows("gpt-4o"))
	require.True(t, p.Allows("gpt-4o-mini"))
	require.False(t, p.Allows("gpt-4o-realtime-preview"), "a prefix prices echoed snapshots, it does not allow models")
	require.False(t, p.Allows("llama3.1:8b"))
	require.False(t, p.Allows(""))
	require.Equal(t, []string{"gpt-4o", "gpt-4o-mini"}, p.Models())

	local, err := ParsePrices("*=0/0")
	require.NoError(t, err)
	require.True(t, local.Allows("llama3.1:8b"), "* allows every model")
	pr, ok := local.Lookup("llama3.1:8b")
	require.True(t, ok)
	require.Zero(t, pr)
}
