package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "127.1.2.3:80": true, "[::1]:8080": true, "localhost:8080": true,
		":8080": false, "0.0.0.0:8080": false, "[::]:8080": false, "10.0.0.5:8080": false, "example.com:80": false,
	} {
		require.Equal(t, want, Loopback(addr), addr)
	}
}

// Beyond loopback, dev credentials are refused and the error names the variable.
func TestExposedAddressRefusesDevCredentials(t *testing.T) {
	strong := "a-long-random-operator-secret"
	for _, tc := range []struct {
		name, addr, password, access, secret string
		wantVars                             []string
	}{
		{"dev password on every interface", ":8080", "labelq-dev", "labelq", "long-s3-secret-value", []string{"LABELQ_OPERATOR_PASSWORD"}},
		{"known password on 0.0.0.0", "0.0.0.0:8080", "Admin", "labelq", "long-s3-secret-value", []string{"LABELQ_OPERATOR_PASSWORD"}},
		{"short password", ":8080", "short-pass-15ch", "labelq", "long-s3-secret-value", []string{"LABELQ_OPERATOR_PASSWORD"}},
		{"minio default keys", ":8080", strong, "", "", []string{"LABELQ_S3_ACCESS_KEY", "LABELQ_S3_SECRET_KEY"}},
		{"both", "[::]:8080", "operator", "", "", []string{"LABELQ_OPERATOR_PASSWORD", "LABELQ_S3_SECRET_KEY"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"LABELQ_HTTP_ADDR": tc.addr, "LABELQ_OPERATOR_PASSWORD": tc.password,
				"LABELQ_S3_ACCESS_KEY": tc.access, "LABELQ_S3_SECRET_KEY": tc.secret}
			_, err := Load(func(k string) string { return env[k] })
			require.Error(t, err)
			for _, v := range tc.wantVars {
				require.Contains(t, err.Error(), v)
			}
			require.Contains(t, err.Error(), "beyond loopback")
			require.NotContains(t, err.Error(), tc.password, "the password is not echoed")
		})
	}
}

func TestExposedAddressAcceptsStrongCredentials(t *testing.T) {
	env := map[string]string{"LABELQ_HTTP_ADDR": ":8080", "LABELQ_OPERATOR_PASSWORD": "a-long-random-operator-secret",
		"LABELQ_S3_ACCESS_KEY": "labelq", "LABELQ_S3_SECRET_KEY": "long-s3-secret-value"}
	_, err := Load(func(k string) string { return env[k] })
	require.NoError(t, err)
	// With no operator password the operator pages are off, which is safe anywhere.
	env["LABELQ_OPERATOR_PASSWORD"] = ""
	_, err = Load(func(k string) string { return env[k] })
	require.NoError(t, err)
}

// The defaults (and `make run`: labelq-dev, minioadmin) listen on loopback and load.
func TestLoopbackKeepsDevDefaults(t *testing.T) {
	env := map[string]string{"LABELQ_OPERATOR_PASSWORD": "labelq-dev"}
	c, err := Load(func(k string) string { return env[k] })
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:8080", c.HTTPAddr)
	require.Equal(t, "minioadmin", c.S3AccessKey)
	require.False(t, c.MonitoringWritable)
}
