package llm

import (
	"context"
	"net/http"
	"sync"
)

// go-openai drops the response headers of a failed call (its APIError has
// only the status), yet Retry-After and x-ratelimit-reset-* are exactly what
// a 429 is about. captureTransport records the status and headers of the
// last response of each call into a slot the call put in its own request
// context, so concurrent calls on one Client never see each other's
// headers and nothing is shared between Clients.

type captureKey struct{}

type capture struct {
	mu     sync.Mutex
	status int
	header http.Header
}

func (c *capture) set(status int, h http.Header) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.status, c.header = status, h
}

func (c *capture) get() (int, http.Header) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status, c.header
}

func withCapture(ctx context.Context) (context.Context, *capture) {
	c := &capture{}
	return context.WithValue(ctx, captureKey{}, c), c
}

type captureTransport struct {
	base http.RoundTripper
}

func (t *captureTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if c, ok := req.Context().Value(captureKey{}).(*capture); ok && resp != nil {
		// Redirects run RoundTrip again; the last response is the one
		// go-openai sees.
		c.set(resp.StatusCode, resp.Header.Clone())
	}
	return resp, err
}

// newHTTPClient copies base (so the caller's client is never modified) and
// wraps its transport.
func newHTTPClient(base *http.Client) *http.Client {
	var hc http.Client
	if base != nil {
		hc = *base
	}
	rt := hc.Transport
	if rt == nil {
		if dt, ok := http.DefaultTransport.(*http.Transport); ok {
			// A private clone: idle connections and settings are not
			// shared with the rest of the process.
			rt = dt.Clone()
		} else {
			rt = http.DefaultTransport
		}
	}
	hc.Transport = &captureTransport{base: rt}
	return &hc
}
