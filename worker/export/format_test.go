package export_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"math"
	"math/rand/v2"
	"path"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/formats"
	"github.com/labelq/labelq/internal/zipstream"
	"github.com/labelq/labelq/worker/export"
)

// detectionProject is a small image project: images with their image facts,
// approved Label Studio results of random boxes, one job not approved.
type detectionProject struct {
	images []version
	boxes  map[string][]box // by file name
	// displayed sizes: what the percent boxes are percent of
	sizes map[string][2]float64
}

func newDetectionProject(f *fixture, seed uint64) *detectionProject {
	f.setLabelConfig(detectionConfig)
	p := &detectionProject{boxes: map[string][]box{}, sizes: map[string][2]float64{}}
	rng := rand.New(rand.NewPCG(seed, 1))
	for i, img := range []struct {
		name                string
		w, h, orientation   int
		recordsOriginalSize bool
	}{
		{"street/a.jpg", 800, 600, 1, true},
		{"b.jpg", 1920, 1080, 1, false},
		// EXIF orientation 6: stored 640×480, shown (and measured) 480×640.
		{"rotated.jpg", 640, 480, 6, false},
		{"empty.jpg", 320, 240, 1, false},
	} {
		v := f.image(img.name, img.w, img.h, img.orientation)
		dw, dh := img.w, img.h
		if img.orientation >= 5 {
			dw, dh = dh, dw
		}
		p.sizes[img.name] = [2]float64{float64(dw), float64(dh)}
		var bs []box
		n := 3 + i
		if img.name == "empty.jpg" {
			n = 0
		}
		for range n {
			b := box{X: round3(rng.Float64() * 60), Y: round3(rng.Float64() * 60), W: round3(1 + rng.Float64()*35), H: round3(1 + rng.Float64()*35),
				Label: []string{"Car", "Person", "Traffic light"}[rng.IntN(3)]}
			if img.recordsOriginalSize {
				b.OrigW, b.OrigH = dw, dh
			}
			bs = append(bs, b)
		}
		p.boxes[img.name] = bs
		extra := []map[string]any{{"id": "w", "from_name": "weather", "to_name": "image", "type": "choices", "value": map[string]any{"choices": []string{"Sunny"}}}}
		if img.name == "b.jpg" {
			extra = append(extra, map[string]any{"id": "p", "from_name": "outline", "to_name": "image", "type": "polygonlabels",
				"value": map[string]any{"points": [][]float64{{10, 10}, {50, 12.5}, {30, 40}}, "polygonlabels": []string{"Road"}}})
		}
		f.approved(v, strings.ReplaceAll(img.name, "/", "_")+".json", boxesResult(f.t, bs, extra...))
		p.images = append(p.images, v)
	}
	// Not exported: a job pending review.
	pending := f.image("pending.jpg", 100, 100, 1)
	res := f.valid(f.file("pending.json", db.FileTypeAnnotationResults), boxesResult(f.t, []box{{X: 1, Y: 1, W: 2, H: 2, Label: "Car"}}), "application/json")
	f.job(pending, db.ReviewStatusPending, &res.ID)
	return p
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// TestFormatLabelStudioRoundTrip: Label Studio results in, label_studio out,
// region for region; predictions in Label Studio's shape ride along, others
// are left out and counted on the note, as is a result that is not Label
// Studio JSON.
func TestFormatLabelStudioRoundTrip(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := newDetectionProject(f, 1)
	pred := `{"model_version": "gpt-4o-test", "score": 0.87, "result": [{"id": "m1", "from_name": "label", "to_name": "image", "type": "rectanglelabels",
	  "original_width": 800, "original_height": 600, "value": {"x": 1.5, "y": 2, "width": 10, "height": 20, "rotation": 0, "rectanglelabels": ["Car"]}, "score": 0.9}]}`
	f.prediction(p.images[0], "a.pred.json", []byte(pred))
	bad := f.prediction(p.images[0], "a.free.json", []byte(`{"boxes": [[1, 2, 3, 4]]}`))
	legacy := f.image("legacy.jpg", 10, 10, 1)
	legacyResult := f.approved(legacy, "legacy.json", []byte(`{"labels": ["invoice"]}`))

	a := f.exportFormat("label_studio", `{}`)
	require.Equal(t, []string{"result.json", "manifest.json"}, a.names(), "no images unless include_files")
	var tasks []struct {
		ID          int64             `json:"id"`
		Data        map[string]string `json:"data"`
		Annotations []struct {
			ID     int64             `json:"id"`
			Result []json.RawMessage `json:"result"`
		} `json:"annotations"`
		Predictions []struct {
			ModelVersion string            `json:"model_version"`
			Score        *float64          `json:"score"`
			Result       []json.RawMessage `json:"result"`
		} `json:"predictions"`
		Meta struct {
			FileID    int64  `json:"file_id"`
			VersionID int64  `json:"version_id"`
			Filename  string `json:"filename"`
		} `json:"meta"`
	}
	a.jsonOf(t, "result.json", &tasks)
	require.Len(t, tasks, len(p.images), "every approved task with a Label Studio result, nothing else")
	for i, tk := range tasks {
		v := p.images[i]
		require.Equal(t, v.File.Name, tk.Meta.Filename, "tasks in job order")
		require.Equal(t, v.ID, tk.Meta.VersionID)
		require.Equal(t, formats.ImagePath(formats.Task{Filename: v.File.Name}), tk.Data["image"])
		require.Len(t, tk.Annotations, 1)
		// The regions as they were stored, field for field.
		var in []json.RawMessage
		res := f.resultOf(v)
		require.NoError(t, json.Unmarshal(res, &in))
		require.Len(t, tk.Annotations[0].Result, len(in))
		for j := range in {
			require.JSONEq(t, string(in[j]), string(tk.Annotations[0].Result[j]), "task %s region %d", v.File.Name, j)
		}
		if i == 0 {
			require.Len(t, tk.Predictions, 1, "the Label Studio prediction, not the free-form output")
			require.Equal(t, "gpt-4o-test", tk.Predictions[0].ModelVersion)
			require.InDelta(t, 0.87, *tk.Predictions[0].Score, 1e-9)
			var want struct {
				Result []json.RawMessage `json:"result"`
			}
			require.NoError(t, json.Unmarshal([]byte(pred), &want))
			require.JSONEq(t, string(want.Result[0]), string(tk.Predictions[0].Result[0]))
		} else {
			require.Empty(t, tk.Predictions)
		}
	}
	row := f.row(a.manifest.ExportID)
	require.EqualValues(t, len(p.images), *row.FileCount, "file_count counts the tasks converted")
	require.NotNil(t, row.Note)
	require.Contains(t, *row.Note, fmt.Sprintf("1 task left out: the result is not Label Studio result JSON (result versions %d)", legacyResult.ID))
	require.Contains(t, *row.Note, "1 prediction left out: not a Label Studio prediction")
	require.Contains(t, *row.Note, strconv.FormatInt(bad.ID, 10))
}

// resultOf reads back the result stored for an image's approved job.
func (f *fixture) resultOf(v version) []byte {
	f.t.Helper()
	var key string
	require.NoError(f.t, f.pg.Pool.QueryRow(context.Background(), `
		SELECT r.storage_path FROM annotation_jobs j JOIN file_versions r ON r.id = j.result_version_id
		WHERE j.file_version_id = $1`, v.ID).Scan(&key))
	return f.download(key)
}

// TestFormatCOCOBoxesInPixels: every COCO box is its Label Studio percent box
// in pixels of the image as shown (the region's original size, else the image
// facts with the EXIF orientation applied), to 0.01 px; images carry their
// size; categories follow the label config.
func TestFormatCOCOBoxesInPixels(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := newDetectionProject(f, 2)
	a := f.exportFormat("coco", `{}`)
	require.Equal(t, []string{"result.json", "manifest.json"}, a.names())
	var coco struct {
		Images []struct {
			ID       int64  `json:"id"`
			Width    int    `json:"width"`
			Height   int    `json:"height"`
			FileName string `json:"file_name"`
		} `json:"images"`
		Annotations []struct {
			ImageID    int64       `json:"image_id"`
			CategoryID int         `json:"category_id"`
			BBox       []float64   `json:"bbox"`
			Area       float64     `json:"area"`
			Segment    [][]float64 `json:"segmentation"`
		} `json:"annotations"`
		Categories []struct {
			ID   int    `json:"id"`
			Name string `json:"name"`
		} `json:"categories"`
	}
	a.jsonOf(t, "result.json", &coco)
	cats := map[int]string{}
	for _, c := range coco.Categories {
		cats[c.ID] = c.Name
	}
	require.Equal(t, map[int]string{0: "Car", 1: "Person", 2: "Traffic light", 3: "Road"}, cats, "config order")
	require.Len(t, coco.Images, len(p.images), "an image per task, the empty one too")
	byImage := map[int64]string{}
	for i, im := range coco.Images {
		name := p.images[i].File.Name
		byImage[im.ID] = name
		require.Equal(t, "images/"+name, im.FileName)
		wh := p.sizes[name]
		require.Equal(t, int(wh[0]), im.Width, "width of %s as shown", name)
		require.Equal(t, int(wh[1]), im.Height, "height of %s as shown", name)
	}
	seen := map[string]int{}
	for _, an := range coco.Annotations {
		name := byImage[an.ImageID]
		require.NotEmpty(t, name, "annotation of an unknown image %d", an.ImageID)
		if cats[an.CategoryID] == "Road" {
			require.Len(t, an.Segment, 1, "the polygon's segmentation")
			continue
		}
		b := p.boxes[name][seen[name]]
		seen[name]++
		wh := p.sizes[name]
		require.Equal(t, b.Label, cats[an.CategoryID])
		want := []float64{b.X / 100 * wh[0], b.Y / 100 * wh[1], b.W / 100 * wh[0], b.H / 100 * wh[1]}
		for k := range want {
			require.InDelta(t, want[k], an.BBox[k], 0.01, "%s box %d coordinate %d", name, seen[name]-1, k)
		}
		require.InDelta(t, want[2]*want[3], an.Area, 0.01)
	}
	for name, bs := range p.boxes {
		require.Equal(t, len(bs), seen[name], "every box of %s", name)
	}
}

// TestFormatYOLONormalised: one label file per image with class cx cy w h as
// fractions of the image, classes.txt and data.yaml in config order.
func TestFormatYOLONormalised(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := newDetectionProject(f, 3)
	a := f.exportFormat("yolo", `{}`)
	classes := strings.Split(strings.TrimSpace(string(a.read("classes.txt"))), "\n")
	require.Equal(t, []string{"Car", "Person", "Traffic light"}, classes)
	var data struct {
		NC    int      `yaml:"nc"`
		Names []string `yaml:"names"`
		Train string   `yaml:"train"`
	}
	require.NoError(t, yaml.Unmarshal(a.read("data.yaml"), &data))
	require.Equal(t, 3, data.NC)
	require.Equal(t, classes, data.Names)
	for _, v := range p.images {
		name := formats.YOLOLabelPath(formats.Task{Filename: v.File.Name})
		lines := strings.Fields(string(a.read(name)))
		bs := p.boxes[v.File.Name]
		require.Len(t, lines, 5*len(bs), "%s: a line per box", name)
		for i, b := range bs {
			got := lines[5*i : 5*i+5]
			require.Equal(t, strconv.Itoa(indexOf(classes, b.Label)), got[0])
			for k, want := range []float64{(b.X + b.W/2) / 100, (b.Y + b.H/2) / 100, b.W / 100, b.H / 100} {
				v, err := strconv.ParseFloat(got[1+k], 64)
				require.NoError(t, err)
				require.InDelta(t, want, v, 1e-6, "%s box %d value %d", name, i, k)
			}
		}
	}
	require.False(t, a.has("images/b.jpg"), "no images unless include_files")
}

func indexOf(xs []string, x string) int {
	for i, s := range xs {
		if s == x {
			return i
		}
	}
	return -1
}

// TestFormatVOCParses: an XML file per image that encoding/xml reads back,
// with the image's shown size and each box's corners as Label Studio rounds
// them.
func TestFormatVOCParses(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := newDetectionProject(f, 4)
	a := f.exportFormat("voc", `{}`)
	for _, v := range p.images {
		name := formats.VOCAnnotationPath(formats.Task{Filename: v.File.Name})
		var doc formats.VOCAnnotation
		require.NoError(t, xml.Unmarshal(a.read(name), &doc), name)
		wh := p.sizes[v.File.Name]
		require.Equal(t, v.File.Name, doc.Filename)
		require.Equal(t, int(wh[0]), doc.Size.Width)
		require.Equal(t, int(wh[1]), doc.Size.Height)
		bs := p.boxes[v.File.Name]
		require.Len(t, doc.Objects, len(bs))
		for i, b := range bs {
			o := doc.Objects[i]
			xmin, ymin := int(b.X/100*wh[0]), int(b.Y/100*wh[1])
			require.Equal(t, b.Label, o.Name)
			require.Equal(t, formats.VOCBndBox{XMin: xmin, YMin: ymin, XMax: xmin + int(b.W/100*wh[0]), YMax: ymin + int(b.H/100*wh[1])}, o.BndBox,
				"%s box %d", name, i)
		}
	}
}

// span is a labelled span of a text, in code points.
type span struct {
	start, end int
	label      string
}

// TestFormatCoNLLTagsEqualSpans: each token's BIO tag is the span it lies in,
// offsets counted in code points (an emoji and accents before a span).
func TestFormatCoNLLTagsEqualSpans(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.setLabelConfig(nerConfig)
	texts := []struct {
		name, text string
		quotes     [][2]string // text of the span, label
	}{
		{"merkel.txt", "Angela Merkel visited Paris in 2019 .", [][2]string{{"Angela Merkel", "PER"}, {"Paris", "LOC"}}},
		{"emoji.txt", "🎬 Zoë Saldaña joined  ACME Corp\nyesterday", [][2]string{{"Zoë Saldaña", "PER"}, {"ACME Corp", "ORG"}}},
		{"none.txt", "nothing to see here", nil},
	}
	want := map[string][]span{}
	for _, tx := range texts {
		v := f.dataset(tx.name, []byte(tx.text), "text/plain")
		var regions []map[string]any
		for i, q := range tx.quotes {
			b := strings.Index(tx.text, q[0])
			require.GreaterOrEqual(t, b, 0)
			start := len([]rune(tx.text[:b]))
			end := start + len([]rune(q[0]))
			want[tx.name] = append(want[tx.name], span{start, end, q[1]})
			regions = append(regions, map[string]any{"id": fmt.Sprint(i), "from_name": "label", "to_name": "text", "type": "labels",
				"value": map[string]any{"start": start, "end": end, "text": q[0], "labels": []string{q[1]}}})
		}
		res, err := json.Marshal(regions)
		require.NoError(t, err)
		if regions == nil {
			res = []byte("[]")
		}
		f.approved(v, tx.name+".json", res)
	}
	a := f.exportFormat("conll2003", `{}`)
	require.Equal(t, []string{"result.conll", "manifest.json"}, a.names())
	out := string(a.read("result.conll"))
	require.True(t, strings.HasPrefix(out, formats.CoNLLHeader))
	sentences := strings.Split(strings.TrimSuffix(strings.TrimPrefix(out, formats.CoNLLHeader), "\n"), "\n\n")
	require.Len(t, sentences, len(texts))
	for i, tx := range texts {
		var got, tokens []string
		for _, line := range strings.Split(strings.Trim(sentences[i], "\n"), "\n") {
			cols := strings.Split(line, " ")
			require.Len(t, cols, 4, "line %q", line)
			tokens = append(tokens, cols[0])
			got = append(got, cols[3])
		}
		wantTokens, wantTags := bio(tx.text, want[tx.name])
		require.Equal(t, wantTokens, tokens, tx.name)
		require.Equal(t, wantTags, got, tx.name)
	}
}

// bio tokenises text on whitespace and tags each token with the span it
// overlaps: B- for the span's first token, I- for its others, O outside.
func bio(text string, spans []span) (tokens, tags []string) {
	runes := []rune(text)
	for i := 0; i < len(runes); {
		if unicode.IsSpace(runes[i]) {
			i++
			continue
		}
		j := i
		for j < len(runes) && !unicode.IsSpace(runes[j]) {
			j++
		}
		tag := "O"
		for _, s := range spans {
			if s.start < j && i < s.end {
				if i <= s.start {
					tag = "B-" + s.label
				} else {
					tag = "I-" + s.label
				}
				break
			}
		}
		tokens, tags = append(tokens, string(runes[i:j])), append(tags, tag)
		i = j
	}
	return tokens, tags
}

// TestFormatFlat: json_min and csv have a row per task with its choices and
// boxes.
func TestFormatFlat(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := newDetectionProject(f, 5)
	a := f.exportFormat("json_min", `{}`)
	var rows []map[string]any
	a.jsonOf(t, "result.json", &rows)
	require.Len(t, rows, len(p.images))
	for i, r := range rows {
		require.Equal(t, "images/"+p.images[i].File.Name, r["image"])
		require.Equal(t, "Sunny", r["weather"])
	}
	c := f.exportFormat("csv", `{}`)
	recs, err := csv.NewReader(bytes.NewReader(c.read("result.csv"))).ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, len(p.images)+1, "a header and a row per task")
	col := indexOf(recs[0], "image")
	require.GreaterOrEqual(t, col, 0, "an image column: %v", recs[0])
	for i, r := range recs[1:] {
		require.Equal(t, "images/"+p.images[i].File.Name, r[col])
		require.Equal(t, "Sunny", r[indexOf(recs[0], "weather")])
		if len(p.boxes[p.images[i].File.Name]) > 0 {
			require.Contains(t, r[indexOf(recs[0], "label")], `"rectanglelabels"`)
		}
	}
}

// TestFormatIncludeFilesPacksImages: with include_files the images follow the
// converted files under images/, byte for byte, and exported_files names
// them.
func TestFormatIncludeFilesPacksImages(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := newDetectionProject(f, 6)
	a := f.exportFormat("coco", `{"include_files": true}`)
	want := []string{"result.json"}
	for _, v := range p.images {
		want = append(want, "images/"+v.File.Name)
	}
	require.Equal(t, append(want, "manifest.json"), a.names())
	for _, v := range p.images {
		require.Equal(t, v.Content, a.read("images/"+v.File.Name), v.File.Name)
	}
	for _, m := range a.manifest.Entries[1:] {
		require.NotZero(t, m.FileID, m.Path)
		require.Equal(t, "image/jpeg", m.MIMEType)
	}
	// The same with a per-image format: labels, then images.
	y := f.exportFormat("yolo", `{"include_files": true}`)
	require.True(t, y.has("images/street/a.jpg"))
	require.True(t, y.has("labels/street/a.txt"))
}

// TestFormatRefusedAtRun: the label config changed after the export was
// requested, or was removed: the export fails with the reason, and no archive
// is left.
func TestFormatRefusedAtRun(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, format, config, options, want string
	}{
		{"coco of a text project", "coco", nerConfig, `{}`, "format coco exports image objects"},
		{"no label config", "yolo", "", `{}`, "has none"},
		{"include_files on texts", "conll2003", nerConfig, `{"include_files": true}`, "options.include_files"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.setLabelConfig(tc.config)
			e := f.newFormatExport(tc.format, tc.options)
			err := f.run(context.Background(), f.handler(export.Options{}), e.ID)
			require.Error(t, err)
			row := f.row(e.ID)
			require.Equal(t, db.ExportStatusFailed, row.Status)
			require.Contains(t, *row.Error, tc.want)
			f.requireNoArchive(e.ID)
		})
	}
}

// TestFormatChangedResultFails: a result whose stored bytes no longer match
// its checksum fails the export naming it, and goes back to validation.
func TestFormatChangedResultFails(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.setLabelConfig(detectionConfig)
	img := f.image("x.jpg", 100, 100, 1)
	res := f.approved(img, "x.json", boxesResult(t, []box{{X: 1, Y: 2, W: 3, H: 4, Label: "Car"}}))
	f.s3.Put(t, res.StoragePath, boxesResult(t, []box{{X: 9, Y: 9, W: 9, H: 9, Label: "Car"}}), minio.PutObjectOptions{})
	e := f.newFormatExport("coco", `{}`)
	require.Error(t, f.run(context.Background(), f.handler(export.Options{}), e.ID))
	row := f.row(e.ID)
	require.Equal(t, db.ExportStatusFailed, row.Status)
	require.Contains(t, *row.Error, fmt.Sprintf("result x.json (version %d): stored bytes no longer match the recorded SHA-256", res.ID))
	v, err := f.pg.Q.FileVersionGetByID(context.Background(), res.ID)
	require.NoError(t, err)
	require.Equal(t, db.ValidationStatusPending, v.ValidationStatus, "sent back to validation")
	f.requireNoArchive(e.ID)
}

// TestFormatEmptySaysWhy: a converted export with no approved job completes
// with a manifest only and a note saying why.
func TestFormatEmptySaysWhy(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.setLabelConfig(detectionConfig)
	img := f.image("x.jpg", 100, 100, 1)
	f.job(img, db.ReviewStatusPending, nil)
	a := f.exportFormat("coco", `{}`)
	var coco struct {
		Images []any `json:"images"`
	}
	a.jsonOf(t, "result.json", &coco)
	require.Empty(t, coco.Images)
	row := f.row(a.manifest.ExportID)
	require.Contains(t, *row.Note, "0 approved jobs: format coco converts the approved results")
}

// TestFormatManyPages converts more tasks than a page holds, in job order,
// through both COCO passes and a per-image format.
func TestFormatManyPages(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.setLabelConfig(detectionConfig)
	const n = 1234
	s := f.seedTasks(n, 2, "")
	for _, format := range []string{"coco", "yolo"} {
		a := f.exportFormat(format, `{}`)
		switch format {
		case "coco":
			var coco struct {
				Images []struct {
					ID int64 `json:"id"`
				} `json:"images"`
				Annotations []struct {
					ImageID int64 `json:"image_id"`
				} `json:"annotations"`
			}
			a.jsonOf(t, "result.json", &coco)
			require.Len(t, coco.Images, n)
			require.Len(t, coco.Annotations, 2*n)
			for i, im := range coco.Images {
				require.Equal(t, s.jobIDs[i], im.ID, "images in job order")
				require.Equal(t, s.jobIDs[i], coco.Annotations[2*i].ImageID, "annotations in job order")
			}
		case "yolo":
			require.Len(t, a.manifest.Entries, n+2, "a label file per task, classes.txt, data.yaml")
			require.Equal(t, path.Join("labels", "img-000000.txt"), a.manifest.Entries[0].Path)
		}
	}
}

// TestFormatSchedule: a schedule's format goes onto the exports it makes.
func TestFormatSchedule(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	newDetectionProject(f, 7)
	format := "yolo"
	s, err := f.pg.Q.ExportScheduleCreate(ctx, db.ExportScheduleCreateParams{
		OrgID: f.org.ID, ProjectID: f.pr.ID, CronSpec: "0 2 * * *", Timezone: "UTC", Options: json.RawMessage(`{"include_files": false}`),
		Enabled: true, Format: &format,
	})
	require.NoError(t, err)
	e, err := f.pg.Q.ExportLogCreateForTick(ctx, db.ExportLogCreateForTickParams{
		OrgID: f.org.ID, ProjectID: f.pr.ID, ScheduleID: &s.ID, ScheduledFor: &s.CreatedAt, Options: s.Options,
	})
	require.NoError(t, err)
	require.Equal(t, "yolo", e.Format)
	require.NoError(t, f.run(ctx, f.handler(export.Options{}), e.ID))
	a := f.convertedArchive(e.ID)
	require.True(t, a.has("classes.txt"))
	require.True(t, a.has("labels/street/a.txt"))
}

// seeded is what seedTasks made.
type seeded struct {
	jobIDs []int64
}

// seedTasks makes n images (1000×800, facts recorded) with an approved
// result of boxes each in a few statements, uploading the results
// concurrently: the fixture for many tasks. With dir set, each result is
// also written to dir/annotations/<n>.json for a baseline.
func (f *fixture) seedTasks(n, boxesPer int, dir string) seeded {
	f.t.Helper()
	ctx := context.Background()
	results := make([][]byte, n)
	rng := rand.New(rand.NewPCG(uint64(n), uint64(boxesPer)))
	labels := []string{"Car", "Person", "Traffic light"}
	for i := range results {
		var b bytes.Buffer
		b.WriteByte('[')
		for k := range boxesPer {
			if k > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"id":"r%d","from_name":"label","to_name":"image","type":"rectanglelabels","original_width":1000,"original_height":800,`+
				`"value":{"x":%.3f,"y":%.3f,"width":%.3f,"height":%.3f,"rotation":0,"rectanglelabels":[%q]}}`,
				k, rng.Float64()*60, rng.Float64()*60, 1+rng.Float64()*30, 1+rng.Float64()*30, labels[rng.IntN(3)])
		}
		b.WriteByte(']')
		results[i] = b.Bytes()
	}
	files := make([]bulkFile, 0, 2*n)
	for i := range n {
		files = append(files, bulkFile{name: fmt.Sprintf("img-%06d.jpg", i), typ: db.FileTypeDataset, mime: "image/jpeg",
			gen: func() []byte { return nil }, resultOf: -1})
	}
	for i := range n {
		files = append(files, bulkFile{name: fmt.Sprintf("%06d.json", i), typ: db.FileTypeAnnotationResults, mime: "application/json",
			gen: func() []byte { return results[i] }, resultOf: i})
	}
	f.seedBulkFiles(files, dir, bulkOptions{skipDatasets: true, snowball: true})
	if _, err := f.pg.Pool.Exec(ctx, `
		UPDATE file_versions v SET image_width = 1000, image_height = 800, image_orientation = 1
		FROM files fl WHERE fl.id = v.file_id AND fl.project_id = $1 AND fl.file_type = 'dataset'`, f.pr.ID); err != nil {
		f.t.Fatal(err)
	}
	var s seeded
	rows, err := f.pg.Pool.Query(ctx, `SELECT id FROM annotation_jobs WHERE project_id = $1 ORDER BY id`, f.pr.ID)
	require.NoError(f.t, err)
	for rows.Next() {
		var id int64
		require.NoError(f.t, rows.Scan(&id))
		s.jobIDs = append(s.jobIDs, id)
	}
	require.NoError(f.t, rows.Err())
	require.Len(f.t, s.jobIDs, n)
	return s
}

// TestFormatCancelMidway: an export cancelled while it converts stops,
// aborts its upload and leaves no archive.
func TestFormatCancelMidway(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.setLabelConfig(detectionConfig)
	f.seedTasks(1200, 1, "")
	e := f.newFormatExport("yolo", `{}`)
	h := f.handler(export.Options{})
	cancelled := false
	export.SetProgressHook(h, func(ctx context.Context, p zipstream.Progress) {
		if cancelled || p.FilesDone < 600 {
			return
		}
		cancelled = true
		_, err := f.pg.Q.ExportLogCancel(context.Background(), db.ExportLogCancelParams{ID: e.ID, OrgID: f.org.ID})
		if err != nil {
			t.Errorf("cancel: %v", err)
		}
		select { // the monitor notices within ProgressEvery and stops the pack
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
			t.Error("the pack went on after the cancel")
		}
	})
	require.NoError(t, f.run(context.Background(), h, e.ID))
	require.True(t, cancelled)
	require.Equal(t, db.ExportStatusCancelled, f.row(e.ID).Status)
	f.requireNoArchive(e.ID)
}
