package storage

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPublicOnlyRefusesInternalAddresses(t *testing.T) {
	t.Parallel()
	for _, a := range []string{"127.0.0.1:9000", "[::1]:443", "10.1.2.3:443", "192.168.0.9:80", "172.16.5.5:443",
		"169.254.169.254:80", "[fe80::1]:443", "0.0.0.0:443", "[::ffff:127.0.0.1]:443"} {
		require.Error(t, publicOnly("tcp", a, nil), a)
	}
	for _, a := range []string{"52.216.0.1:443", "[2600:1f18::1]:443"} {
		require.NoError(t, publicOnly("tcp", a, nil), a)
	}
}
