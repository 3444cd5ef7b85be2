package storage_test

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/storage"
)

func key(b byte) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32)) }

func TestKeyringSealsAndRotates(t *testing.T) {
	t.Parallel()
	old, err := storage.ParseKeyring("k1:" + key(1))
	require.NoError(t, err)
	sealed, kid, err := old.Seal([]byte(`{"secret_access_key":"very-secret"}`), storage.CredentialsAAD(7))
	require.NoError(t, err)
	require.Equal(t, "k1", kid)
	require.NotContains(t, string(sealed), "very-secret", "sealed, not encoded")

	// Rotation: the new key seals, the old one still opens what it sealed.
	rotated, err := storage.ParseKeyring("k2:" + key(2) + ", k1:" + key(1))
	require.NoError(t, err)
	require.Equal(t, "k2", rotated.Current())
	plain, err := rotated.Open(sealed, kid, storage.CredentialsAAD(7))
	require.NoError(t, err)
	require.Contains(t, string(plain), "very-secret")
	_, kid2, err := rotated.Seal(plain, storage.CredentialsAAD(7))
	require.NoError(t, err)
	require.Equal(t, "k2", kid2)

	// Bound to its organization, and to an untampered ciphertext.
	_, err = rotated.Open(sealed, kid, storage.CredentialsAAD(8))
	require.ErrorContains(t, err, "sealed for another organization")
	bad := bytes.Clone(sealed)
	bad[len(bad)-1] ^= 1
	_, err = rotated.Open(bad, kid, storage.CredentialsAAD(7))
	require.Error(t, err)
	// A key the operator dropped.
	onlyNew, err := storage.ParseKeyring("k2:" + key(2))
	require.NoError(t, err)
	_, err = onlyNew.Open(sealed, "k1", storage.CredentialsAAD(7))
	require.ErrorContains(t, err, `key "k1", which LABELQ_SECRET_KEY no longer lists`)
}

func TestKeyringRefusesBadKeysWithoutPrintingThem(t *testing.T) {
	t.Parallel()
	none, err := storage.ParseKeyring("")
	require.NoError(t, err)
	_, _, err = none.Seal([]byte("x"), nil)
	require.ErrorIs(t, err, storage.ErrNoKeyring)

	short := base64.StdEncoding.EncodeToString([]byte("sixteen-byte-key"))
	for in, want := range map[string]string{
		"nokid" + key(1):                 "entry 1: want kid:base64key",
		"k1:" + short:                    "16 bytes, want 32",
		"k1:not base64!!":                "not standard base64",
		"k1:" + key(1) + ",k1:" + key(2): `key "k1" appears twice`,
		"bad kid!:" + key(1):             "entry 1",
	} {
		_, err := storage.ParseKeyring(in)
		require.ErrorContains(t, err, want, in)
		require.NotContains(t, err.Error(), key(1), "key material in an error")
		require.False(t, strings.Contains(err.Error(), short), "key material in an error")
	}
}

func TestAllowlist(t *testing.T) {
	t.Parallel()
	def, err := storage.ParseAllowlist("", "127.0.0.1:9000")
	require.NoError(t, err)
	_, err = def.Check("127.0.0.1:9000")
	require.NoError(t, err, "labelq's own endpoint is allowed by default")
	for _, e := range []string{"127.0.0.1:9001", "169.254.169.254:80", "10.0.0.1:9000", "localhost:9000", "s3.amazonaws.com:443"} {
		_, err := def.Check(e)
		var na *storage.ErrEndpointNotAllowed
		require.ErrorAs(t, err, &na, e)
		require.ErrorContains(t, err, "LABELQ_STORAGE_ALLOWED_ENDPOINTS")
	}
	_, err = def.Check("no-port")
	require.ErrorContains(t, err, "not host:port")

	a, err := storage.ParseAllowlist("minio.internal:9000, *.s3.amazonaws.com:443", "127.0.0.1:9000")
	require.NoError(t, err)
	wild, err := a.Check("MINIO.internal:9000")
	require.NoError(t, err)
	require.False(t, wild)
	wild, err = a.Check("bucket.s3.amazonaws.com:443")
	require.NoError(t, err)
	require.True(t, wild, "a wildcard match dials public addresses only")
	for _, e := range []string{"127.0.0.1:9000", "s3.amazonaws.com:443", "evil.s3.amazonaws.com:80", "s3.amazonaws.com.evil.io:443"} {
		_, err := a.Check(e)
		require.Error(t, err, e)
	}
	for _, bad := range []string{"no-port", "*.:443", "a*b.com:443", "*:443"} {
		_, err := storage.ParseAllowlist(bad, "x:1")
		require.ErrorContains(t, err, "LABELQ_STORAGE_ALLOWED_ENDPOINTS", bad)
	}
}
