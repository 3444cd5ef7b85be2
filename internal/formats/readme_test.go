package formats_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/formats"
	"github.com/labelq/labelq/internal/labelconfig"
)

var updateREADME = flag.Bool("update-readme", false, "rewrite the README's format examples from the converters' output")

// The README's small projects: a detection config (two labels, a choice) with
// one image, and an NER config with one sentence.
const (
	readmeDetection = `{
  "objects": [{"name": "image", "type": "image", "value": "$image"}],
  "controls": [
    {"name": "label", "type": "rectanglelabels", "to_name": "image", "labels": ["Car", "Person"]},
    {"name": "weather", "type": "choices", "to_name": "image", "labels": ["Sunny", "Rain"]}
  ]
}`
	readmeNER = `{
  "objects": [{"name": "text", "type": "text", "value": "$text"}],
  "controls": [
    {"name": "label", "type": "labels", "to_name": "text", "labels": ["PER", "LOC"]},
    {"name": "sentiment", "type": "choices", "to_name": "text", "labels": ["Positive", "Negative"]}
  ]
}`
)

func readmeTasks(t *testing.T) (image, text formats.Task) {
	t.Helper()
	at := time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)
	score := 0.87
	image = formats.Task{
		ID: 41, FileID: 12, VersionID: 40, Filename: "street/a.jpg", StorageKey: "orgs/1/files/12/v1",
		Image: &formats.ImageFacts{Width: 800, Height: 600, Orientation: 1},
		Annotations: []formats.Annotation{{ID: 41, CompletedBy: 7, CreatedAt: at, Result: []labelconfig.Region{
			region(t, `{"id": "r1", "from_name": "label", "to_name": "image", "type": "rectanglelabels", "original_width": 800, "original_height": 600,
				"value": {"x": 10, "y": 20, "width": 30, "height": 40, "rotation": 0, "rectanglelabels": ["Car"]}}`),
			region(t, `{"id": "r2", "from_name": "label", "to_name": "image", "type": "rectanglelabels", "original_width": 800, "original_height": 600,
				"value": {"x": 62.5, "y": 50, "width": 5, "height": 25, "rotation": 0, "rectanglelabels": ["Person"]}}`),
			region(t, `{"id": "c1", "from_name": "weather", "to_name": "image", "type": "choices", "value": {"choices": ["Sunny"]}}`),
		}}},
		Predictions: []formats.Prediction{{ModelVersion: "gpt-4o-mini", Score: &score, Result: []labelconfig.Region{
			region(t, `{"id": "p1", "from_name": "label", "to_name": "image", "type": "rectanglelabels", "original_width": 800, "original_height": 600, "score": 0.87,
				"value": {"x": 11, "y": 19, "width": 29, "height": 41, "rotation": 0, "rectanglelabels": ["Car"]}}`),
		}}},
	}
	sentence := "Angela Merkel visited Paris."
	text = formats.Task{
		ID: 52, FileID: 13, VersionID: 44, Filename: "news/1.txt", StorageKey: "orgs/1/files/13/v1", Text: sentence,
		Annotations: []formats.Annotation{{ID: 52, CompletedBy: 7, CreatedAt: at, Result: []labelconfig.Region{
			spanRegion(t, 0, 13, "Angela Merkel", "PER"),
			spanRegion(t, 22, 27, "Paris", "LOC"),
			region(t, `{"id": "c2", "from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": ["Positive"]}}`),
		}}},
	}
	return image, text
}

// scalarArray is an indented JSON array holding no object or array.
var scalarArray = regexp.MustCompile(`\[[^\[\]{}]*\]`)

// renderExample converts the task in format and returns what the README
// shows: each entry's name and content, JSON documents indented.
func renderExample(t *testing.T, format string, cfg labelconfig.Config, task formats.Task) string {
	t.Helper()
	w := newMemWriter()
	conv, err := formats.New(format, cfg, w)
	require.NoError(t, err)
	require.NoError(t, conv.Add(task))
	if ip, ok := conv.(formats.ImagePass); ok {
		require.NoError(t, ip.AddImage(task))
	}
	require.NoError(t, conv.Close())
	var out strings.Builder
	for _, name := range w.names {
		b := w.bytes(t, name)
		if strings.HasSuffix(name, ".json") {
			var ind bytes.Buffer
			require.NoError(t, json.Indent(&ind, b, "", "  "), "%s of %s", name, format)
			// Arrays of numbers and strings on one line, as a person
			// would write them.
			b = scalarArray.ReplaceAllFunc(bytes.TrimSpace(ind.Bytes()), func(m []byte) []byte {
				return append(append([]byte("["), bytes.Join(bytes.Fields(m[1:len(m)-1]), []byte(" "))...), ']')
			})
			b = append(b, '\n')
		}
		fmt.Fprintf(&out, "==> %s <==\n%s", name, b)
		if !bytes.HasSuffix(b, []byte("\n")) {
			out.WriteString("\n")
		}
	}
	return out.String()
}

// TestREADMEFormatExamples checks every "<!-- format example: X -->" block
// of the README against what the converter writes for the README's sample
// task, so the examples stay true. go test ./internal/formats -run README
// -update-readme rewrites them.
func TestREADMEFormatExamples(t *testing.T) {
	image, text := readmeTasks(t)
	det, ner := config(t, readmeDetection), config(t, readmeNER)
	want := map[string]string{
		"label_studio": renderExample(t, "label_studio", det, image),
		"json_min":     renderExample(t, "json_min", ner, text),
		"csv":          renderExample(t, "csv", ner, text),
		"coco":         renderExample(t, "coco", det, image),
		"yolo":         renderExample(t, "yolo", det, image),
		"voc":          renderExample(t, "voc", det, image),
		"conll2003":    renderExample(t, "conll2003", ner, text),
	}
	path := filepath.Join("..", "..", "README.md")
	readme, err := os.ReadFile(path)
	require.NoError(t, err)
	block := regexp.MustCompile("(?s)(<!-- format example: ([a-z_0-9]+) -->\n```text\n)(.*?)(```\n)")
	seen := map[string]bool{}
	var stale []string
	updated := block.ReplaceAllFunc(readme, func(m []byte) []byte {
		sm := block.FindSubmatch(m)
		format := string(sm[2])
		seen[format] = true
		w, ok := want[format]
		if !ok {
			stale = append(stale, format+" (no such format)")
			return m
		}
		if string(sm[3]) != w {
			stale = append(stale, format)
		}
		return []byte(string(sm[1]) + w + string(sm[4]))
	})
	for format := range want {
		require.True(t, seen[format], "README has no <!-- format example: %s --> block", format)
	}
	if *updateREADME {
		require.NoError(t, os.WriteFile(path, updated, 0o644))
		return
	}
	require.Empty(t, stale, "README format examples differ from the converters' output; run go test ./internal/formats -run README -update-readme")
}
