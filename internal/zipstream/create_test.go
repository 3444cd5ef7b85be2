package zipstream

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/testenv"
)

// TestCreateBetweenPacks writes created entries before, between and after
// packed ones, with a spooled manifest last built from OnEntry: the archive
// reads back whole with both readers, every result's SHA-256 is that of the
// bytes in the archive, and the manifest lists them all.
func TestCreateBetweenPacks(t *testing.T) {
	var tr tracker
	var buf bytes.Buffer
	var seen []EntryResult
	w := NewWriter(&buf, Options{Modified: testModified, OnEntry: func(r EntryResult) { seen = append(seen, r) }})
	spool, err := w.NewSpool(ManifestPath, ManifestMIME)
	require.NoError(t, err)
	mw, err := NewManifestWriter(spool, Manifest{ExportID: 9, ProjectID: 2, ProjectName: "p", Format: "coco", CreatedAt: testModified, LabelqVersion: "test"})
	require.NoError(t, err)

	text := testenv.TextBytes(7, 300<<10) // several flate blocks and write calls
	var want []testEntry
	create := func(path, mime string, data []byte, method uint16) {
		t.Helper()
		ew, err := w.Create(path, mime)
		require.NoError(t, err)
		for b := data; len(b) > 0; b = b[min(len(b), 4093):] {
			_, err := ew.Write(b[:min(len(b), 4093)])
			require.NoError(t, err)
		}
		want = append(want, testEntry{Entry: Entry{Path: path}, data: data, wantMethod: method})
	}
	create("result.json", "application/json", text, zip.Deflate)
	create("labels/empty.txt", "text/plain", nil, zip.Deflate)
	packed := []testEntry{
		{Entry: Entry{Path: "images/a.jpg", MIMEType: "image/jpeg", VersionID: 11}, data: testenv.RandomBytes(1, 70<<10), wantMethod: zip.Store},
		{Entry: Entry{Path: "images/b.txt", MIMEType: "text/plain", VersionID: 12}, data: []byte("bee"), wantMethod: zip.Deflate},
	}
	_, err = w.Pack(context.Background(), entriesOf(&tr, packed))
	require.NoError(t, err)
	want = append(want, packed...)
	create("images/c.png", "image/png", testenv.RandomBytes(2, 1000), zip.Store)
	create("classes.txt", "text/plain", []byte("Car\nPerson\n"), zip.Deflate)

	// The last created entry is finished by AddSpool: it must be in the
	// manifest too, so the manifest is written out first.
	require.Len(t, seen, 5, "the last created entry is still open")
	require.NoError(t, w.FinishEntry())
	for _, r := range seen {
		require.NoError(t, mw.Add(ManifestEntry{Path: r.Path, VersionID: r.VersionID, SHA256: r.SHA256, Size: r.Size}))
	}
	require.NoError(t, mw.Close())
	res, err := w.AddSpool(spool)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	tr.requireBalanced(t)

	var mb bytes.Buffer
	m := Manifest{ExportID: 9, ProjectID: 2, ProjectName: "p", Format: "coco", CreatedAt: testModified, LabelqVersion: "test"}
	for _, r := range seen[:6] {
		m.Entries = append(m.Entries, ManifestEntry{Path: r.Path, VersionID: r.VersionID, SHA256: r.SHA256, Size: r.Size})
	}
	direct, err := m.Marshal()
	require.NoError(t, err)
	mb.Write(direct)
	want = append(want, testEntry{Entry: Entry{Path: ManifestPath}, data: mb.Bytes(), wantMethod: zip.Deflate})
	requireArchive(t, buf.Bytes(), want, testModified)

	require.Len(t, seen, len(want))
	require.Equal(t, res, seen[len(seen)-1])
	for i, r := range seen {
		require.Equal(t, want[i].Path, r.Path)
		require.Equal(t, sha256Hex(want[i].data), r.SHA256, "sha256 of %s", r.Path)
		require.Equal(t, int64(len(want[i].data)), r.Size)
	}
	total := w.Result()
	require.Equal(t, len(want), total.Files)
	require.Len(t, total.Entries, len(want))
	var bytesIn int64
	for _, te := range want {
		bytesIn += int64(len(te.data))
	}
	require.Equal(t, bytesIn, total.Bytes)
}

// TestCreateMisuse: writes to a finished entry, reused or unsafe paths and
// entries after Close are refused, and a failed destination poisons the
// writer.
func TestCreateMisuse(t *testing.T) {
	t.Run("write after the next entry started", func(t *testing.T) {
		w := NewWriter(io.Discard, Options{})
		first, err := w.Create("a.txt", "text/plain")
		require.NoError(t, err)
		_, err = w.Create("b.txt", "text/plain")
		require.NoError(t, err)
		_, err = first.Write([]byte("late"))
		require.ErrorContains(t, err, "after the next entry started")
	})
	t.Run("paths are checked like Pack's", func(t *testing.T) {
		w := NewWriter(io.Discard, Options{})
		_, err := w.Create("a/b.txt", "text/plain")
		require.NoError(t, err)
		for _, bad := range []string{"A/B.TXT", "a", "../x", "/abs"} {
			_, err := w.Create(bad, "text/plain")
			require.Error(t, err, bad)
		}
		_, err = w.NewSpool("a/B.txt", ManifestMIME)
		require.ErrorIs(t, err, ErrInvalidEntry)
		s, err := w.NewSpool(ManifestPath, ManifestMIME)
		require.NoError(t, err)
		_, err = w.Create(ManifestPath, "text/plain")
		require.ErrorIs(t, err, ErrInvalidEntry, "the spool's path is reserved")
		s.Release()
	})
	t.Run("after Close", func(t *testing.T) {
		w := NewWriter(io.Discard, Options{})
		require.NoError(t, w.Close())
		_, err := w.Create("a.txt", "text/plain")
		require.Error(t, err)
	})
	t.Run("a failing destination fails every later call", func(t *testing.T) {
		w := NewWriter(&limitedWriter{n: 100}, Options{Level: 1})
		ew, err := w.Create("a.bin", "application/octet-stream")
		require.NoError(t, err)
		var werr error
		for range 1000 {
			if _, werr = ew.Write(testenv.RandomBytes(3, 64<<10)); werr != nil {
				break
			}
		}
		require.Error(t, werr)
		_, err = w.Create("b.txt", "text/plain")
		require.Error(t, err)
		require.Error(t, w.Close())
	})
	t.Run("a spool added twice", func(t *testing.T) {
		w := NewWriter(io.Discard, Options{})
		s, err := w.NewSpool(ManifestPath, ManifestMIME)
		require.NoError(t, err)
		_, err = w.AddSpool(s)
		require.NoError(t, err)
		_, err = w.AddSpool(s)
		require.ErrorContains(t, err, "added twice")
		_, err = s.Write([]byte("x"))
		require.Error(t, err)
	})
}

// TestDiscardResults keeps the totals but no entries.
func TestDiscardResults(t *testing.T) {
	var buf bytes.Buffer
	n := 0
	w := NewWriter(&buf, Options{DiscardResults: true, OnEntry: func(EntryResult) { n++ }})
	for i := range 50 {
		ew, err := w.Create(fmt.Sprintf("labels/%03d.txt", i), "text/plain")
		require.NoError(t, err)
		_, err = ew.Write([]byte("0 0.5 0.5 0.1 0.1\n"))
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
	r := w.Result()
	require.Empty(t, r.Entries)
	require.Equal(t, 50, r.Files)
	require.Equal(t, int64(50*18), r.Bytes)
	require.Equal(t, 50, n)
	requireUnzipTest(t, buf.Bytes())
}

// TestManifestWriterMatchesMarshal: written entry by entry, the manifest has
// the bytes Marshal gives, for no entry, one and several.
func TestManifestWriterMatchesMarshal(t *testing.T) {
	for _, n := range []int{0, 1, 3} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			m := Manifest{ExportID: 1, ProjectID: 2, ProjectName: "p \"q\"", Options: json.RawMessage(`{"include_files":false}`),
				Format: "yolo", CreatedAt: testModified, LabelqVersion: "v"}
			var buf bytes.Buffer
			mw, err := NewManifestWriter(&buf, m)
			require.NoError(t, err)
			for i := range n {
				e := ManifestEntry{Path: fmt.Sprintf("labels/%d.txt", i), FileID: int64(i), VersionID: int64(10 + i), SHA256: strings.Repeat("a", 64), Size: int64(i)}
				m.Entries = append(m.Entries, e)
				require.NoError(t, mw.Add(e))
			}
			require.NoError(t, mw.Close())
			require.Equal(t, n, mw.Entries())
			want, err := m.Marshal()
			require.NoError(t, err)
			require.Equal(t, string(want), buf.String())
		})
	}
	t.Run("a failing destination", func(t *testing.T) {
		mw, err := NewManifestWriter(&limitedWriter{n: 1 << 10}, Manifest{})
		require.NoError(t, err)
		var aerr error
		for i := 0; i < 100 && aerr == nil; i++ {
			aerr = mw.Add(ManifestEntry{Path: "x"})
		}
		require.Error(t, aerr)
		require.True(t, errors.Is(mw.Close(), aerr) || mw.Close() != nil)
	})
}
