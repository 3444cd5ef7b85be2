package delivery_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/internal/webhook/delivery"
)

func TestCheckURL(t *testing.T) {
	strict, err := delivery.ParsePolicy("", "")
	require.NoError(t, err)
	dev, err := delivery.ParsePolicy("127.0.0.1,localhost", "127.0.0.0/8")
	require.NoError(t, err)
	ctx := context.Background()
	for raw, want := range map[string]string{
		"https://203.0.113.10/hook":               "",
		"https://[2001:db8::1]/hook":              "",
		"http://203.0.113.10/hook":                "must be https",
		"ftp://203.0.113.10/hook":                 "must be an https",
		"/relative":                               "absolute",
		"https://user:pw@203.0.113.10/hook":       "user name or password",
		"https://203.0.113.10/hook#frag":          "fragment",
		"https://127.0.0.1/hook":                  "loopback",
		"https://169.254.169.254/latest/metadata": "link-local",
		"https://10.1.2.3/hook":                   "private",
		"https://192.168.0.1/hook":                "private",
		"https://100.64.0.1/hook":                 "private",
		"https://[::1]/hook":                      "loopback",
		"https://[fe80::1]/hook":                  "link-local",
		"https://[::ffff:127.0.0.1]/hook":         "loopback",
		"https://0.0.0.0/hook":                    "private",
		"https://localhost/hook":                  "resolves to",
	} {
		err := strict.CheckURL(ctx, raw)
		if want == "" {
			require.NoError(t, err, raw)
			continue
		}
		require.Error(t, err, raw)
		require.Contains(t, err.Error(), want, raw)
		var ue *delivery.URLError
		require.ErrorAs(t, err, &ue, raw)
	}
	// What the operator allows.
	require.NoError(t, dev.CheckURL(ctx, "http://127.0.0.1:8000/hook"))
	require.NoError(t, dev.CheckURL(ctx, "http://localhost:8000/hook"))
	require.ErrorContains(t, dev.CheckURL(ctx, "https://169.254.169.254/"), "link-local", "only the listed networks")
	require.ErrorContains(t, dev.CheckURL(ctx, "http://10.0.0.1/"), "must be https")

	_, err = delivery.ParsePolicy("http://x", "")
	require.ErrorContains(t, err, "LABELQ_WEBHOOK_ALLOW_HTTP")
	_, err = delivery.ParsePolicy("", "10.0.0.0")
	require.ErrorContains(t, err, "LABELQ_WEBHOOK_ALLOWED_NETWORKS")
}

// The dial-time check refuses the address actually dialled: a URL that passed
// CheckURL (or a name that now resolves elsewhere, DNS rebinding) never connects to
// a refused address.
func TestClientRefusesTheAddressItDials(t *testing.T) {
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits++ }))
	t.Cleanup(srv.Close)
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	strict, err := delivery.ParsePolicy("127.0.0.1,localhost", "")
	require.NoError(t, err)
	c := strict.Client(2*time.Second, nil)
	for _, u := range []string{srv.URL, "http://localhost:" + port + "/"} {
		_, err = c.Post(u, "application/json", strings.NewReader("{}"))
		require.Error(t, err, u)
		require.True(t, errors.Is(err, delivery.ErrAddressRefused), "%s: %v", u, err)
	}
	require.Zero(t, hits)

	allowed, err := delivery.ParsePolicy("127.0.0.1", "127.0.0.0/8")
	require.NoError(t, err)
	resp, err := allowed.Client(2*time.Second, nil).Post(srv.URL, "application/json", strings.NewReader("{}"))
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, 1, hits)
}

func TestClientFollowsNoRedirect(t *testing.T) {
	target := 0
	dst := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { target++ }))
	t.Cleanup(dst.Close)
	src := httptest.NewServer(http.RedirectHandler(dst.URL, http.StatusTemporaryRedirect))
	t.Cleanup(src.Close)
	pol, err := delivery.ParsePolicy("127.0.0.1", "127.0.0.0/8")
	require.NoError(t, err)
	resp, err := pol.Client(2*time.Second, nil).Post(src.URL, "application/json", strings.NewReader("{}"))
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusTemporaryRedirect, resp.StatusCode)
	require.Zero(t, target)
}

func TestSchedule(t *testing.T) {
	s, err := delivery.ParseSchedule("0s, 5s,5m,30m,2h,5h,10h,10h")
	require.NoError(t, err)
	require.Equal(t, 8, s.Attempts())
	var waits []time.Duration
	for step := 1; ; step++ {
		d, ok := s.Next(step)
		if !ok {
			require.Equal(t, 8, step, "eight attempts, then failed")
			break
		}
		waits = append(waits, d)
	}
	require.Equal(t, []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}, waits)
	for _, bad := range []string{"", "5x", "-1s", strings.Repeat("1s,", 51)} {
		_, err := delivery.ParseSchedule(bad)
		require.Error(t, err, bad)
	}

	for code, want := range map[int]delivery.Outcome{
		0: delivery.Retry, 200: delivery.Succeeded, 204: delivery.Succeeded, 299: delivery.Succeeded,
		301: delivery.Refused, 400: delivery.Refused, 401: delivery.Refused, 404: delivery.Refused,
		408: delivery.Retry, 410: delivery.Gone, 429: delivery.Retry, 500: delivery.Retry, 503: delivery.Retry,
	} {
		require.Equal(t, want, delivery.Classify(code), "%d", code)
	}

	now := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	h := http.Header{}
	_, ok := delivery.RetryAfter(h, now)
	require.False(t, ok)
	h.Set("Retry-After", "120")
	d, ok := delivery.RetryAfter(h, now)
	require.True(t, ok)
	require.Equal(t, 2*time.Minute, d)
	h.Set("Retry-After", now.Add(90*time.Second).Format(http.TimeFormat))
	d, _ = delivery.RetryAfter(h, now)
	require.Equal(t, 90*time.Second, d)
	h.Set("Retry-After", "9999999")
	d, _ = delivery.RetryAfter(h, now)
	require.Equal(t, 24*time.Hour, d, "capped at a day")
	h.Set("Retry-After", "soon")
	_, ok = delivery.RetryAfter(h, now)
	require.False(t, ok)
}

func TestSignAndVerify(t *testing.T) {
	a, b := delivery.NewSecret(), delivery.NewSecret()
	require.True(t, strings.HasPrefix(a, delivery.SecretPrefix))
	require.NotEqual(t, a, b)
	body := []byte(`{"id":"msg_1","type":"webhook.test"}`)
	h := http.Header{}
	require.NoError(t, delivery.SetHeaders(h, []string{a, b}, "msg_1", time.Now(), body))
	require.Len(t, strings.Fields(h.Get(delivery.HeaderSignature)), 2)
	require.NoError(t, delivery.Verify(a, body, h))
	require.NoError(t, delivery.Verify(b, body, h))
	require.Error(t, delivery.Verify(delivery.NewSecret(), body, h), "another secret")
	require.Error(t, delivery.Verify(a, []byte(`{"id":"msg_1","type":"webhook.tesT"}`), h), "an altered body")
	old := http.Header{}
	require.NoError(t, delivery.SetHeaders(old, []string{a}, "msg_1", time.Now().Add(-10*time.Minute), body))
	require.Error(t, delivery.Verify(a, body, old), "a replayed old timestamp")
	_, err := delivery.Sign(nil, "msg_1", time.Now(), body)
	require.Error(t, err)
	_, err = delivery.Sign([]string{"not-a-secret"}, "msg_1", time.Now(), body)
	require.Error(t, err)
	require.NotContains(t, err.Error(), "not-a-secret")
}

func TestSealedSecretsAreBoundToTheirOrganization(t *testing.T) {
	keys := testenv.StorageKeyring(t)
	secret := delivery.NewSecret()
	sealed, kid, err := delivery.SealSecret(keys, 7, secret)
	require.NoError(t, err)
	require.NotContains(t, string(sealed), strings.TrimPrefix(secret, delivery.SecretPrefix))
	got, err := delivery.OpenSecret(keys, 7, sealed, kid)
	require.NoError(t, err)
	require.Equal(t, secret, got)
	_, err = delivery.OpenSecret(keys, 8, sealed, kid)
	require.Error(t, err, "a sealed secret copied to another organization's row does not open")

	prev := delivery.NewSecret()
	sealedPrev, kidPrev, err := delivery.SealSecret(keys, 7, prev)
	require.NoError(t, err)
	now := time.Now()
	until := now.Add(time.Hour)
	s := delivery.Sealed{OrgID: 7, Secret: sealed, SecretKeyID: kid, Previous: sealedPrev, PreviousKeyID: &kidPrev, PreviousExpires: &until}
	both, err := delivery.SigningSecrets(keys, s, now)
	require.NoError(t, err)
	require.Equal(t, []string{secret, prev}, both)
	one, err := delivery.SigningSecrets(keys, s, until.Add(time.Second))
	require.NoError(t, err)
	require.Equal(t, []string{secret}, one)
}
