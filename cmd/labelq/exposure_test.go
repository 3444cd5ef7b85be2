package main

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/app"
	"github.com/labelq/labelq/internal/testenv"
)

// `labelq all` on every interface with make run's password or MinIO's default keys
// refuses to start and says which variable to set.
func TestExposedWithDevCredentialsRefusesToStart(t *testing.T) {
	for _, addr := range []string{":8080", "0.0.0.0:8080"} {
		t.Run(addr, func(t *testing.T) {
			t.Setenv("LABELQ_HTTP_ADDR", addr)
			t.Setenv("LABELQ_OPERATOR_PASSWORD", "labelq-dev")
			var out, errOut bytes.Buffer
			require.Equal(t, 2, run([]string{"all"}, &out, &errOut))
			require.Contains(t, errOut.String(), "LABELQ_OPERATOR_PASSWORD")
			require.Contains(t, errOut.String(), "LABELQ_S3_ACCESS_KEY")
			require.Contains(t, errOut.String(), "beyond loopback")
			require.NotContains(t, errOut.String(), "labelq-dev")
		})
	}
}

// On loopback, make run's dev password still starts the API.
func TestLoopbackWithDevPasswordStarts(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	cfg := env.Config(t, map[string]string{"LABELQ_HTTP_ADDR": testenv.FreeAddr(t), "LABELQ_OPERATOR_PASSWORD": "labelq-dev"})
	a, err := app.New(context.Background(), cfg, testenv.Quiet())
	require.NoError(t, err)
	t.Cleanup(a.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, app.RoleAPI) }()
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + cfg.HTTPAddr + "/healthz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 50*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
}
