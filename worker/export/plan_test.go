package export

import (
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/zipstream"
)

func TestParseSelection(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in      string
		want    string
		wantErr string
	}{
		{``, `{"include_files":true,"include_annotations":true,"include_llm":false,"include_consensus":false}`, ""},
		{`{}`, `{"include_files":true,"include_annotations":true,"include_llm":false,"include_consensus":false}`, ""},
		{`{"include_llm":true}`, `{"include_files":true,"include_annotations":true,"include_llm":true,"include_consensus":false}`, ""},
		{`{"include_files":false,"include_annotations":false}`, ``, "include nothing"},
		{`{"include_files":false,"include_annotations":false,"include_llm":true}`, `{"include_files":false,"include_annotations":false,"include_llm":true,"include_consensus":false}`, ""},
		{`{"include_files":false,"include_annotations":false,"include_consensus":true}`, `{"include_files":false,"include_annotations":false,"include_llm":false,"include_consensus":true}`, ""},
		{`{"include_consensus":1}`, ``, "not a JSON object"},
		{`{"include_files":"yes"}`, ``, "not a JSON object"},
		{`[]`, ``, "not a JSON object"},
	}
	for _, tc := range cases {
		s, err := parseSelection(json.RawMessage(tc.in))
		if tc.wantErr != "" {
			require.ErrorContains(t, err, tc.wantErr, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		b, _ := json.Marshal(s)
		require.JSONEq(t, tc.want, string(b), tc.in)
	}
}

func row(kind string, id int64, name string, status db.ValidationStatus, size int64) db.FileVersionListForExportRow {
	sum := "ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
	mime := "text/plain"
	r := db.FileVersionListForExportRow{
		Kind: kind, ID: id, FileID: id * 10, VersionNumber: 1, StoragePath: "k/" + name, FileName: name,
		ValidationStatus: status, MimeType: &mime,
	}
	if status == db.ValidationStatusValid {
		r.Checksum, r.SizeBytes = &sum, &size
	}
	return r
}

// TestBuildPlan: the order is folder, bytewise name, version id, whatever
// order the rows come in; duplicates of a name get suffixes in that order;
// versions that are not valid are counted, not packed; a version appears once.
func TestBuildPlan(t *testing.T) {
	t.Parallel()
	rows := []db.FileVersionListForExportRow{
		row("llm", 9, "b.txt.llm.json", db.ValidationStatusValid, 3),
		row("files", 5, "b.txt", db.ValidationStatusValid, 10),
		row("files", 4, "a.txt", db.ValidationStatusValid, 20),
		row("files", 3, "a.txt", db.ValidationStatusValid, 30), // an older version with an approved job too
		row("annotations", 7, "A.txt", db.ValidationStatusValid, 1),
		row("annotations", 8, "pending.json", db.ValidationStatusPending, 0),
		row("annotations", 5, "b.txt", db.ValidationStatusValid, 10), // same version as files/b.txt
	}
	e := db.ExportLog{ID: 42, RequestedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	pr := db.Project{ID: 7, Name: "demo"}
	sel, err := parseSelection(nil)
	require.NoError(t, err)
	p, err := buildPlan(e, pr, sel, rows, "v1")
	require.NoError(t, err)

	var got []string
	for _, it := range p.items {
		got = append(got, it.path)
	}
	require.Equal(t, []string{
		"annotations/A.txt", "annotations/b.txt", "files/a.txt", "files/a (2).txt", "llm/b.txt.llm.json",
	}, got)
	require.Equal(t, int64(3), p.items[2].versionID, "the lower version id keeps the name")
	require.Equal(t, []skipped{{versionID: 8, status: db.ValidationStatusPending}}, p.skipped)
	require.Equal(t, int64(1+10+30+20+3), p.bytes)
	require.Equal(t, "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789", p.items[0].sha256, "checksums are compared in lower case")

	manifest, err := p.manifestBytes()
	require.NoError(t, err)
	require.Equal(t, p.manifest.size, int64(len(manifest)))
	require.Equal(t, p.manifest.sha256, sha256Hex(manifest))
	var m zipstream.Manifest
	require.NoError(t, json.Unmarshal(manifest, &m))
	require.Equal(t, int64(42), m.ExportID)
	require.Equal(t, "demo", m.ProjectName)
	require.Equal(t, "v1", m.LabelqVersion)
	require.True(t, m.CreatedAt.Equal(e.RequestedAt))
	require.Len(t, m.Entries, 5)

	entries := p.entries(func(item) zipstream.Opener { return nil })
	require.Len(t, entries, 7)
	require.Equal(t, zipstream.ManifestPath, entries[0].Path)
	require.Equal(t, zipstream.IndexPath, entries[6].Path)
	// The generated entries open to the bytes they were measured with.
	for _, g := range []zipstream.Entry{entries[0], entries[6]} {
		rc, err := g.Open(context.Background())
		require.NoError(t, err)
		b, err := io.ReadAll(rc)
		require.NoError(t, err)
		require.Equal(t, g.Size, int64(len(b)), g.Path)
		require.Equal(t, g.SHA256, sha256Hex(b), g.Path)
	}

	// The same rows in another order give the same bytes.
	rev := append([]db.FileVersionListForExportRow(nil), rows...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	q, err := buildPlan(e, pr, sel, rev, "v1")
	require.NoError(t, err)
	require.Equal(t, p.manifest.sha256, q.manifest.sha256)
	require.Equal(t, p.index.sha256, q.index.sha256)

	// Progress counts file versions only.
	files, bytes := p.filesDone(zipstream.Progress{FilesDone: 0, BytesDone: 0})
	require.Equal(t, int32(0), files)
	require.Equal(t, int64(0), bytes)
	files, bytes = p.filesDone(zipstream.Progress{FilesDone: 3, BytesDone: p.manifest.size + 11})
	require.Equal(t, int32(2), files)
	require.Equal(t, int64(11), bytes)
	files, bytes = p.filesDone(zipstream.Progress{FilesDone: 7, BytesDone: p.manifest.size + p.index.size + p.bytes})
	require.Equal(t, int32(5), files)
	require.Equal(t, p.bytes, bytes)
}

// TestBuildPlanConsensus: consensus results go under consensus/, between
// annotations/ and files/ (folders in alphabetical order), named like any
// other packed version, and the manifest's options say they were asked for.
func TestBuildPlanConsensus(t *testing.T) {
	t.Parallel()
	rows := []db.FileVersionListForExportRow{
		row("files", 2, "a.txt", db.ValidationStatusValid, 5),
		row("consensus", 6, "a.txt.consensus.json", db.ValidationStatusValid, 7),
		row("annotations", 4, "a.json", db.ValidationStatusValid, 3),
		row("consensus", 8, "b.txt.consensus.json", db.ValidationStatusPending, 0),
	}
	sel, err := parseSelection([]byte(`{"include_consensus":true}`))
	require.NoError(t, err)
	p, err := buildPlan(db.ExportLog{ID: 1}, db.Project{ID: 2}, sel, rows, "v1")
	require.NoError(t, err)
	var got []string
	for _, it := range p.items {
		got = append(got, it.path)
	}
	require.Equal(t, []string{"annotations/a.json", "consensus/a.txt.consensus.json", "files/a.txt"}, got)
	require.Equal(t, []skipped{{versionID: 8, status: db.ValidationStatusPending}}, p.skipped)
	b, err := p.manifestBytes()
	require.NoError(t, err)
	var m zipstream.Manifest
	require.NoError(t, json.Unmarshal(b, &m))
	require.JSONEq(t, `{"include_files":true,"include_annotations":true,"include_llm":false,"include_consensus":true}`, string(m.Options))
	require.Equal(t, "consensus/a.txt.consensus.json", m.Entries[1].Path)
	require.Equal(t, int64(6), m.Entries[1].VersionID)
	require.Equal(t, int64(7), m.Entries[1].Size)
}

func TestPartSize(t *testing.T) {
	t.Parallel()
	const gib = 1 << 30
	small := &plan{items: []item{{size: gib, path: "files/a"}}, manifest: generated{size: 1000}, index: generated{size: 500}}
	require.Equal(t, uint64(DefaultPartSize), partSize(small, DefaultPartSize))
	huge := &plan{items: make([]item, 200)}
	for i := range huge.items {
		huge.items[i] = item{size: gib, path: "files/x"}
	}
	ps := partSize(huge, DefaultPartSize)
	require.Greater(t, ps, uint64(DefaultPartSize))
	require.Zero(t, ps%(1<<20), "whole MiB")
	require.LessOrEqual(t, uint64(200*gib)/ps, uint64(maxParts-1), "200 GiB fits in 10,000 parts")
}
