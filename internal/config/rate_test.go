package config_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/config"
)

func TestParseRate(t *testing.T) {
	for in, want := range map[string]struct {
		n   int
		per time.Duration
	}{
		"600/min": {600, time.Minute}, "20 / s": {20, time.Second}, "5000/h": {5000, time.Hour},
		"1/second": {1, time.Second}, "0": {}, "off": {},
	} {
		n, per, err := config.ParseRate(in)
		require.NoError(t, err, in)
		require.Equal(t, want.n, n, in)
		require.Equal(t, want.per, per, in)
	}
	for _, bad := range []string{"", "600", "-1/min", "x/min", "10/day", "1.5/s"} {
		_, _, err := config.ParseRate(bad)
		require.Error(t, err, bad)
	}
}
