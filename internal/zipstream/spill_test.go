package zipstream

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// pieceStore is a Spiller over a map, counting what the Writer does with it.
type pieceStore struct {
	pieces     map[string][]byte
	spills     int
	unspills   int
	failSpill  error
	failUnpill error
}

func newPieceStore() *pieceStore { return &pieceStore{pieces: map[string][]byte{}} }

func (s *pieceStore) Spill(name string, r io.Reader, size int64) error {
	if s.failSpill != nil {
		return s.failSpill
	}
	if _, dup := s.pieces[name]; dup {
		return fmt.Errorf("piece %s spilled twice", name)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if int64(len(b)) != size {
		return fmt.Errorf("piece %s: read %d bytes, told %d", name, len(b), size)
	}
	s.pieces[name] = b
	s.spills++
	return nil
}

func (s *pieceStore) Unspill(name string) (io.ReadCloser, error) {
	if s.failUnpill != nil {
		return nil, s.failUnpill
	}
	b, ok := s.pieces[name]
	if !ok {
		return nil, fmt.Errorf("no piece %s", name)
	}
	s.unspills++
	return io.NopCloser(bytes.NewReader(b)), nil
}

// writeLabelArchive writes n small created entries and a manifest of them,
// as a yolo export does, and returns the archive. heapAt, if not nil, is
// called after entry k for every k in it.
func writeLabelArchive(t *testing.T, n int, opts Options, heapAt map[int]func()) []byte {
	t.Helper()
	var out bytes.Buffer
	var dst io.Writer = &out
	if heapAt != nil {
		dst = io.Discard // the archive itself is not what is measured
	}
	opts.DiscardResults = true
	w := NewWriter(dst, opts)
	sp, err := w.NewSpool(ManifestPath, ManifestMIME)
	if err != nil {
		t.Fatal(err)
	}
	mw, err := NewManifestWriter(sp, Manifest{})
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("0 0.512 0.433 0.120 0.080\n"), 3)
	for i := range n {
		if f := heapAt[i]; f != nil {
			f()
		}
		p := fmt.Sprintf("labels/task_%07d.txt", i)
		cw, err := w.Create(p, "text/plain")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cw.Write(body); err != nil {
			t.Fatal(err)
		}
		if err := w.FinishEntry(); err != nil {
			t.Fatal(err)
		}
		sum := fmt.Sprintf("%x", sha256.Sum256(binary.LittleEndian.AppendUint64(nil, uint64(i))))
		if err := mw.Add(ManifestEntry{Path: p, SHA256: sum, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
	}
	if f := heapAt[n]; f != nil {
		f()
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddSpool(sp); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestSpilledArchiveIsTheSame checks that an archive whose central directory
// and manifest went to a Spiller in pieces is byte for byte the archive
// written without one, that both streams were spilled in several pieces, and
// that each piece was read back once.
func TestSpilledArchiveIsTheSame(t *testing.T) {
	const n = 70_000
	want := writeLabelArchive(t, n, Options{}, nil)
	st := newPieceStore()
	got := writeLabelArchive(t, n, Options{Spiller: st, SpillAfter: 128 << 10}, nil)
	if !bytes.Equal(got, want) {
		t.Fatalf("spilled archive differs: %d bytes, %d without spilling", len(got), len(want))
	}
	var dir, spool int
	for name := range st.pieces {
		switch {
		case strings.HasPrefix(name, "central-directory."):
			dir++
		case strings.HasPrefix(name, "spool/manifest.json."):
			spool++
		default:
			t.Errorf("unexpected piece name %q", name)
		}
	}
	if dir < 2 || spool < 2 {
		t.Errorf("%d central directory and %d manifest pieces, want several of each", dir, spool)
	}
	if st.unspills != st.spills {
		t.Errorf("%d pieces spilled, %d read back", st.spills, st.unspills)
	}
	checkArchive(t, got, n+1)
}

// dirStore is a Spiller over a directory: pieces off the heap.
type dirStore struct{ dir string }

func (d dirStore) path(name string) string {
	return filepath.Join(d.dir, strings.ReplaceAll(name, "/", "_"))
}

func (d dirStore) Spill(name string, r io.Reader, size int64) error {
	f, err := os.Create(d.path(name))
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func (d dirStore) Unspill(name string) (io.ReadCloser, error) { return os.Open(d.path(name)) }

// checkArchive opens an archive with archive/zip and counts its entries.
func checkArchive(t *testing.T, b []byte, entries int) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) != entries {
		t.Fatalf("archive has %d entries, want %d", len(zr.File), entries)
	}
	last := zr.File[len(zr.File)-1]
	rc, err := last.Open()
	if err != nil {
		t.Fatal(err)
	}
	m, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("%s: %v", last.Name, err)
	}
	if !bytes.Contains(m, []byte(fmt.Sprintf("labels/task_%07d.txt", entries-2))) {
		t.Errorf("the manifest does not list the last entry")
	}
}

// TestSpillingKeepsMemoryFlat measures the heap kept per entry, as
// TestArchiveMemoryPerEntry does, with a Spiller that keeps the pieces off
// the heap: what remains is the name check's hash.
func TestSpillingKeepsMemoryFlat(t *testing.T) {
	heap := func() int64 {
		runtime.GC()
		runtime.GC() // what the first cycle's finalizers and pools let go
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	var at10k, at100k int64
	st := dirStore{t.TempDir()}
	writeLabelArchive(t, 100_000, Options{Spiller: st, SpillAfter: 256 << 10},
		map[int]func(){10_000: func() { at10k = heap() }, 100_000: func() { at100k = heap() }})
	pieces, err := os.ReadDir(st.dir)
	if err != nil || len(pieces) < 4 {
		t.Fatalf("%d pieces spilled (%v), want several", len(pieces), err)
	}
	per := float64(at100k-at10k) / 90_000
	t.Logf("%.1f bytes per entry (heap %d at 10,000 entries, %d at 100,000)", per, at10k, at100k)
	if per > 64 {
		t.Errorf("%.1f bytes per entry", per)
	}
}

// TestSpillErrors checks that a piece that cannot be stored or read back
// fails the archive with the Spiller's error.
func TestSpillErrors(t *testing.T) {
	boom := errors.New("bucket unreachable")
	for _, tc := range []struct {
		name  string
		setup func(*pieceStore)
	}{
		{"spill", func(s *pieceStore) { s.failSpill = boom }},
		{"unspill", func(s *pieceStore) { s.failUnpill = boom }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newPieceStore()
			tc.setup(st)
			w := NewWriter(io.Discard, Options{Spiller: st, SpillAfter: 1, DiscardResults: true})
			var err error
			for i := 0; i < 10 && err == nil; i++ {
				var cw io.Writer
				if cw, err = w.Create(fmt.Sprintf("f%d", i), "text/plain"); err == nil {
					_, err = cw.Write([]byte("x"))
				}
			}
			if err == nil {
				err = w.Close()
			}
			if !errors.Is(err, boom) {
				t.Fatalf("got %v, want the Spiller's error", err)
			}
		})
	}
}
