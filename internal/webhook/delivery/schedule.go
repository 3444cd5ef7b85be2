package delivery

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Schedule is when a delivery's attempts are made: Schedule[i] is the delay before
// attempt i+1 after attempt i failed (Schedule[0], normally 0, is the first
// attempt's). After len(Schedule) attempts the delivery has failed.
type Schedule []time.Duration

// ParseSchedule reads LABELQ_WEBHOOK_RETRY_SCHEDULE ("0s,5s,5m,30m,2h,5h,10h,10h").
func ParseSchedule(s string) (Schedule, error) {
	var out Schedule
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		d, err := time.ParseDuration(part)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("%q is not a duration such as 5s or 2h", part)
		}
		out = append(out, d)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("needs at least one attempt")
	}
	if len(out) > 50 {
		return nil, fmt.Errorf("at most 50 attempts")
	}
	return out, nil
}

// Attempts is how many attempts one round makes.
func (s Schedule) Attempts() int { return len(s) }

// Next is the delay before the next attempt after the step-th attempt of a round
// failed (step counts from 1), and false when that was the last.
func (s Schedule) Next(step int) (time.Duration, bool) {
	if step < 1 || step >= len(s) {
		return 0, false
	}
	return s[step], true
}

// Outcome is what an attempt's answer means for the delivery.
type Outcome int

const (
	// Succeeded: a 2xx.
	Succeeded Outcome = iota
	// Retry: 5xx, 408, 429, a timeout or a connection error: try again on the schedule.
	Retry
	// Refused: any other answer (4xx, 3xx, 1xx): the receiver refused it for good.
	Refused
	// Gone: 410: the receiver asks never to be called again; the endpoint is disabled.
	Gone
)

func (o Outcome) String() string {
	return [...]string{"succeeded", "retry", "failed", "gone"}[o]
}

// Classify reads an attempt's status code (0 when no answer came).
func Classify(status int) Outcome {
	switch {
	case status == 0:
		return Retry
	case status >= 200 && status < 300:
		return Succeeded
	case status == http.StatusGone:
		return Gone
	case status >= 500, status == http.StatusRequestTimeout, status == http.StatusTooManyRequests:
		return Retry
	default:
		return Refused
	}
}

// RetryAfter reads a Retry-After header (seconds, or an HTTP date) relative to now;
// false when absent or unreadable. The delay is capped at a day.
func RetryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		d = time.Duration(min(n, 86400)) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = max(t.Sub(now), 0)
	} else {
		return 0, false
	}
	return min(d, 24*time.Hour), true
}
