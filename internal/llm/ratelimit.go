package llm

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxRetryAfter caps what a provider can ask us to wait. A bogus header
// ("Retry-After: 999999999") must not park a task for years; the
// reconciler and asynq's own backoff cover anything longer.
const maxRetryAfter = time.Hour

// RateLimit is the provider's view of our quota, from the x-ratelimit-*
// response headers. Counts are -1 and durations 0 when the provider did not
// send the header (vLLM and Ollama send none).
type RateLimit struct {
	LimitRequests     int64
	RemainingRequests int64
	// ResetRequests is how long until the request quota is full again.
	ResetRequests   time.Duration
	LimitTokens     int64
	RemainingTokens int64
	ResetTokens     time.Duration
}

// ParseRateLimit reads the x-ratelimit-* headers.
func ParseRateLimit(h http.Header) RateLimit {
	return RateLimit{
		LimitRequests:     headerInt(h, "x-ratelimit-limit-requests"),
		RemainingRequests: headerInt(h, "x-ratelimit-remaining-requests"),
		ResetRequests:     parseResetDuration(h.Get("x-ratelimit-reset-requests")),
		LimitTokens:       headerInt(h, "x-ratelimit-limit-tokens"),
		RemainingTokens:   headerInt(h, "x-ratelimit-remaining-tokens"),
		ResetTokens:       parseResetDuration(h.Get("x-ratelimit-reset-tokens")),
	}
}

// Known reports whether the provider sent any rate-limit header.
func (r RateLimit) Known() bool {
	return r.LimitRequests >= 0 || r.RemainingRequests >= 0 || r.LimitTokens >= 0 ||
		r.RemainingTokens >= 0 || r.ResetRequests > 0 || r.ResetTokens > 0
}

func headerInt(h http.Header, name string) int64 {
	v := strings.TrimSpace(h.Get(name))
	if v == "" {
		return -1
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// parseResetDuration reads OpenAI's reset headers, which are Go-style
// durations ("1s", "6m0s", "20ms", "1.5s"). Some proxies send bare
// seconds ("30"), accepted too. Unparseable values count as absent.
func parseResetDuration(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if d, err := time.ParseDuration(v); err == nil {
		return clampDelay(d)
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
		return clampDelay(time.Duration(f * float64(time.Second)))
	}
	return 0
}

// retryAfter works out how long to wait before the next call, from, in
// order of precision: retry-after-ms (Azure, OpenAI), Retry-After (seconds
// or HTTP date, RFC 9110), and, for a 429 only, the x-ratelimit-reset-*
// durations (every OpenAI reply carries those; they are a wait hint only
// when the quota is what failed). For the reset headers the quota that is
// exhausted decides; when that is unclear the longer of the two is the safe
// choice.
func retryAfter(h http.Header, rateLimited bool, now time.Time) time.Duration {
	if h == nil {
		return 0
	}
	if v := strings.TrimSpace(h.Get("retry-after-ms")); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 && !math.IsInf(ms, 0) {
			return clampDelay(time.Duration(ms * float64(time.Millisecond)))
		}
	}
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.ParseFloat(v, 64); err == nil && !math.IsNaN(secs) && !math.IsInf(secs, 0) {
			return clampDelay(time.Duration(secs * float64(time.Second)))
		}
		if t, err := http.ParseTime(v); err == nil {
			return clampDelay(t.Sub(now))
		}
	}
	if !rateLimited {
		return 0
	}
	rl := ParseRateLimit(h)
	var exhausted time.Duration
	if rl.RemainingRequests == 0 {
		exhausted = max(exhausted, rl.ResetRequests)
	}
	if rl.RemainingTokens == 0 {
		exhausted = max(exhausted, rl.ResetTokens)
	}
	if exhausted > 0 {
		return exhausted
	}
	return max(rl.ResetRequests, rl.ResetTokens)
}

func clampDelay(d time.Duration) time.Duration {
	if d < 0 {
		return 0
	}
	return min(d, maxRetryAfter)
}
