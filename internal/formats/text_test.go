package formats_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/formats"
	"github.com/labelq/labelq/internal/labelconfig"
)

func spanRegion(t testing.TB, start, end int, text, label string) labelconfig.Region {
	t.Helper()
	v, _ := json.Marshal(map[string]any{"start": start, "end": end, "text": text, "labels": []string{label}})
	return labelconfig.Region{ID: fmt.Sprintf("s%d", start), FromName: "label", ToName: "text", Type: labelconfig.Labels, Value: v}
}

func TestCoNLLTagsEqualTheSpans(t *testing.T) {
	cfg := config(t, nerConfig)
	words := []string{"Jane", "Smith", "works", "at", "Acme", "in", "Paris", "Zoë", "😀", "naïve", "東京", "co-op", "U.S.", "$3.99"}
	labels := []string{"PER", "ORG", "LOC", "Proper noun"}
	rng := rand.New(rand.NewPCG(11, 12))
	w := newMemWriter()
	conv, err := formats.New("conll2003", cfg, w)
	require.NoError(t, err)
	var wantTokens, wantTags [][]string
	for i := range 200 {
		n := 1 + rng.IntN(30)
		toks := make([]string, n)
		starts := make([]int, n) // code points
		var text strings.Builder
		cp := 0
		for j := range toks {
			if j > 0 {
				sep := []string{" ", "  ", "\n", "\t", " \u00a0"}[rng.IntN(5)]
				text.WriteString(sep)
				cp += utf8.RuneCountInString(sep)
			}
			toks[j] = words[rng.IntN(len(words))]
			starts[j] = cp
			text.WriteString(toks[j])
			cp += utf8.RuneCountInString(toks[j])
		}
		tags := make([]string, n)
		for j := range tags {
			tags[j] = "O"
		}
		var result []labelconfig.Region
		for j := 0; j < n; {
			if rng.IntN(3) > 0 {
				j++
				continue
			}
			k := j + 1 + rng.IntN(min(3, n-j)) // a span over tokens j..k-1
			k = min(k, n)
			label := labels[rng.IntN(len(labels))]
			end := starts[k-1] + utf8.RuneCountInString(toks[k-1])
			tag := strings.ReplaceAll(label, " ", "_")
			for x := j; x < k; x++ {
				tags[x] = "I-" + tag
			}
			tags[j] = "B-" + tag
			result = append(result, spanRegion(t, starts[j], end, "", label))
			j = k
		}
		rng.Shuffle(len(result), func(a, b int) { result[a], result[b] = result[b], result[a] })
		task := formats.Task{ID: int64(i + 1), Text: text.String(), Annotations: []formats.Annotation{{ID: 1, Result: result}}}
		require.NoError(t, cfg.Validate(result, task.Text), "the generated spans are valid")
		require.NoError(t, conv.Add(task))
		wantTokens = append(wantTokens, toks)
		wantTags = append(wantTags, tags)
	}
	require.NoError(t, conv.Close())

	out := string(w.bytes(t, formats.ResultCoNLL))
	require.True(t, strings.HasPrefix(out, "-DOCSTART- -X- O\n"), "Label Studio's header")
	docs := strings.Split(strings.TrimPrefix(out, "-DOCSTART- -X- O\n"), "\n\n")
	require.Equal(t, "", docs[len(docs)-1], "every task ends with a blank line")
	docs = docs[:len(docs)-1]
	require.Len(t, docs, 200)
	for i, d := range docs {
		lines := strings.Split(d, "\n")
		require.Len(t, lines, len(wantTokens[i]), "task %d", i)
		for j, l := range lines {
			f := strings.Split(l, " ")
			require.Len(t, f, 4, "task %d line %q", i, l)
			require.Equal(t, wantTokens[i][j], f[0], "task %d token %d", i, j)
			require.Equal(t, "-X-", f[1])
			require.Equal(t, "_", f[2])
			require.Equal(t, wantTags[i][j], f[3], "task %d token %d (%s)", i, j, f[0])
		}
	}
}

func TestCoNLLTagsTokensASpanTouches(t *testing.T) {
	cfg := config(t, nerConfig)
	w := newMemWriter()
	conv, _ := formats.New("conll2003", cfg, w)
	text := "We gave Jane Smith the ball."
	// Label Studio's converter tests: a span inside a token ("ane") tags the
	// token; one with surrounding spaces (" Jane Smith ") tags its tokens.
	require.NoError(t, conv.Add(formats.Task{ID: 1, Text: text, Annotations: []formats.Annotation{{Result: []labelconfig.Region{spanRegion(t, 9, 12, "ane", "PER")}}}}))
	require.NoError(t, conv.Add(formats.Task{ID: 2, Text: text, Annotations: []formats.Annotation{{Result: []labelconfig.Region{spanRegion(t, 7, 19, " Jane Smith ", "PER")}}}}))
	// Two spans back to back are two entities; an empty text is an empty sentence.
	require.NoError(t, conv.Add(formats.Task{ID: 3, Text: "Acme Paris", Annotations: []formats.Annotation{{Result: []labelconfig.Region{
		spanRegion(t, 5, 10, "Paris", "LOC"), spanRegion(t, 0, 4, "Acme", "ORG")}}}}))
	require.NoError(t, conv.Add(formats.Task{ID: 4}))
	require.NoError(t, conv.Close())
	require.Equal(t, "-DOCSTART- -X- O\n"+
		"We -X- _ O\ngave -X- _ O\nJane -X- _ B-PER\nSmith -X- _ O\nthe -X- _ O\nball. -X- _ O\n\n"+
		"We -X- _ O\ngave -X- _ O\nJane -X- _ B-PER\nSmith -X- _ I-PER\nthe -X- _ O\nball. -X- _ O\n\n"+
		"Acme -X- _ B-ORG\nParis -X- _ B-LOC\n\n"+
		"\n", string(w.bytes(t, formats.ResultCoNLL)))
}

func nerTask(t testing.TB) formats.Task {
	created := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	return formats.Task{ID: 7, FileID: 5, VersionID: 9, Filename: "doc.txt", Text: "Jane Smith works at Acme.",
		Annotations: []formats.Annotation{
			{ID: 1, CompletedBy: 3, CreatedAt: created, Result: []labelconfig.Region{spanRegion(t, 0, 4, "Jane", "PER")}},
			{ID: 2, CompletedBy: 4, CreatedAt: created.Add(time.Minute), Result: []labelconfig.Region{
				spanRegion(t, 0, 10, "Jane Smith", "PER"),
				spanRegion(t, 20, 24, "Acme", "ORG"),
				{ID: "c", FromName: "sentiment", ToName: "text", Type: labelconfig.Choices, Value: json.RawMessage(`{"choices": ["Positive"]}`)},
				{ID: "gone", FromName: "old_control", ToName: "text", Type: labelconfig.Choices, Value: json.RawMessage(`{"choices": ["x"]}`)},
			}},
		}}
}

func TestJSONMinFlattensTheLatestAnnotationLikeLabelStudio(t *testing.T) {
	w := newMemWriter()
	conv, err := formats.New("json_min", config(t, nerConfig), w)
	require.NoError(t, err)
	require.NoError(t, conv.Add(nerTask(t)))
	require.NoError(t, conv.Add(formats.Task{ID: 8, Text: "Nothing yet."}))
	require.NoError(t, conv.Close())
	require.JSONEq(t, `[
	  {"text": "Jane Smith works at Acme.", "id": 7,
	   "label": [{"start": 0, "end": 10, "text": "Jane Smith", "labels": ["PER"]}, {"start": 20, "end": 24, "text": "Acme", "labels": ["ORG"]}],
	   "sentiment": "Positive",
	   "annotator": 4, "annotation_id": 2, "created_at": "2025-01-02T03:05:05Z"},
	  {"text": "Nothing yet.", "id": 8, "annotator": null, "annotation_id": null, "created_at": null}
	]`, string(w.bytes(t, formats.ResultJSON)))

	// Images: boxes carry the original size; a lone choice and a lone
	// textarea line are plain strings; several choices stay a list.
	w = newMemWriter()
	cfg := config(t, `{"objects": [{"name": "image", "type": "image", "value": "$image"}], "controls": [
		{"name": "label", "type": "rectanglelabels", "to_name": "image", "labels": ["Car"]},
		{"name": "tags", "type": "choices", "to_name": "image", "choice": "multiple", "labels": ["A", "B"]},
		{"name": "caption", "type": "textarea", "to_name": "image"}]}`)
	conv, _ = formats.New("json_min", cfg, w)
	require.NoError(t, conv.Add(formats.Task{ID: 1, Filename: "a.jpg", Annotations: []formats.Annotation{{ID: 5, CompletedBy: 2, Result: []labelconfig.Region{
		region(t, `{"from_name": "label", "to_name": "image", "type": "rectanglelabels", "original_width": 800, "original_height": 600,
			"value": {"x": 1, "y": 2, "width": 3, "height": 4, "rotation": 0, "rectanglelabels": ["Car"]}}`),
		region(t, `{"from_name": "tags", "to_name": "image", "type": "choices", "value": {"choices": ["A", "B"]}}`),
		region(t, `{"from_name": "caption", "to_name": "image", "type": "textarea", "value": {"text": ["a car"]}}`),
	}}}}))
	require.NoError(t, conv.Close())
	require.JSONEq(t, `[{"image": "images/a.jpg", "id": 1,
		"label": [{"x": 1, "y": 2, "width": 3, "height": 4, "rotation": 0, "rectanglelabels": ["Car"], "original_width": 800, "original_height": 600}],
		"tags": {"choices": ["A", "B"]}, "caption": "a car",
		"annotator": 2, "annotation_id": 5, "created_at": null}]`, string(w.bytes(t, formats.ResultJSON)))
}

func TestCSVHasARowPerTaskWithLabelStudiosColumns(t *testing.T) {
	w := newMemWriter()
	conv, err := formats.New("csv", config(t, nerConfig), w)
	require.NoError(t, err)
	task := nerTask(t)
	task.Text = "Jane Smith works at Acme, \"quoted\"\nnext line."
	require.NoError(t, conv.Add(task))
	require.NoError(t, conv.Add(formats.Task{ID: 8, Text: "=1+1"}))
	require.NoError(t, conv.Close())

	rows, err := csv.NewReader(bytes.NewReader(w.bytes(t, formats.ResultCSV))).ReadAll()
	require.NoError(t, err)
	require.Equal(t, []string{"annotation_id", "annotator", "created_at", "id", "label", "sentiment", "text"}, rows[0], "alphabetical, as Label Studio")
	require.Len(t, rows, 3)
	require.Equal(t, []string{"2", "4", "2025-01-02T03:05:05Z", "7"}, rows[1][:4])
	require.JSONEq(t, `[{"start": 0, "end": 10, "text": "Jane Smith", "labels": ["PER"]}, {"start": 20, "end": 24, "text": "Acme", "labels": ["ORG"]}]`, rows[1][4])
	require.Equal(t, "Positive", rows[1][5], "a single choice is plain")
	require.Equal(t, task.Text, rows[1][6])
	require.Equal(t, []string{"", "", "", "8", "", "", "=1+1"}, rows[2], "data is written as it is")
}
