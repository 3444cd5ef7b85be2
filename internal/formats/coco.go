package formats

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/labelq/labelq/internal/labelconfig"
)

// coco writes result.json:
//
//	{"info": {...},
//	 "annotations": [{"id", "image_id", "category_id", "segmentation", "bbox", "ignore", "iscrowd", "area"}, ...],
//	 "images": [{"width", "height", "id", "file_name"}, ...],
//	 "categories": [{"id", "name"}, ...]}
//
// Rectangles have an empty segmentation, bbox [x, y, width, height] in
// pixels and area width × height; polygons have segmentation [[x1, y1, x2,
// y2, ...]] in pixels, their bounding box and their (shoelace) area, as in
// Label Studio's convert_to_coco. A region with several labels counts under
// its first, as there.
type coco struct {
	doc
	controls map[string]labelconfig.Control
	cats     *categories
	nextAnn  int64
	phase    int // 0: annotations, 1: images
	// Both passes must see the same tasks: their count and an
	// order-independent sum of mixed task ids are compared at Close.
	added, imaged       int64
	addedSum, imagedSum uint64
}

func newCOCO(cfg labelconfig.Config, w Writer) *coco {
	return &coco{
		doc:      doc{w: w, name: ResultJSON},
		controls: controlsOf(cfg),
		cats:     newCategories(cfg, labelconfig.RectangleLabels, labelconfig.PolygonLabels),
	}
}

const cocoHead = `{"info":{"description":"labelq export","contributor":"labelq","version":"1.0"},"annotations":[`

// mix spreads a task id over 64 bits (splitmix64's finaliser), so that sums of
// different id sets collide only by chance.
func mix(id int64) uint64 {
	z := uint64(id) + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (c *coco) start() error {
	if c.out != nil || c.closed {
		return c.open()
	}
	if err := c.open(); err != nil {
		return err
	}
	c.scratch = append(c.scratch[:0], cocoHead...)
	return nil
}

func (c *coco) Add(t Task) error {
	if c.phase != 0 {
		return errors.New("coco: Add after AddImage; add every task, then every image")
	}
	if err := c.start(); err != nil {
		return err
	}
	c.added++
	c.addedSum += mix(t.ID)
	if a := t.Latest(); a != nil {
		for i := range a.Result {
			if err := c.region(&t, &a.Result[i]); err != nil {
				return taskErr("coco", t, fmt.Errorf("annotation %d: region %d: %w", a.ID, i, err))
			}
		}
	}
	return c.emit(c.scratch)
}

func (c *coco) region(t *Task, r *labelconfig.Region) error {
	k, ok := c.controls[r.FromName]
	if !ok || k.Type != r.Type || (k.Type != labelconfig.RectangleLabels && k.Type != labelconfig.PolygonLabels) {
		return nil
	}
	v, err := r.DecodeValue()
	if err != nil {
		return err
	}
	if len(v.Labels) == 0 {
		return nil
	}
	w, h, err := t.regionSize(r)
	if err != nil {
		return err
	}
	b := c.scratch
	if c.nextAnn > 0 {
		b = append(b, ',')
	}
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, c.nextAnn, 10)
	b = append(b, `,"image_id":`...)
	b = strconv.AppendInt(b, t.ID, 10)
	b = append(b, `,"category_id":`...)
	b = strconv.AppendInt(b, int64(c.cats.id(v.Labels[0])), 10)
	var bx, by, bw, bh, area float64
	if k.Type == labelconfig.RectangleLabels {
		bx, by, bw, bh = boxPixels(v, w, h)
		area = bw * bh
		b = append(b, `,"segmentation":[]`...)
	} else {
		if len(v.Points) == 0 {
			return errors.New("value.points is empty")
		}
		xs := make([]float64, len(v.Points))
		ys := make([]float64, len(v.Points))
		b = append(b, `,"segmentation":[[`...)
		for i, p := range v.Points {
			xs[i], ys[i] = p[0]/100*w, p[1]/100*h
			if i > 0 {
				b = append(b, ',')
			}
			b = appendNum(b, xs[i])
			b = append(b, ',')
			b = appendNum(b, ys[i])
		}
		b = append(b, "]]"...)
		x0, x1 := minMax(xs)
		y0, y1 := minMax(ys)
		bx, by, bw, bh = x0, y0, x1-x0, y1-y0
		area = polygonArea(xs, ys)
	}
	b = append(b, `,"bbox":[`...)
	b = appendNum(b, bx)
	b = append(b, ',')
	b = appendNum(b, by)
	b = append(b, ',')
	b = appendNum(b, bw)
	b = append(b, ',')
	b = appendNum(b, bh)
	b = append(b, `],"ignore":0,"iscrowd":0,"area":`...)
	b = appendNum(b, area)
	b = append(b, '}')
	c.scratch = b
	c.nextAnn++
	return nil
}

// AddImage writes one task's entry in "images".
func (c *coco) AddImage(t Task) error {
	if err := c.start(); err != nil {
		return err
	}
	b := c.scratch
	if c.phase == 0 {
		b = append(b, `],"images":[`...)
		c.phase = 1
	} else {
		b = append(b, ',')
	}
	c.imaged++
	c.imagedSum += mix(t.ID)
	w, h, _ := t.imageSize()
	b = append(b, `{"width":`...)
	b = strconv.AppendInt(b, int64(w), 10)
	b = append(b, `,"height":`...)
	b = strconv.AppendInt(b, int64(h), 10)
	b = append(b, `,"id":`...)
	b = strconv.AppendInt(b, t.ID, 10)
	b = append(b, `,"file_name":`...)
	b = labelconfig.AppendString(b, ImagePath(t))
	b = append(b, '}')
	return c.emit(b)
}

func (c *coco) Close() error {
	if c.closed {
		return errors.New("coco: closed twice")
	}
	if err := c.start(); err != nil {
		return err
	}
	if c.added != c.imaged || c.addedSum != c.imagedSum {
		c.closed = true
		return fmt.Errorf("coco: the image pass saw %d tasks and the annotation pass %d, or not the same ones; call AddImage once for every task added", c.imaged, c.added)
	}
	b := c.scratch
	if c.phase == 0 {
		b = append(b, `],"images":[`...)
	}
	b = append(b, `],"categories":[`...)
	for i, name := range c.cats.names {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `,"name":`...)
		b = labelconfig.AppendString(b, name)
		b = append(b, '}')
	}
	b = append(b, "]}\n"...)
	return c.finish(b)
}
