// Package delivery holds the mechanics of one webhook delivery: signing and
// verifying to the Standard Webhooks specification (through the maintained
// library), sealing endpoints' signing secrets, the URL and dialled-address
// policy, and the retry schedule. It imports nothing of labelq's but storage's
// keyring, so configuration, test helpers and receivers use it without pulling
// in the outbox (internal/webhook, which emits events, does).
package delivery

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// The Standard Webhooks headers every delivery carries.
const (
	HeaderID        = standardwebhooks.HeaderWebhookID
	HeaderTimestamp = standardwebhooks.HeaderWebhookTimestamp
	HeaderSignature = standardwebhooks.HeaderWebhookSignature
)

// SecretPrefix starts every signing secret labelq generates.
const SecretPrefix = "whsec_"

// NewSecret is a fresh signing secret: "whsec_" and 32 random bytes in base64, the
// form the Standard Webhooks libraries take.
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// Sign is the webhook-signature header of one delivery: "v1,<base64 HMAC-SHA256>"
// per secret, space-separated (during a rotation's overlap the old and the new
// secret both sign, and a receiver holding either verifies), computed by the
// Standard Webhooks library over "<id>.<timestamp>.<body>".
func Sign(secrets []string, id string, at time.Time, body []byte) (string, error) {
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		wh, err := standardwebhooks.NewWebhook(s)
		if err != nil {
			// The library's error would quote nothing secret, but say less anyway.
			return "", fmt.Errorf("webhook: a signing secret is not whsec_<base64>")
		}
		sig, err := wh.Sign(id, at, body)
		if err != nil {
			return "", fmt.Errorf("webhook: sign: %w", err)
		}
		sigs = append(sigs, sig)
	}
	if len(sigs) == 0 {
		return "", fmt.Errorf("webhook: no signing secret")
	}
	return strings.Join(sigs, " "), nil
}

// SetHeaders puts the Standard Webhooks headers of a delivery on h.
func SetHeaders(h http.Header, secrets []string, id string, at time.Time, body []byte) error {
	sig, err := Sign(secrets, id, at, body)
	if err != nil {
		return err
	}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(at.Unix(), 10))
	h.Set(HeaderSignature, sig)
	return nil
}

// Verify checks a received delivery with the Standard Webhooks library (what a
// receiver does; labelq's tests and benchmarks receive with it).
func Verify(secret string, body []byte, h http.Header) error {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return fmt.Errorf("webhook: secret is not whsec_<base64>")
	}
	return wh.Verify(body, h)
}
