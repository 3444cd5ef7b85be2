package delivery

import (
	"fmt"
	"strconv"
	"time"

	"github.com/labelq/labelq/internal/storage"
)

// aad binds a sealed signing secret to its organization: copied to another
// organization's row, it does not open.
func aad(orgID int64) []byte { return []byte("webhook-secret:org:" + strconv.FormatInt(orgID, 10)) }

// SealSecret encrypts a signing secret for an endpoint row of orgID under the
// keyring's current key (LABELQ_SECRET_KEY).
func SealSecret(keys *storage.Keyring, orgID int64, secret string) ([]byte, string, error) {
	sealed, kid, err := keys.Seal([]byte(secret), aad(orgID))
	if err != nil {
		return nil, "", fmt.Errorf("seal webhook secret: %w", err)
	}
	return sealed, kid, nil
}

// OpenSecret decrypts one sealed signing secret of orgID.
func OpenSecret(keys *storage.Keyring, orgID int64, sealed []byte, kid string) (string, error) {
	plain, err := keys.Open(sealed, kid, aad(orgID))
	if err != nil {
		return "", fmt.Errorf("webhook secret: %w", err)
	}
	return string(plain), nil
}

// Sealed are an endpoint's sealed secrets as its row holds them.
type Sealed struct {
	OrgID           int64
	Secret          []byte
	SecretKeyID     string
	Previous        []byte
	PreviousKeyID   *string
	PreviousExpires *time.Time
}

// SigningSecrets are the secrets that sign a delivery made at now: the current one,
// and the previous one while the rotation's overlap lasts.
func SigningSecrets(keys *storage.Keyring, s Sealed, now time.Time) ([]string, error) {
	cur, err := OpenSecret(keys, s.OrgID, s.Secret, s.SecretKeyID)
	if err != nil {
		return nil, err
	}
	out := []string{cur}
	if s.Previous != nil && s.PreviousKeyID != nil && s.PreviousExpires != nil && now.Before(*s.PreviousExpires) {
		prev, err := OpenSecret(keys, s.OrgID, s.Previous, *s.PreviousKeyID)
		if err != nil {
			return nil, err
		}
		out = append(out, prev)
	}
	return out, nil
}
