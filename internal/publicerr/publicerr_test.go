package publicerr_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/publicerr"
)

func TestReasonHidesTheDeployment(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // a closed port: connection refused
	_, dialErr := net.DialTimeout("tcp", addr, time.Second)
	require.Error(t, dialErr)

	for _, err := range []error{
		dialErr,
		fmt.Errorf("upload part: %w", dialErr),
		errors.New(`Get "http://minio.internal:9000/bucket/key": EOF`),
		errors.New("could not reach the provider: 10.1.2.3 timed out"),
		errors.New("llm.svc.cluster.local:8080 reset the connection"),
		errors.New("read from [fd00::5]:443 failed"),
		context.DeadlineExceeded,
	} {
		got := publicerr.Reason(err, publicerr.Storage)
		require.Equal(t, publicerr.Storage, got, "for %q", err)
	}
	for _, msg := range []string{
		"files/cat.jpg (version 7): stored bytes no longer match the recorded SHA-256 (recorded ab12, read cd34); re-upload or re-validate the file",
		"the provider rejected the request (400 context_length_exceeded): too many tokens",
		"the project's daily token budget (1000) is spent (1200 used today): waiting until after 2026-12-03T00:00:00Z",
	} {
		require.Equal(t, msg, publicerr.Reason(errors.New(msg), publicerr.Storage))
	}
	require.Empty(t, publicerr.Reason(nil, publicerr.Model))
}
