package formats

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"

	"github.com/labelq/labelq/internal/labelconfig"
)

// VOCAnnotation is one Pascal VOC annotation file, as voc writes it and as a
// reader parses it back with encoding/xml.
type VOCAnnotation struct {
	XMLName   xml.Name    `xml:"annotation"`
	Folder    string      `xml:"folder"`
	Filename  string      `xml:"filename"`
	Source    VOCSource   `xml:"source"`
	Size      VOCSize     `xml:"size"`
	Segmented int         `xml:"segmented"`
	Objects   []VOCObject `xml:"object"`
}

// VOCSource says where the annotation came from.
type VOCSource struct {
	Database  string `xml:"database"`
	Annotator string `xml:"annotator"`
}

// VOCSize is the image's size in pixels; depth is 3 (RGB), as Label Studio
// writes when it does not open the image.
type VOCSize struct {
	Width  int `xml:"width"`
	Height int `xml:"height"`
	Depth  int `xml:"depth"`
}

// VOCObject is one box.
type VOCObject struct {
	Name      string    `xml:"name"`
	Pose      string    `xml:"pose"`
	Truncated int       `xml:"truncated"`
	Difficult int       `xml:"difficult"`
	BndBox    VOCBndBox `xml:"bndbox"`
}

// VOCBndBox is a box's corners in whole pixels.
type VOCBndBox struct {
	XMin int `xml:"xmin"`
	YMin int `xml:"ymin"`
	XMax int `xml:"xmax"`
	YMax int `xml:"ymax"`
}

// voc writes Annotations/<image name>.xml per task: filename (the image's
// path below images/, in folder "images"), size, and one object per box with
// its first label and bndbox. The corners round as Label Studio's
// convert_to_voc does: xmin = int(x% × width), xmax = xmin + int(width% ×
// width), and the same for y (int truncates toward zero).
type voc struct {
	w        Writer
	controls map[string]labelconfig.Control
	names    nameGuard
	buf      bytes.Buffer
	closed   bool
}

func newVOC(cfg labelconfig.Config, w Writer) *voc {
	return &voc{w: w, controls: controlsOf(cfg)}
}

func (v *voc) Add(t Task) error {
	if v.closed {
		return errors.New("voc: Add after Close")
	}
	name := VOCAnnotationPath(t)
	if err := v.names.claim(name, t); err != nil {
		return taskErr("voc", t, err)
	}
	w, h, _ := t.imageSize()
	doc := VOCAnnotation{
		Folder: "images", Filename: imageRel(t),
		Source: VOCSource{Database: "labelq"},
		Size:   VOCSize{Width: w, Height: h, Depth: 3},
	}
	if a := t.Latest(); a != nil {
		doc.Source.Annotator = strconv.FormatInt(a.CompletedBy, 10)
		for i := range a.Result {
			obj, ok, err := v.object(&t, &a.Result[i])
			if err != nil {
				return taskErr("voc", t, fmt.Errorf("annotation %d: region %d: %w", a.ID, i, err))
			}
			if ok {
				doc.Objects = append(doc.Objects, obj)
			}
		}
	}
	v.buf.Reset()
	v.buf.WriteString(xml.Header)
	enc := xml.NewEncoder(&v.buf)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return taskErr("voc", t, fmt.Errorf("encode %s: %w", name, err))
	}
	v.buf.WriteByte('\n')
	ew, err := v.w.Create(name)
	if err != nil {
		return fmt.Errorf("voc: create %s: %w", name, err)
	}
	if _, err := ew.Write(v.buf.Bytes()); err != nil {
		return fmt.Errorf("voc: write %s: %w", name, err)
	}
	if v.buf.Cap() > maxScratch {
		v.buf = bytes.Buffer{}
	}
	return nil
}

func (v *voc) object(t *Task, r *labelconfig.Region) (VOCObject, bool, error) {
	k, ok := v.controls[r.FromName]
	if !ok || k.Type != labelconfig.RectangleLabels || r.Type != k.Type {
		return VOCObject{}, false, nil
	}
	val, err := r.DecodeValue()
	if err != nil {
		return VOCObject{}, false, err
	}
	if len(val.Labels) == 0 {
		return VOCObject{}, false, nil
	}
	w, h, err := t.regionSize(r)
	if err != nil {
		return VOCObject{}, false, err
	}
	x, y, bw, bh := boxPixels(val, w, h)
	xmin, ymin := int(x), int(y)
	return VOCObject{
		Name: val.Labels[0], Pose: "Unspecified",
		BndBox: VOCBndBox{XMin: xmin, YMin: ymin, XMax: xmin + int(bw), YMax: ymin + int(bh)},
	}, true, nil
}

func (v *voc) Close() error {
	if v.closed {
		return errors.New("voc: closed twice")
	}
	v.closed = true
	return nil
}
