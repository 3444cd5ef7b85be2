package validate

import (
	"bytes"
	"context"
	"io"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/verify"
)

// A read cut short is an error to retry, not an end of stream to judge.
func TestCutShortReadIsAnErrorForMeasure(t *testing.T) {
	t.Parallel()
	src := io.MultiReader(bytes.NewReader(make([]byte, 5000)), iotest.ErrReader(io.ErrUnexpectedEOF))
	_, err := verify.Measure(context.Background(), cutShort{src}, verify.Options{})
	require.ErrorIs(t, err, errCutShort)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	// And an ordinary end is still an end.
	m, err := verify.Measure(context.Background(), cutShort{bytes.NewReader([]byte("abc"))}, verify.Options{})
	require.NoError(t, err)
	require.EqualValues(t, 3, m.Size)
}
