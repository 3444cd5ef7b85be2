package export_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/formats"
	"github.com/labelq/labelq/internal/tasks"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/internal/zipstream"
	"github.com/labelq/labelq/worker/export"
)

// Label configs of the converted-export tests.
const (
	detectionConfig = `{"objects": [{"name": "image", "type": "image", "value": "$image"}],
	  "controls": [
	    {"name": "label", "type": "rectanglelabels", "to_name": "image", "labels": ["Car", "Person", "Traffic light"]},
	    {"name": "outline", "type": "polygonlabels", "to_name": "image", "labels": ["Road"]},
	    {"name": "weather", "type": "choices", "to_name": "image", "labels": ["Sunny", "Rain"]}]}`
	nerConfig = `{"objects": [{"name": "text", "type": "text", "value": "$text"}],
	  "controls": [{"name": "label", "type": "labels", "to_name": "text", "labels": ["PER", "ORG", "LOC"]}]}`
)

// setLabelConfig stores the project's label config, as PUT
// /v1/projects/{id}/label-config does.
func (f *fixture) setLabelConfig(cfg string) {
	f.t.Helper()
	var raw any
	if cfg != "" {
		raw = json.RawMessage(cfg)
	}
	_, err := f.pg.Pool.Exec(context.Background(), `UPDATE projects SET label_config = $2 WHERE id = $1`, f.pr.ID, raw)
	require.NoError(f.t, err)
}

// image is a valid dataset version with the image facts file:validate would
// have recorded (set directly: the bytes are random, not a real image).
func (f *fixture) image(name string, width, height, orientation int) version {
	f.t.Helper()
	v := f.dataset(name, testenv.RandomBytes(uint64(len(name))*7919+uint64(width), 3000+width), "image/jpeg")
	_, err := f.pg.Pool.Exec(context.Background(),
		`UPDATE file_versions SET image_width = $2, image_height = $3, image_orientation = $4 WHERE id = $1`,
		v.ID, width, height, orientation)
	require.NoError(f.t, err)
	return v
}

// prediction stores a model output made from src under a file of its own.
func (f *fixture) prediction(src version, name string, content []byte) version {
	f.t.Helper()
	fl := f.file(name, db.FileTypeLlmOutput)
	sum, size, mime, model := testenv.SHA256Hex(content), int64(len(content)), "application/json", "stored-model"
	v, err := f.pg.Q.FileVersionCreateLLMOutput(context.Background(), db.FileVersionCreateLLMOutputParams{
		OrgID: f.org.ID, ProjectID: f.pr.ID, FileID: fl.ID, StoragePath: f.put(content), Checksum: &sum,
		SizeBytes: &size, MimeType: &mime, SourceFileVersionID: &src.ID, LlmModel: &model, LlmParams: json.RawMessage(`{}`),
	})
	require.NoError(f.t, err)
	return version{FileVersion: v, File: fl, Content: content}
}

// newFormatExport requests an export in format with the given options, as
// the API stores it.
func (f *fixture) newFormatExport(format, options string) db.ExportLog {
	f.t.Helper()
	e, err := f.pg.Q.ExportLogCreate(context.Background(), db.ExportLogCreateParams{
		OrgID: f.org.ID, ProjectID: f.pr.ID, Options: json.RawMessage(options), Format: &format,
	})
	require.NoError(f.t, err)
	return e
}

// exportFormat runs a new export in format to completion and opens it.
func (f *fixture) exportFormat(format, options string) *archive {
	f.t.Helper()
	e := f.newFormatExport(format, options)
	require.NoError(f.t, f.run(context.Background(), f.handler(export.Options{}), e.ID))
	return f.convertedArchive(e.ID)
}

// convertedArchive checks that a converted export completed, that its row
// describes the object in the bucket, and that the object is a sound ZIP
// (Go's reader and Info-ZIP's unzip -t) whose manifest, last, lists every
// other entry in archive order with the SHA-256 and size of its bytes.
func (f *fixture) convertedArchive(id int64) *archive {
	f.t.Helper()
	e := f.row(id)
	require.Equal(f.t, db.ExportStatusCompleted, e.Status, "error: %v", e.Error)
	require.NotEqual(f.t, "labelq", e.Format)
	require.Nil(f.t, e.Error)
	raw := f.download(*e.StoragePath)
	require.Equal(f.t, testenv.SHA256Hex(raw), *e.ArchiveSha256)
	require.Equal(f.t, int64(len(raw)), *e.SizeBytes)
	require.Equal(f.t, e.FilesTotal, e.FilesDone)
	require.Equal(f.t, e.BytesTotal, e.BytesDone)
	unzipTest(f.t, raw)

	zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	require.NoError(f.t, err)
	a := &archive{raw: raw, zr: zr}
	last := zr.File[len(zr.File)-1]
	require.Equal(f.t, zipstream.ManifestPath, last.Name, "the manifest of a converted export comes last")
	require.NoError(f.t, json.Unmarshal(a.read(zipstream.ManifestPath), &a.manifest))
	require.Equal(f.t, id, a.manifest.ExportID)
	require.Equal(f.t, e.Format, a.manifest.Format)
	require.Equal(f.t, "test", a.manifest.LabelqVersion)
	// The manifest says what was exported: the row's options with the
	// format's defaults filled in.
	var asked, got tasks.ExportOptions
	require.NoError(f.t, json.Unmarshal(e.Options, &asked))
	require.NoError(f.t, json.Unmarshal(a.manifest.Options, &got))
	files, annotations, llm := formats.Defaults(e.Format, asked.IncludeFiles, asked.IncludeAnnotations, asked.IncludeLLM)
	require.Equal(f.t, []*bool{&files, &annotations, &llm}, []*bool{got.IncludeFiles, got.IncludeAnnotations, got.IncludeLLM}, "manifest options")
	require.Len(f.t, a.manifest.Entries, len(zr.File)-1, "one manifest entry per other entry")
	images := map[string]int64{}
	for i, m := range a.manifest.Entries {
		require.Equal(f.t, zr.File[i].Name, m.Path, "manifest order is archive order")
		b := a.read(m.Path)
		require.Equal(f.t, testenv.SHA256Hex(b), m.SHA256, "manifest sha256 of %s", m.Path)
		require.Equal(f.t, int64(len(b)), m.Size, "manifest size of %s", m.Path)
		require.NotEmpty(f.t, m.MIMEType, m.Path)
		if m.VersionID != 0 {
			images[m.Path] = m.VersionID
		}
	}
	require.Equal(f.t, images, f.exportedFiles(id), "exported_files names the packed images")
	require.Equal(f.t, 1, f.events(id)[export.EventExported], "one exported event")
	return a
}

// jsonOf decodes an archive entry.
func (a *archive) jsonOf(t testing.TB, name string, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(a.read(name), v), "decode %s", name)
}

// has reports whether the archive holds an entry.
func (a *archive) has(name string) bool {
	for _, zf := range a.zr.File {
		if zf.Name == name {
			return true
		}
	}
	return false
}

// box is a Label Studio rectangle in percent of the image.
type box struct {
	X, Y, W, H float64
	Label      string
	// Original, when set, is the size the region records
	// (original_width/original_height); else the image facts give it.
	OrigW, OrigH int
}

func (b box) region(id string) map[string]any {
	r := map[string]any{
		"id": id, "from_name": "label", "to_name": "image", "type": "rectanglelabels",
		"value": map[string]any{"x": b.X, "y": b.Y, "width": b.W, "height": b.H, "rotation": 0, "rectanglelabels": []string{b.Label}},
	}
	if b.OrigW > 0 {
		r["original_width"], r["original_height"] = b.OrigW, b.OrigH
	}
	return r
}

// boxesResult is a Label Studio result of boxes, and extra regions.
func boxesResult(t testing.TB, boxes []box, extra ...map[string]any) []byte {
	t.Helper()
	var regions []map[string]any
	for i, b := range boxes {
		regions = append(regions, b.region(fmt.Sprintf("r%d", i)))
	}
	regions = append(regions, extra...)
	out, err := json.Marshal(regions)
	require.NoError(t, err)
	return out
}
