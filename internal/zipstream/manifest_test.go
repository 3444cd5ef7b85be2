package zipstream

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestManifestMarshal(t *testing.T) {
	m := Manifest{
		ExportID:      12,
		ProjectID:     34,
		ProjectName:   "Street scenes",
		Options:       json.RawMessage(`{ "include": ["files", "annotations"],  "llm": false }`),
		CreatedAt:     time.Date(2025, 1, 2, 4, 4, 5, 0, time.FixedZone("CET", 3600)),
		LabelqVersion: "v1.2.3",
		Entries: []ManifestEntry{
			{Path: "files/a.jpg", FileID: 1, VersionID: 10, VersionNumber: 2, SHA256: strings.Repeat("ab", 32), Size: 100, MIMEType: "image/jpeg"},
		},
	}
	b, err := m.Marshal()
	require.NoError(t, err)
	again, err := m.Marshal()
	require.NoError(t, err)
	require.Equal(t, b, again)
	require.True(t, bytes.HasSuffix(b, []byte("}\n")))

	var back map[string]any
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, "2025-01-02T03:04:05Z", back["created_at"], "created_at is written in UTC")
	require.Equal(t, map[string]any{"include": []any{"files", "annotations"}, "llm": false}, back["options"])
	require.Equal(t, float64(12), back["export_id"])
	require.Equal(t, "Street scenes", back["project_name"])
	require.Equal(t, "v1.2.3", back["labelq_version"])
	require.Equal(t, []any{map[string]any{
		"path": "files/a.jpg", "file_id": float64(1), "version_id": float64(10), "version_number": float64(2),
		"sha256": strings.Repeat("ab", 32), "size": float64(100), "mime_type": "image/jpeg",
	}}, back["entries"])
	m.Options = json.RawMessage(`{"include":["files","annotations"],"llm":false}`)
	same, err := m.Marshal()
	require.NoError(t, err)
	require.Equal(t, string(b), string(same), "formatting of options does not matter")

	empty, err := (&Manifest{}).Marshal()
	require.NoError(t, err)
	require.Contains(t, string(empty), `"entries": []`)
	require.NotContains(t, string(empty), `"options"`)

	_, err = (&Manifest{Options: json.RawMessage(`{nope`)}).Marshal()
	require.Error(t, err)
}

func TestIndexCSV(t *testing.T) {
	rows := []IndexRow{
		{Path: "files/a.jpg", FileID: 1, FileName: "a.jpg", VersionID: 10, VersionNumber: 1, SHA256: strings.Repeat("0", 64), Size: 5, MIMEType: "image/jpeg"},
		{Path: "files/=cmd.csv", FileID: 2, FileName: "=cmd|' /C calc'!A0", VersionID: 11, VersionNumber: 3, Size: 0, MIMEType: "text/csv"},
		{Path: "files/x", FileID: 3, FileName: "+1", VersionID: 12, VersionNumber: 1, Size: 1, MIMEType: "text/plain"},
		{Path: "files/y", FileID: 4, FileName: "-2+3", VersionID: 13, VersionNumber: 1, Size: 1},
		{Path: "files/z", FileID: 5, FileName: "@SUM(A1)", VersionID: 14, VersionNumber: 1, Size: 1},
		{Path: "files/t", FileID: 6, FileName: "\tTAB", VersionID: 15, VersionNumber: 1, Size: 1},
		{Path: "files/q", FileID: 7, FileName: "comma, \"quote\"\nnewline", VersionID: 16, VersionNumber: 1, Size: 1},
		{Path: "files/ü", FileID: 8, FileName: "naïve ünïcode.txt", VersionID: 17, VersionNumber: 1, Size: 1},
	}
	b, err := IndexCSV(rows)
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(b, []byte("\ufeffpath,")), "BOM then header")
	require.Contains(t, string(b), "\r\n")

	recs, err := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(b, []byte("\ufeff")))).ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, len(rows)+1)
	require.Equal(t, []string{"path", "file_id", "file_name", "version_id", "version_number", "sha256", "size", "mime_type"}, recs[0])
	require.Equal(t, []string{"files/a.jpg", "1", "a.jpg", "10", "1", strings.Repeat("0", 64), "5", "image/jpeg"}, recs[1])
	require.Equal(t, "'=cmd|' /C calc'!A0", recs[2][2])
	require.Equal(t, "'+1", recs[3][2])
	require.Equal(t, "'-2+3", recs[4][2])
	require.Equal(t, "'@SUM(A1)", recs[5][2])
	require.Equal(t, "'\tTAB", recs[6][2])
	require.Equal(t, "comma, \"quote\"\nnewline", recs[7][2], "quoted cell survives")
	require.Equal(t, "naïve ünïcode.txt", recs[8][2])
	for _, rec := range recs[1:] {
		for _, cell := range rec {
			if cell != "" {
				require.NotContains(t, "=+-@\t\r", string(cell[0]), "cell %q starts a formula", cell)
			}
		}
	}

	empty, err := IndexCSV(nil)
	require.NoError(t, err)
	require.Equal(t, "\ufeffpath,file_id,file_name,version_id,version_number,sha256,size,mime_type\r\n", string(empty))
}
