package formats_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"encoding/xml"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/labelq/labelq/internal/formats"
	"github.com/labelq/labelq/internal/labelconfig"
)

type cocoFile struct {
	Info        map[string]any `json:"info"`
	Annotations []struct {
		ID           int64       `json:"id"`
		ImageID      int64       `json:"image_id"`
		CategoryID   int         `json:"category_id"`
		Segmentation [][]float64 `json:"segmentation"`
		BBox         []float64   `json:"bbox"`
		Ignore       *int        `json:"ignore"`
		IsCrowd      *int        `json:"iscrowd"`
		Area         float64     `json:"area"`
	} `json:"annotations"`
	Images []struct {
		ID       int64  `json:"id"`
		FileName string `json:"file_name"`
		Width    int    `json:"width"`
		Height   int    `json:"height"`
	} `json:"images"`
	Categories []struct {
		ID   int    `json:"id"`
		Name string `json:"name"`
	} `json:"categories"`
}

// convertCOCO runs both passes over tasks.
func convertCOCO(t *testing.T, cfg labelconfig.Config, tasks []formats.Task) (cocoFile, []byte) {
	t.Helper()
	w := newMemWriter()
	conv, err := formats.New("coco", cfg, w)
	require.NoError(t, err)
	for _, task := range tasks {
		require.NoError(t, conv.Add(task))
	}
	ip, ok := conv.(formats.ImagePass)
	require.True(t, ok, "coco needs the image pass")
	for i := len(tasks) - 1; i >= 0; i-- { // any order will do
		light := tasks[i]
		if light.Image != nil {
			light.Annotations = nil // the image pass needs no results when facts are known
		}
		require.NoError(t, ip.AddImage(light))
	}
	require.NoError(t, conv.Close())
	require.Equal(t, []string{formats.ResultJSON}, w.names)
	raw := w.bytes(t, formats.ResultJSON)
	var f cocoFile
	require.NoError(t, json.Unmarshal(raw, &f))
	return f, raw
}

func TestCOCOBoxesArePercentBoxesInPixels(t *testing.T) {
	cfg := config(t, detectionConfig)
	rng := rand.New(rand.NewPCG(1, 2))
	var tasks []formats.Task
	var want []box // in export order
	for i := range 100 {
		task, boxes := genImageTask(rng, i, 10, false)
		tasks = append(tasks, task)
		want = append(want, boxes...)
	}
	f, _ := convertCOCO(t, cfg, tasks)
	require.Len(t, want, 1000)

	// Categories: the exported controls' labels in config order, once each.
	var names []string
	for i, c := range f.Categories {
		require.Equal(t, i, c.ID)
		names = append(names, c.Name)
	}
	require.Equal(t, []string{"Airplane", "Car", "Person", "Traffic light", "Road"}, names)

	require.Len(t, f.Annotations, len(want), "one annotation per box of the latest annotation; choices and key points are not COCO")
	for i, a := range f.Annotations {
		b := want[i]
		require.Equal(t, int64(i), a.ID)
		require.Equal(t, tasks[i/10].ID, a.ImageID, "the image id is the task id")
		require.Equal(t, b.label, names[a.CategoryID])
		require.Len(t, a.BBox, 4)
		requireNear(t, b.x/100*b.W, a.BBox[0], "annotation %d x", i)
		requireNear(t, b.y/100*b.H, a.BBox[1], "annotation %d y", i)
		requireNear(t, b.w/100*b.W, a.BBox[2], "annotation %d width", i)
		requireNear(t, b.h/100*b.H, a.BBox[3], "annotation %d height", i)
		require.InDelta(t, a.BBox[2]*a.BBox[3], a.Area, 1e-6)
		require.Empty(t, a.Segmentation)
		require.Equal(t, 0, *a.IsCrowd)
		require.Equal(t, 0, *a.Ignore)
	}
	require.Len(t, f.Images, len(tasks))
	images := map[int64]int{}
	for i, img := range f.Images {
		images[img.ID] = i
	}
	for i, task := range tasks {
		img := f.Images[images[task.ID]]
		require.Equal(t, "images/"+task.Filename, img.FileName)
		require.Equal(t, want[i*10].W, float64(img.Width), "image %d width (display frame: EXIF 6 swaps)", i)
		require.Equal(t, want[i*10].H, float64(img.Height), "image %d height", i)
	}
}

func TestCOCOPolygonsAndRotatedBoxes(t *testing.T) {
	cfg := config(t, detectionConfig)
	rng := rand.New(rand.NewPCG(3, 4))
	var tasks []formats.Task
	for i := range 20 {
		task, _ := genImageTask(rng, i, 1, true)
		tasks = append(tasks, task)
	}
	// A box of 40 × 20 px at (100, 50) px turned 90° clockwise about its
	// top-left corner covers x 80–100, y 50–90.
	tasks = append(tasks, formats.Task{ID: 1, Filename: "rot.png", Image: &formats.ImageFacts{Width: 400, Height: 200},
		Annotations: []formats.Annotation{{ID: 9, Result: []labelconfig.Region{region(t,
			`{"from_name":"label","to_name":"image","type":"rectanglelabels","value":{"x":25,"y":25,"width":10,"height":10,"rotation":90,"rectanglelabels":["Car"]}}`)}}}})
	f, _ := convertCOCO(t, cfg, tasks)

	var polys int
	for _, a := range f.Annotations {
		var task formats.Task
		for _, tk := range tasks {
			if tk.ID == a.ImageID {
				task = tk
			}
		}
		if a.ImageID == 1 {
			require.Equal(t, 1, a.CategoryID, "Car")
			for j, want := range []float64{80, 50, 20, 40} {
				require.InDelta(t, want, a.BBox[j], 1e-9, "rotated envelope %d", j)
			}
			continue
		}
		if len(a.Segmentation) == 0 {
			continue
		}
		polys++
		require.Equal(t, 4, a.CategoryID, "Road")
		var p labelconfig.Region
		for _, r := range task.Annotations[0].Result {
			if r.Type == labelconfig.PolygonLabels {
				p = r
			}
		}
		v, err := p.DecodeValue()
		require.NoError(t, err)
		W, H := float64(p.OriginalWidth), float64(p.OriginalHeight)
		if W == 0 {
			W, H = float64(task.Image.Width), float64(task.Image.Height)
			if task.Image.Orientation == 6 {
				W, H = H, W
			}
		}
		require.Len(t, a.Segmentation[0], 6)
		xs, ys := []float64{}, []float64{}
		for j, pt := range v.Points {
			requireNear(t, pt[0]/100*W, a.Segmentation[0][2*j], "vertex %d x", j)
			requireNear(t, pt[1]/100*H, a.Segmentation[0][2*j+1], "vertex %d y", j)
			xs, ys = append(xs, pt[0]/100*W), append(ys, pt[1]/100*H)
		}
		area := math.Abs((xs[0]*ys[1]-xs[1]*ys[0])+(xs[1]*ys[2]-xs[2]*ys[1])+(xs[2]*ys[0]-xs[0]*ys[2])) / 2
		require.InDelta(t, area, a.Area, 1e-6*area+1e-9)
		minX := math.Min(xs[0], math.Min(xs[1], xs[2]))
		maxY := math.Max(ys[0], math.Max(ys[1], ys[2]))
		requireNear(t, minX, a.BBox[0], "polygon bbox x")
		requireNear(t, maxY, a.BBox[1]+a.BBox[3], "polygon bbox bottom")
	}
	require.Equal(t, 20, polys)
}

func TestCOCOChecksBothPasses(t *testing.T) {
	cfg := config(t, detectionConfig)
	rng := rand.New(rand.NewPCG(5, 6))
	a, _ := genImageTask(rng, 0, 1, false)
	b, _ := genImageTask(rng, 1, 1, false)

	conv, err := formats.New("coco", cfg, newMemWriter())
	require.NoError(t, err)
	require.NoError(t, conv.Add(a))
	require.ErrorContains(t, conv.Close(), "the image pass saw 0 tasks and the annotation pass 1")

	conv, _ = formats.New("coco", cfg, newMemWriter())
	require.NoError(t, conv.Add(a))
	require.NoError(t, conv.(formats.ImagePass).AddImage(b))
	require.ErrorContains(t, conv.Close(), "or not the same ones", "same count, other task")

	conv, _ = formats.New("coco", cfg, newMemWriter())
	require.NoError(t, conv.Add(a))
	require.NoError(t, conv.(formats.ImagePass).AddImage(a))
	require.ErrorContains(t, conv.Add(b), "Add after AddImage")

	// No tasks: still a COCO file.
	w := newMemWriter()
	conv, _ = formats.New("coco", cfg, w)
	require.NoError(t, conv.Close())
	var f cocoFile
	require.NoError(t, json.Unmarshal(w.bytes(t, formats.ResultJSON), &f))
	require.Empty(t, f.Images)
	require.Len(t, f.Categories, 5)

	// A box without any pixel size cannot be converted, and says why.
	conv, _ = formats.New("coco", cfg, newMemWriter())
	noSize := formats.Task{ID: 4, FileID: 2, Filename: "x.jpg", Annotations: []formats.Annotation{{ID: 1, Result: []labelconfig.Region{region(t,
		`{"from_name":"label","to_name":"image","type":"rectanglelabels","value":{"x":1,"y":1,"width":1,"height":1,"rectanglelabels":["Car"]}}`)}}}}
	require.ErrorContains(t, conv.Add(noSize), `coco: task 4 (file 2 "x.jpg"): annotation 1: region 0: no pixel size`)
}

func TestYOLOCentresAndSizes(t *testing.T) {
	cfg := config(t, detectionConfig)
	rng := rand.New(rand.NewPCG(7, 8))
	w := newMemWriter()
	conv, err := formats.New("yolo", cfg, w)
	require.NoError(t, err)
	var tasks []formats.Task
	var want [][]box
	for i := range 100 {
		task, boxes := genImageTask(rng, i, 10, true)
		tasks = append(tasks, task)
		want = append(want, boxes)
		require.NoError(t, conv.Add(task))
	}
	empty := formats.Task{ID: 9, FileID: 9, Filename: "negatives/empty.png"}
	require.NoError(t, conv.Add(empty))
	require.NoError(t, conv.Close())

	classes := strings.Split(strings.TrimSuffix(string(w.bytes(t, formats.YOLOClasses)), "\n"), "\n")
	require.Equal(t, []string{"Airplane", "Car", "Person", "Traffic light"}, classes, "rectangle labels in config order")
	var data struct {
		Train, Val string
		NC         int      `yaml:"nc"`
		Names      []string `yaml:"names"`
	}
	require.NoError(t, yaml.Unmarshal(w.bytes(t, formats.YOLOData), &data))
	require.Equal(t, classes, data.Names)
	require.Equal(t, 4, data.NC)
	require.Equal(t, "images", data.Train)
	require.Equal(t, "images", data.Val)

	n := 0
	for i, task := range tasks {
		name := formats.YOLOLabelPath(task)
		require.Equal(t, "labels/"+strings.TrimSuffix(task.Filename, ".jpg")+".txt", name)
		sc := bufio.NewScanner(bytes.NewReader(w.bytes(t, name)))
		j := 0
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			require.Len(t, f, 5, "box lines only: %q", sc.Text())
			b := want[i][j]
			cls, err := strconv.Atoi(f[0])
			require.NoError(t, err)
			require.Equal(t, b.label, classes[cls])
			vals := make([]float64, 4)
			for k := range vals {
				require.Regexp(t, `^\d\.\d{6}$`, f[k+1], "six decimals")
				vals[k], err = strconv.ParseFloat(f[k+1], 64)
				require.NoError(t, err)
				require.GreaterOrEqual(t, vals[k], 0.0)
				require.LessOrEqual(t, vals[k], 1.0)
			}
			requireNear(t, (b.x+b.w/2)/100*b.W, vals[0]*b.W, "task %d box %d centre x", i, j)
			requireNear(t, (b.y+b.h/2)/100*b.H, vals[1]*b.H, "task %d box %d centre y", i, j)
			requireNear(t, b.w/100*b.W, vals[2]*b.W, "task %d box %d width", i, j)
			requireNear(t, b.h/100*b.H, vals[3]*b.H, "task %d box %d height", i, j)
			j++
			n++
		}
		require.Equal(t, len(want[i]), j, "task %d: one line per box", i)
	}
	require.Equal(t, 1000, n)
	require.Empty(t, w.bytes(t, "labels/negatives/empty.txt"), "an image without boxes gets an empty label file")
	require.Len(t, w.names, len(tasks)+1+2)

	t.Run("names that differ only in extension", func(t *testing.T) {
		conv, _ := formats.New("yolo", cfg, newMemWriter())
		require.NoError(t, conv.Add(formats.Task{ID: 1, FileID: 3, Filename: "cat.jpg"}))
		err := conv.Add(formats.Task{ID: 2, FileID: 4, Filename: "Cat.PNG"})
		require.ErrorContains(t, err, `labels/Cat.txt is already the label file of file 3; the tools pair an image with its label file by name without extension, so rename file 4 ("Cat.PNG") or file 3`)
	})
	t.Run("multi-label boxes give a line per label and rotated boxes go through pixels", func(t *testing.T) {
		w := newMemWriter()
		conv, _ := formats.New("yolo", cfg, w)
		task := formats.Task{ID: 1, Filename: "m.jpg", Image: &formats.ImageFacts{Width: 400, Height: 200}, Annotations: []formats.Annotation{{Result: []labelconfig.Region{
			region(t, `{"from_name":"label","to_name":"image","type":"rectanglelabels","value":{"x":10,"y":20,"width":30,"height":40,"rectanglelabels":["Car","Person"]}}`),
			region(t, `{"from_name":"label","to_name":"image","type":"rectanglelabels","value":{"x":25,"y":25,"width":10,"height":10,"rotation":90,"rectanglelabels":["Airplane"]}}`),
		}}}}
		require.NoError(t, conv.Add(task))
		require.NoError(t, conv.Close())
		// Rotated: x 80–100 px of 400, y 50–90 px of 200 (see the COCO test).
		require.Equal(t, "1 0.250000 0.400000 0.300000 0.400000\n2 0.250000 0.400000 0.300000 0.400000\n0 0.225000 0.350000 0.050000 0.200000\n",
			string(w.bytes(t, "labels/m.txt")))
	})
}

// vocXML is Pascal VOC as a reader that knows nothing of labelq parses it.
type vocXML struct {
	XMLName  xml.Name `xml:"annotation"`
	Folder   string   `xml:"folder"`
	Filename string   `xml:"filename"`
	Size     struct {
		Width  int `xml:"width"`
		Height int `xml:"height"`
		Depth  int `xml:"depth"`
	} `xml:"size"`
	Objects []struct {
		Name   string `xml:"name"`
		BndBox struct {
			XMin int `xml:"xmin"`
			YMin int `xml:"ymin"`
			XMax int `xml:"xmax"`
			YMax int `xml:"ymax"`
		} `xml:"bndbox"`
	} `xml:"object"`
}

func TestVOCParsesBackAndMatches(t *testing.T) {
	cfg := config(t, detectionConfig)
	rng := rand.New(rand.NewPCG(9, 10))
	w := newMemWriter()
	conv, err := formats.New("voc", cfg, w)
	require.NoError(t, err)
	var tasks []formats.Task
	var want [][]box
	for i := range 100 {
		task, boxes := genImageTask(rng, i, 10, true)
		tasks = append(tasks, task)
		want = append(want, boxes)
		require.NoError(t, conv.Add(task))
	}
	require.NoError(t, conv.Add(formats.Task{ID: 7, FileID: 7, Filename: "sub/dir/none.jpeg", Image: &formats.ImageFacts{Width: 10, Height: 20}}))
	require.NoError(t, conv.Close())

	n := 0
	for i, task := range tasks {
		raw := w.bytes(t, formats.VOCAnnotationPath(task))
		require.True(t, bytes.HasPrefix(raw, []byte(`<?xml version="1.0" encoding="UTF-8"?>`)))
		var doc vocXML
		require.NoError(t, xml.Unmarshal(raw, &doc))
		require.Equal(t, "images", doc.Folder)
		require.Equal(t, task.Filename, doc.Filename)
		require.Equal(t, int(want[i][0].W), doc.Size.Width)
		require.Equal(t, int(want[i][0].H), doc.Size.Height)
		require.Equal(t, 3, doc.Size.Depth)
		require.Len(t, doc.Objects, len(want[i]), "boxes only: no polygon, choice or key point")
		for j, o := range doc.Objects {
			b := want[i][j]
			// Label Studio's rounding: int() of each percent-to-pixel value.
			xmin, ymin := int(b.x/100*b.W), int(b.y/100*b.H)
			require.Equal(t, b.label, o.Name)
			require.Equal(t, xmin, o.BndBox.XMin, "task %d box %d", i, j)
			require.Equal(t, ymin, o.BndBox.YMin, "task %d box %d", i, j)
			require.Equal(t, xmin+int(b.w/100*b.W), o.BndBox.XMax, "task %d box %d", i, j)
			require.Equal(t, ymin+int(b.h/100*b.H), o.BndBox.YMax, "task %d box %d", i, j)
			n++
		}
	}
	require.Equal(t, 1000, n)
	var none vocXML
	require.NoError(t, xml.Unmarshal(w.bytes(t, "Annotations/sub/dir/none.xml"), &none))
	require.Equal(t, "sub/dir/none.jpeg", none.Filename)
	require.Empty(t, none.Objects)
	require.Equal(t, 10, none.Size.Width)

	// The exported types read the files too.
	var typed formats.VOCAnnotation
	require.NoError(t, xml.Unmarshal(w.bytes(t, formats.VOCAnnotationPath(tasks[0])), &typed))
	require.Equal(t, "Unspecified", typed.Objects[0].Pose)
	require.Equal(t, "7", typed.Source.Annotator, "the latest annotation's author")
}

func TestPathsOfImagesAndLabelFiles(t *testing.T) {
	for _, tc := range []struct{ name, image, yolo, voc string }{
		{"a.jpg", "images/a.jpg", "labels/a.txt", "Annotations/a.xml"},
		{"dir/b.c.png", "images/dir/b.c.png", "labels/dir/b.c.txt", "Annotations/dir/b.c.xml"},
		{"../../etc/x.jpg", "images/etc/x.jpg", "labels/etc/x.txt", "Annotations/etc/x.xml"},
		{"noext", "images/noext", "labels/noext.txt", "Annotations/noext.xml"},
		{".hidden", "images/.hidden", "labels/.hidden.txt", "Annotations/.hidden.xml"},
	} {
		task := formats.Task{Filename: tc.name}
		require.Equal(t, tc.image, formats.ImagePath(task), tc.name)
		require.Equal(t, tc.yolo, formats.YOLOLabelPath(task), tc.name)
		require.Equal(t, tc.voc, formats.VOCAnnotationPath(task), tc.name)
	}
}

func TestNewRefusesFormatsThatDoNotFit(t *testing.T) {
	ner := config(t, nerConfig)
	_, err := formats.New("coco", ner, newMemWriter())
	require.ErrorContains(t, err, "format coco exports image objects annotated with boxes or polygons")
	_, err = formats.New("labelq", ner, newMemWriter())
	require.ErrorContains(t, err, "labelq is the archive's own layout")
	_, err = formats.New("tfrecord", ner, newMemWriter())
	require.ErrorContains(t, err, `format "tfrecord" is not an export format`)
	_, err = formats.New("csv", labelconfig.Config{}, newMemWriter())
	var ce *labelconfig.ConfigError
	require.ErrorAs(t, err, &ce)
	require.True(t, formats.NeedsImagePass("coco"))
	require.False(t, formats.NeedsImagePass("yolo"))
}
