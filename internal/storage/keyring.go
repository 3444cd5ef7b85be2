package storage

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Keyring holds the keys that encrypt storage credentials at rest
// (LABELQ_SECRET_KEY: "kid:base64key[,kid:base64key...]"). The first key seals;
// every key opens, so a key can rotate: put the new one first, keep the old one
// until `labelq storage rekey` has sealed every row again under the new one.
type Keyring struct {
	current string
	keys    map[string]cipher.AEAD
}

// ErrNoKeyring says credentials cannot be stored or read: LABELQ_SECRET_KEY is empty.
var ErrNoKeyring = errors.New("LABELQ_SECRET_KEY is not set: storages with credentials need it (kid:base64 of 32 random bytes; `openssl rand -base64 32`)")

var kidPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// ParseKeyring reads LABELQ_SECRET_KEY. An empty value gives a nil keyring (no
// credentials can be sealed or opened); a malformed one is an error that names
// the entry at fault but never prints key material.
func ParseKeyring(s string) (*Keyring, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	k := &Keyring{keys: map[string]cipher.AEAD{}}
	for i, entry := range strings.Split(s, ",") {
		kid, b64, ok := strings.Cut(strings.TrimSpace(entry), ":")
		if !ok || !kidPattern.MatchString(kid) {
			return nil, fmt.Errorf("LABELQ_SECRET_KEY entry %d: want kid:base64key with a kid of letters, digits, '.', '_' or '-'", i+1)
		}
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, fmt.Errorf("LABELQ_SECRET_KEY key %q: not standard base64", kid)
		}
		if len(raw) != 32 {
			return nil, fmt.Errorf("LABELQ_SECRET_KEY key %q: %d bytes, want 32 (AES-256)", kid, len(raw))
		}
		if _, dup := k.keys[kid]; dup {
			return nil, fmt.Errorf("LABELQ_SECRET_KEY key %q appears twice", kid)
		}
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		k.keys[kid] = aead
		if i == 0 {
			k.current = kid
		}
	}
	return k, nil
}

// Current is the id of the key Seal uses.
func (k *Keyring) Current() string {
	if k == nil {
		return ""
	}
	return k.current
}

// Seal encrypts plain under the current key; aad binds the ciphertext to its row
// (the organization), so a sealed value copied to another organization's row does
// not open. It returns nonce||ciphertext and the key id.
func (k *Keyring) Seal(plain, aad []byte) ([]byte, string, error) {
	if k == nil {
		return nil, "", ErrNoKeyring
	}
	aead := k.keys[k.current]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, "", err
	}
	return aead.Seal(nonce, nonce, plain, aad), k.current, nil
}

// Open decrypts what Seal returned with the key it names.
func (k *Keyring) Open(sealed []byte, kid string, aad []byte) ([]byte, error) {
	if k == nil {
		return nil, ErrNoKeyring
	}
	aead, ok := k.keys[kid]
	if !ok {
		return nil, fmt.Errorf("credentials are sealed under key %q, which LABELQ_SECRET_KEY no longer lists", kid)
	}
	if len(sealed) < aead.NonceSize() {
		return nil, errors.New("sealed credentials are too short")
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], aad)
	if err != nil {
		return nil, fmt.Errorf("credentials do not open under key %q (tampered, or sealed for another organization)", kid)
	}
	return plain, nil
}
