package formats

import (
	"errors"
	"fmt"
	"strconv"

	"gopkg.in/yaml.v3"

	"github.com/labelq/labelq/internal/labelconfig"
)

// yolo writes, per task, labels/<image name>.txt with one line per box and
// label, "class cx cy w h": the box's centre and size as fractions of the
// image (0–1, six decimals), the class a 0-based index into classes.txt. At
// Close it writes classes.txt (one class a line) and data.yaml for
// Ultralytics (train and val both "images", nc, names). As in Label Studio's
// convert_to_yolo, a box with several labels gives one line per label and an
// image without boxes an empty file; unrotated boxes need no pixel size.
type yolo struct {
	w        Writer
	controls map[string]labelconfig.Control
	cats     *categories
	names    nameGuard
	line     []byte
	closed   bool
}

func newYOLO(cfg labelconfig.Config, w Writer) *yolo {
	return &yolo{w: w, controls: controlsOf(cfg), cats: newCategories(cfg, labelconfig.RectangleLabels)}
}

func (y *yolo) Add(t Task) error {
	if y.closed {
		return errors.New("yolo: Add after Close")
	}
	name := YOLOLabelPath(t)
	if err := y.names.claim(name, t); err != nil {
		return taskErr("yolo", t, err)
	}
	b := y.line[:0]
	if a := t.Latest(); a != nil {
		for i := range a.Result {
			var err error
			if b, err = y.region(b, &t, &a.Result[i]); err != nil {
				return taskErr("yolo", t, fmt.Errorf("annotation %d: region %d: %w", a.ID, i, err))
			}
		}
	}
	ew, err := y.w.Create(name)
	if err != nil {
		return fmt.Errorf("yolo: create %s: %w", name, err)
	}
	if _, err := ew.Write(b); err != nil {
		return fmt.Errorf("yolo: write %s: %w", name, err)
	}
	if cap(b) <= maxScratch {
		y.line = b[:0]
	}
	return nil
}

func (y *yolo) region(b []byte, t *Task, r *labelconfig.Region) ([]byte, error) {
	k, ok := y.controls[r.FromName]
	if !ok || k.Type != labelconfig.RectangleLabels || r.Type != k.Type {
		return b, nil
	}
	v, err := r.DecodeValue()
	if err != nil {
		return b, err
	}
	// Fractions of the image straight from the percent box, as Label
	// Studio's convert_annotation_to_yolo; a rotated box goes through pixels.
	cx, cy, w, h := (v.X+v.Width/2)/100, (v.Y+v.Height/2)/100, v.Width/100, v.Height/100
	if v.Rotation != 0 {
		pw, ph, err := t.regionSize(r)
		if err != nil {
			return b, err
		}
		x, y, bw, bh := boxPixels(v, pw, ph)
		cx, cy, w, h = (x+bw/2)/pw, (y+bh/2)/ph, bw/pw, bh/ph
	}
	for _, l := range v.Labels {
		b = strconv.AppendInt(b, int64(y.cats.id(l)), 10)
		for _, f := range [4]float64{cx, cy, w, h} {
			b = append(b, ' ')
			b = strconv.AppendFloat(b, f, 'f', 6, 64)
		}
		b = append(b, '\n')
	}
	return b, nil
}

// yoloData is data.yaml. It has no "path" key: the dataset root is where the
// archive is unpacked, which only its reader knows. Without one, Ultralytics
// takes the YAML file's directory as the root (older versions resolve a
// relative directory against their datasets_dir, so pass the file by an
// absolute path there, or add path:).
type yoloData struct {
	Train string   `yaml:"train"`
	Val   string   `yaml:"val"`
	NC    int      `yaml:"nc"`
	Names []string `yaml:"names"`
}

func (y *yolo) Close() error {
	if y.closed {
		return errors.New("yolo: closed twice")
	}
	y.closed = true
	var classes []byte
	for _, n := range y.cats.names {
		classes = append(classes, n...)
		classes = append(classes, '\n')
	}
	data, err := yaml.Marshal(yoloData{Train: "images", Val: "images", NC: len(y.cats.names), Names: y.cats.names})
	if err != nil {
		return fmt.Errorf("yolo: encode %s: %w", YOLOData, err)
	}
	for _, f := range []struct {
		name string
		b    []byte
	}{{YOLOClasses, classes}, {YOLOData, data}} {
		ew, err := y.w.Create(f.name)
		if err != nil {
			return fmt.Errorf("yolo: create %s: %w", f.name, err)
		}
		if _, err := ew.Write(f.b); err != nil {
			return fmt.Errorf("yolo: write %s: %w", f.name, err)
		}
	}
	return nil
}
