package llmtest

import "time"

// window is a sliding-window counter of requests and tokens. It is not
// safe for concurrent use; the Server's mutex guards it.
type window struct {
	length time.Duration
	events []windowEvent
	tokens int
}

type windowEvent struct {
	at     time.Time
	tokens int
}

// prune drops events that left the window.
func (w *window) prune(now time.Time) {
	cut := 0
	for cut < len(w.events) && !w.events[cut].at.After(now.Add(-w.length)) {
		w.tokens -= w.events[cut].tokens
		cut++
	}
	if cut > 0 {
		w.events = append(w.events[:0], w.events[cut:]...)
	}
}

func (w *window) add(now time.Time, tokens int) {
	w.events = append(w.events, windowEvent{at: now, tokens: tokens})
	w.tokens += tokens
}

func (w *window) count() int { return len(w.events) }

// untilSlot is how long until one more request fits under limit.
func (w *window) untilSlot(now time.Time, limit int) time.Duration {
	if len(w.events) < limit || len(w.events) == 0 {
		return 0
	}
	// The (len-limit)th oldest event must leave first.
	return w.events[len(w.events)-limit].at.Add(w.length).Sub(now)
}

// untilTokens is how long until want more tokens fit under limit.
func (w *window) untilTokens(now time.Time, limit, want int) time.Duration {
	if want > limit {
		return w.length // never fits; the caller says so
	}
	excess := w.tokens + want - limit
	if excess <= 0 {
		return 0
	}
	freed := 0
	for _, e := range w.events {
		freed += e.tokens
		if freed >= excess {
			return e.at.Add(w.length).Sub(now)
		}
	}
	return w.length
}

// resetIn is how long until the oldest counted event leaves the window,
// which is what the x-ratelimit-reset-* headers report.
func (w *window) resetIn(now time.Time) time.Duration {
	if len(w.events) == 0 {
		return 0
	}
	return w.events[0].at.Add(w.length).Sub(now)
}
