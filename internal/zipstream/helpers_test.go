package zipstream

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// tracker counts opens and closes so tests can prove every reader opened is
// closed, whatever path the pack took.
type tracker struct {
	opens, closes atomic.Int64
}

type trackedReader struct {
	io.Reader
	t      *tracker
	closed atomic.Bool
}

func (r *trackedReader) Close() error {
	if !r.closed.Swap(true) {
		r.t.closes.Add(1)
	}
	return nil
}

// open wraps a reader factory into a counted Opener.
func (tr *tracker) open(f func(ctx context.Context) (io.Reader, error)) Opener {
	return func(ctx context.Context) (io.ReadCloser, error) {
		r, err := f(ctx)
		if err != nil {
			return nil, err
		}
		tr.opens.Add(1)
		return &trackedReader{Reader: r, t: tr}, nil
	}
}

func (tr *tracker) bytes(data []byte) Opener {
	return tr.open(func(context.Context) (io.Reader, error) { return bytes.NewReader(data), nil })
}

func (tr *tracker) requireBalanced(t *testing.T) {
	t.Helper()
	require.Equal(t, tr.opens.Load(), tr.closes.Load(), "every opened reader must be closed")
}

// testEntry is an entry with the bytes the archive must contain.
type testEntry struct {
	Entry
	data       []byte
	wantMethod uint16
}

func (te testEntry) withData(tr *tracker) Entry {
	e := te.Entry
	e.Size = int64(len(te.data))
	if e.Open == nil {
		e.Open = tr.bytes(te.data)
	}
	return e
}

func entriesOf(tr *tracker, tes []testEntry) []Entry {
	out := make([]Entry, len(tes))
	for i, te := range tes {
		out[i] = te.withData(tr)
	}
	return out
}

// requireArchive reads the archive back with archive/zip and checks every
// entry's name, bytes, method and timestamp, then has Info-ZIP test it.
func requireArchive(t *testing.T, archive []byte, want []testEntry, modified time.Time) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
	require.NoError(t, err)
	require.Len(t, zr.File, len(want))
	for i, f := range zr.File {
		w := want[i]
		require.Equal(t, w.Path, f.Name, "entry %d", i)
		require.Equal(t, w.wantMethod, f.Method, "method of %s", f.Name)
		require.Equal(t, uint64(len(w.data)), f.UncompressedSize64, "size of %s", f.Name)
		require.True(t, f.Modified.Equal(modified), "modified of %s: %v", f.Name, f.Modified)
		require.Equal(t, os.FileMode(0o644), f.Mode().Perm())
		rc, err := f.Open()
		require.NoError(t, err)
		got, err := io.ReadAll(rc) // also verifies the CRC-32
		require.NoError(t, err, "read %s", f.Name)
		require.NoError(t, rc.Close())
		require.Equal(t, sha256Hex(w.data), sha256Hex(got), "sha256 of %s", f.Name)
		require.True(t, bytes.Equal(w.data, got), "bytes of %s", f.Name)
	}
	requireUnzipTest(t, archive)
}

// requireUnzipTest runs Info-ZIP's "unzip -t", the reader most users have.
func requireUnzipTest(t *testing.T, archive []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "a.zip")
	require.NoError(t, os.WriteFile(path, archive, 0o600))
	requireUnzipTestFile(t, path)
}

func requireUnzipTestFile(t *testing.T, path string) {
	t.Helper()
	unzip, err := exec.LookPath("unzip")
	require.NoError(t, err, "unzip (Info-ZIP) is required by these tests")
	out, err := exec.Command(unzip, "-tqq", path).CombinedOutput()
	require.NoError(t, err, "unzip -t: %s", out)
}

// goroutines returns a check that the goroutine count is back to what it is
// now. Pack waits for its goroutines, so only a short grace period (for the
// runtime's own bookkeeping) is allowed.
func goroutines(t *testing.T) func() {
	t.Helper()
	before := runtime.NumGoroutine()
	return func() {
		t.Helper()
		deadline := time.Now().Add(2 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutine leak: %d before, %d after\n%s", before, n, buf)
		}
	}
}

// heapPeak samples HeapInuse until stop is called and returns the maximum.
func heapPeak() (stop func() uint64) {
	var (
		peak uint64
		wg   sync.WaitGroup
		done = make(chan struct{})
	)
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			sample()
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		sample()
		return peak
	}
}

// cyclicReader serves n bytes taken cyclically from block starting at off:
// content generated on the fly without holding it, for the memory and
// ZIP64 tests.
type cyclicReader struct {
	block []byte
	off   int
	left  int64
}

func (r *cyclicReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n := copy(p, r.block[r.off:])
	r.off = (r.off + n) % len(r.block)
	r.left -= int64(n)
	return n, nil
}

func cyclicSHA(block []byte, off int, n int64) string {
	h := sha256.New()
	_, _ = io.Copy(h, &cyclicReader{block: block, off: off, left: n})
	return hex.EncodeToString(h.Sum(nil))
}

var errBoom = errors.New("boom")

func pathf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
