package validate

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/verify"
)

func TestReadAheadDeliversTheSourceBytes(t *testing.T) {
	data := make([]byte, 1<<20+12345)
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for _, tc := range []struct {
		name        string
		depth, size int
		src         func() io.Reader
	}{
		{"one buffer", 1, 4096, func() io.Reader { return bytes.NewReader(data) }},
		{"deep ring", 8, 64 << 10, func() io.Reader { return bytes.NewReader(data) }},
		{"buffer larger than the data", 3, 4 << 20, func() io.Reader { return bytes.NewReader(data) }},
		{"source returning one byte at a time", 2, 1000, func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data)) }},
		{"source returning data with EOF", 3, 7000, func() io.Reader { return iotest.DataErrReader(bytes.NewReader(data)) }},
		{"empty source", 3, 4096, func() io.Reader { return bytes.NewReader(nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := data
			if tc.name == "empty source" {
				want = nil
			}
			r := newReadAhead(tc.src(), tc.depth, tc.size)
			defer r.Close()
			// TestReader exercises reads of many sizes and checks io.Reader's rules.
			require.NoError(t, iotest.TestReader(r, want))
		})
	}
}

func TestReadAheadPassesTheSourceErrorAfterItsData(t *testing.T) {
	boom := errors.New("connection reset")
	src := io.MultiReader(bytes.NewReader([]byte("0123456789")), iotest.ErrReader(boom))
	r := newReadAhead(src, 2, 4)
	defer r.Close()
	got, err := io.ReadAll(r)
	require.ErrorIs(t, err, boom)
	require.Equal(t, "0123456789", string(got))
	_, err = r.Read(make([]byte, 1))
	require.ErrorIs(t, err, boom, "the error is sticky")
}

// Close returns promptly when the consumer stops early, with the goroutine gone, so
// the source can be used again (InspectZip's ReadAt on the same minio Object).
func TestReadAheadCloseStopsTheGoroutine(t *testing.T) {
	endless := iotest.OneByteReader(io.LimitReader(zeroes{}, 1<<40))
	r := newReadAhead(endless, 2, 1024)
	buf := make([]byte, 10)
	_, err := io.ReadFull(r, buf)
	require.NoError(t, err)
	r.Close()
	r.Close() // twice is fine
	select {
	case <-r.done:
	default:
		t.Fatal("the fill goroutine is still running after Close")
	}
	rest, err := io.ReadAll(r)
	require.ErrorIs(t, err, errReadAheadClosed, "what was fetched before Close is served, then the reader is closed")
	require.LessOrEqual(t, len(rest), 3*1024)
}

type zeroes struct{}

func (zeroes) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// A read cut short is an error to retry, not an end of stream to judge.
func TestCutShortReadIsAnErrorForMeasure(t *testing.T) {
	for _, tc := range []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"direct", func(r io.Reader) io.Reader { return cutShort{r} }},
		{"through read-ahead", func(r io.Reader) io.Reader { return newReadAhead(cutShort{r}, 2, 1024) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := io.MultiReader(bytes.NewReader(make([]byte, 5000)), iotest.ErrReader(io.ErrUnexpectedEOF))
			_, err := verify.Measure(context.Background(), tc.wrap(src), verify.Options{})
			require.ErrorIs(t, err, errCutShort)
			require.ErrorIs(t, err, io.ErrUnexpectedEOF)
		})
	}
	// And an ordinary end is still an end.
	m, err := verify.Measure(context.Background(), cutShort{bytes.NewReader([]byte("abc"))}, verify.Options{})
	require.NoError(t, err)
	require.EqualValues(t, 3, m.Size)
}
