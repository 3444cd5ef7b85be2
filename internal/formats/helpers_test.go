package formats_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/formats"
	"github.com/labelq/labelq/internal/labelconfig"
)

// memWriter keeps every entry, refusing duplicate names as a ZIP writer
// would.
type memWriter struct {
	names   []string
	entries map[string]*bytes.Buffer
}

func newMemWriter() *memWriter { return &memWriter{entries: map[string]*bytes.Buffer{}} }

func (m *memWriter) Create(name string) (io.Writer, error) {
	if _, ok := m.entries[name]; ok {
		return nil, fmt.Errorf("duplicate entry %q", name)
	}
	b := &bytes.Buffer{}
	m.names = append(m.names, name)
	m.entries[name] = b
	return b, nil
}

func (m *memWriter) bytes(t testing.TB, name string) []byte {
	t.Helper()
	b, ok := m.entries[name]
	require.True(t, ok, "no entry %q (entries: %v)", name, m.names)
	return b.Bytes()
}

// countWriter discards entries, counting them and their bytes.
type countWriter struct {
	entries int
	bytes   int64
}

func (c *countWriter) Create(string) (io.Writer, error) { c.entries++; return c, nil }
func (c *countWriter) Write(p []byte) (int, error)      { c.bytes += int64(len(p)); return len(p), nil }

const detectionConfig = `{
  "objects": [{"name": "image", "type": "image", "value": "$image"}],
  "controls": [
    {"name": "label", "type": "rectanglelabels", "to_name": "image", "labels": ["Airplane", "Car", "Person", "Traffic light"]},
    {"name": "outline", "type": "polygonlabels", "to_name": "image", "labels": ["Road", "Car"]},
    {"name": "point", "type": "keypointlabels", "to_name": "image", "labels": ["Nose"]},
    {"name": "weather", "type": "choices", "to_name": "image", "labels": ["Sunny", "Rain"]},
    {"name": "caption", "type": "textarea", "to_name": "image"}
  ]
}`

const nerConfig = `{
  "objects": [{"name": "text", "type": "text", "value": "$text"}],
  "controls": [
    {"name": "label", "type": "labels", "to_name": "text", "labels": ["PER", "ORG", "LOC", "Proper noun"]},
    {"name": "sentiment", "type": "choices", "to_name": "text", "labels": ["Positive", "Negative"]}
  ]
}`

func config(t testing.TB, s string) labelconfig.Config {
	t.Helper()
	c, err := labelconfig.Parse([]byte(s))
	require.NoError(t, err)
	return c
}

func region(t testing.TB, s string) labelconfig.Region {
	t.Helper()
	var r labelconfig.Region
	require.NoError(t, json.Unmarshal([]byte(s), &r))
	return r
}

// box is a generated rectangle with what the test expects of it.
type box struct {
	x, y, w, h float64 // percent
	label      string
	W, H       float64 // the displayed image size it refers to
}

// genImageTask makes task i of a generated detection set: an image of a
// random size and nBoxes random boxes (plus, with polygons, one polygon) in
// its latest annotation, and an older annotation that must not be exported.
// The pixel size reaches the converter four ways, by i % 4: on the regions
// only, as image facts only, as facts of an image stored turned a quarter
// (EXIF orientation 6), and both.
func genImageTask(rng *rand.Rand, i int, nBoxes int, polygons bool) (formats.Task, []box) {
	labels := []string{"Airplane", "Car", "Person", "Traffic light"}
	W, H := 100+rng.IntN(7900), 100+rng.IntN(7900)
	t := formats.Task{
		ID: int64(1000 + i), FileID: int64(i + 1), VersionID: int64(5000 + i),
		Filename: fmt.Sprintf("img_%06d.jpg", i), StorageKey: fmt.Sprintf("orgs/1/files/%d", i+1),
	}
	var origW, origH int
	switch i % 4 {
	case 0:
		origW, origH = W, H
	case 1:
		t.Image = &formats.ImageFacts{Width: W, Height: H, Orientation: 1}
	case 2:
		t.Image = &formats.ImageFacts{Width: H, Height: W, Orientation: 6}
	case 3:
		origW, origH = W, H
		t.Image = &formats.ImageFacts{Width: W, Height: H}
	}
	var boxes []box
	var result []labelconfig.Region
	for j := range nBoxes {
		b := box{x: rng.Float64() * 95, y: rng.Float64() * 95, label: labels[rng.IntN(len(labels))], W: float64(W), H: float64(H)}
		b.w = 0.01 + rng.Float64()*(100-b.x-0.01)
		b.h = 0.01 + rng.Float64()*(100-b.y-0.01)
		boxes = append(boxes, b)
		v := boxValue(b)
		result = append(result, labelconfig.Region{
			ID: fmt.Sprintf("b%d", j), FromName: "label", ToName: "image", Type: labelconfig.RectangleLabels,
			Value: v, OriginalWidth: origW, OriginalHeight: origH,
		})
	}
	if polygons {
		pts := [][2]float64{{rng.Float64() * 50, rng.Float64() * 50}, {50 + rng.Float64()*50, rng.Float64() * 50}, {rng.Float64() * 100, 50 + rng.Float64()*50}}
		v, _ := json.Marshal(map[string]any{"points": pts, "polygonlabels": []string{"Road"}})
		result = append(result, labelconfig.Region{ID: "p", FromName: "outline", ToName: "image", Type: labelconfig.PolygonLabels,
			Value: v, OriginalWidth: origW, OriginalHeight: origH})
	}
	result = append(result,
		labelconfig.Region{ID: "c", FromName: "weather", ToName: "image", Type: labelconfig.Choices, Value: json.RawMessage(`{"choices":["Rain"]}`)},
		labelconfig.Region{ID: "k", FromName: "point", ToName: "image", Type: labelconfig.KeyPointLabels, Value: json.RawMessage(`{"x":5,"y":5,"keypointlabels":["Nose"]}`)},
	)
	created := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)
	old := labelconfig.Region{ID: "old", FromName: "label", ToName: "image", Type: labelconfig.RectangleLabels,
		Value: json.RawMessage(`{"x":1,"y":1,"width":1,"height":1,"rectanglelabels":["Airplane"]}`), OriginalWidth: W, OriginalHeight: H}
	// The older annotation comes last, so the export must pick by time.
	t.Annotations = []formats.Annotation{
		{ID: int64(2*i + 2), CompletedBy: 7, Result: result, CreatedAt: created.Add(time.Hour)},
		{ID: int64(2*i + 1), CompletedBy: 8, Result: []labelconfig.Region{old}, CreatedAt: created},
	}
	return t, boxes
}

// boxValue is a rectangle's value JSON, built without reflection: the memory
// test makes millions.
func boxValue(b box) json.RawMessage {
	v := make([]byte, 0, 128)
	for i, f := range []float64{b.x, b.y, b.w, b.h} {
		v = append(v, []string{`{"x":`, `,"y":`, `,"width":`, `,"height":`}[i]...)
		v = strconv.AppendFloat(v, f, 'g', -1, 64)
	}
	v = append(v, `,"rotation":0,"rectanglelabels":["`...)
	v = append(v, b.label...)
	return append(v, `"]}`...)
}

func requireNear(t *testing.T, want, got float64, what string, args ...any) {
	t.Helper()
	if d := want - got; d > 0.01 || d < -0.01 {
		require.Failf(t, "off by more than 0.01 px", "%s: want %.6f, got %.6f", fmt.Sprintf(what, args...), want, got)
	}
}
