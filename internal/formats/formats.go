package formats

import (
	"bufio"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"strings"
	"time"

	"github.com/labelq/labelq/internal/labelconfig"
	"github.com/labelq/labelq/internal/zipstream"
)

// Task is one annotated file: a job of the project, with what the export
// needs of its file version and results.
type Task struct {
	// ID is the job id: the task id in label_studio, json_min and csv, and
	// the image id in coco.
	ID                int64
	FileID, VersionID int64
	Filename          string
	StorageKey        string
	// Image is the image's facts recorded at validation; nil for texts or
	// when unknown.
	Image *ImageFacts
	// Text is the task's text for text objects; "" otherwise.
	Text        string
	Annotations []Annotation
	Predictions []Prediction
}

// ImageFacts are an image's stored size and EXIF orientation (1–8; 0 when
// unknown).
type ImageFacts struct {
	Width, Height, Orientation int
}

// Annotation is one person's result for a task.
type Annotation struct {
	ID, CompletedBy int64
	Result          []labelconfig.Region
	CreatedAt       time.Time
}

// Prediction is a model's result for a task.
type Prediction struct {
	ModelVersion string
	Score        *float64
	Result       []labelconfig.Region
}

// Latest is the annotation the single-annotation formats export: the newest
// by CreatedAt, the highest ID among equals; nil when there is none.
func (t Task) Latest() *Annotation {
	var best *Annotation
	for i := range t.Annotations {
		a := &t.Annotations[i]
		if best == nil || a.CreatedAt.After(best.CreatedAt) || (a.CreatedAt.Equal(best.CreatedAt) && a.ID > best.ID) {
			best = a
		}
	}
	return best
}

// displaySize is the image's size as an annotator sees it: the stored size
// with the EXIF orientation applied (orientations 5–8 turn the image a
// quarter, swapping width and height).
func (f *ImageFacts) displaySize() (w, h int, ok bool) {
	if f == nil || f.Width <= 0 || f.Height <= 0 {
		return 0, 0, false
	}
	if f.Orientation >= 5 && f.Orientation <= 8 {
		return f.Height, f.Width, true
	}
	return f.Width, f.Height, true
}

// imageSize is the task's image size in pixels: its image facts, else the
// first region of the latest annotation that records its original size.
func (t *Task) imageSize() (w, h int, ok bool) {
	if w, h, ok := t.Image.displaySize(); ok {
		return w, h, true
	}
	if a := t.Latest(); a != nil {
		for _, r := range a.Result {
			if r.OriginalWidth > 0 && r.OriginalHeight > 0 {
				return r.OriginalWidth, r.OriginalHeight, true
			}
		}
	}
	return 0, 0, false
}

// regionSize is the pixel size a region's percent coordinates refer to: the
// region's original size, else the task's image size.
func (t *Task) regionSize(r *labelconfig.Region) (w, h float64, err error) {
	if r.OriginalWidth > 0 && r.OriginalHeight > 0 {
		return float64(r.OriginalWidth), float64(r.OriginalHeight), nil
	}
	if w, h, ok := t.Image.displaySize(); ok {
		return float64(w), float64(h), nil
	}
	return 0, 0, errors.New("no pixel size: the region has no original_width/original_height and the file has no image facts; validate the file again to record them")
}

// Writer receives the archive entries a converter writes, one at a time like
// zip.Writer: an entry's writer is valid until the next Create (or the end
// of the conversion). The caller names, packs and checksums each entry.
type Writer interface {
	Create(name string) (io.Writer, error)
}

// Converter turns tasks into one export format's files.
//
// Single-document formats (label_studio, json_min, csv, coco, conll2003)
// create their entry at the first Add (or Close) and keep it open until
// Close; per-image formats (yolo, voc) create and finish each task's entry
// within Add, so a caller that packs images may write each image's entry
// between two Adds.
type Converter interface {
	// Add converts one task. Call it once per task, in export order.
	Add(Task) error
	// Close writes what comes after the last task (closing brackets, COCO's
	// categories, YOLO's classes.txt and data.yaml) and flushes.
	Close() error
}

// ImagePass is a Converter that lists every task's image after the
// annotations (coco): after the last Add, call AddImage once for every task
// (in any order), then Close. AddImage reads only ID, Filename and Image
// (and, when Image is nil, the original size regions record, if the task
// carries its annotations).
type ImagePass interface {
	Converter
	AddImage(Task) error
}

// NeedsImagePass reports whether format's converter is an [ImagePass].
func NeedsImagePass(format string) bool { return format == labelconfig.FormatCOCO }

// Entry names of the single-document formats, as Label Studio names them.
const (
	ResultJSON  = "result.json"  // label_studio, json_min, coco
	ResultCSV   = "result.csv"   // csv
	ResultCoNLL = "result.conll" // conll2003
	YOLOClasses = "classes.txt"
	YOLOData    = "data.yaml"
)

// New returns the converter for format. The config must be valid and fit
// the format ([labelconfig.Config.Fits]); "labelq" is the archive's own
// layout and has no converter.
func New(format string, cfg labelconfig.Config, w Writer) (Converter, error) {
	if w == nil {
		return nil, errors.New("formats: nil Writer")
	}
	if format == labelconfig.FormatLabelq {
		return nil, errors.New("formats: labelq is the archive's own layout; it has no converter")
	}
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if err := cfg.Fits(format); err != nil {
		return nil, err
	}
	switch format {
	case labelconfig.FormatLabelStudio:
		return newLabelStudio(cfg, w), nil
	case labelconfig.FormatJSONMin:
		return newJSONMin(cfg, w), nil
	case labelconfig.FormatCSV:
		return newCSV(cfg, w), nil
	case labelconfig.FormatCOCO:
		return newCOCO(cfg, w), nil
	case labelconfig.FormatYOLO:
		return newYOLO(cfg, w), nil
	case labelconfig.FormatVOC:
		return newVOC(cfg, w), nil
	case labelconfig.FormatCoNLL2003:
		return newCoNLL(cfg, w), nil
	}
	return nil, fmt.Errorf("formats: no converter for %q", format)
}

// ImagePath is where a task's image goes in the archive: "images/" and the
// sanitised file name (directories in the name are kept). Formats that name
// images (coco's file_name, label_studio's data, voc's filename) use it, and
// so must the caller when it packs the images.
func ImagePath(t Task) string { return zipstream.SanitizePath("images/", t.Filename) }

// imageRel is ImagePath below images/.
func imageRel(t Task) string { return strings.TrimPrefix(ImagePath(t), "images/") }

// stem is a path without its file extension ("dir/a.b.jpg" → "dir/a.b").
func stem(p string) string {
	slash := strings.LastIndexByte(p, '/')
	if dot := strings.LastIndexByte(p, '.'); dot > slash+1 {
		return p[:dot]
	}
	return p
}

// YOLOLabelPath is the yolo label file of a task: labels/<image name without
// extension>.txt, where Ultralytics looks for it.
func YOLOLabelPath(t Task) string { return "labels/" + stem(imageRel(t)) + ".txt" }

// VOCAnnotationPath is the voc annotation file of a task:
// Annotations/<image name without extension>.xml.
func VOCAnnotationPath(t Task) string { return "Annotations/" + stem(imageRel(t)) + ".xml" }

// nameGuard notices two tasks needing the same label file. It keeps a hash
// of each name (folded to lower case, as case-insensitive file systems
// would) and the file id that took it.
type nameGuard struct {
	used map[uint64]int64
}

func (g *nameGuard) claim(name string, t Task) error {
	if g.used == nil {
		g.used = make(map[uint64]int64)
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(strings.ToLower(name)))
	k := h.Sum64()
	if prev, ok := g.used[k]; ok {
		return fmt.Errorf("%s is already the label file of file %d; the tools pair an image with its label file by name without extension, so rename file %d (%q) or file %d", name, prev, t.FileID, t.Filename, prev)
	}
	g.used[k] = t.FileID
	return nil
}

// taskErr says which task a conversion error is about.
func taskErr(format string, t Task, err error) error {
	return fmt.Errorf("%s: task %d (file %d %q): %w", format, t.ID, t.FileID, t.Filename, err)
}

// doc is a single-document output: one entry, written through a buffer, with
// a scratch buffer each task's bytes are built in.
type doc struct {
	w       Writer
	name    string
	out     *bufio.Writer
	scratch []byte
	closed  bool
}

const (
	docBuffer = 64 << 10
	// maxScratch is the largest scratch buffer kept between tasks: one
	// enormous task should not pin its size for the rest of the export.
	maxScratch = 1 << 20
)

func (d *doc) open() error {
	if d.closed {
		return errors.New("converter is closed")
	}
	if d.out != nil {
		return nil
	}
	ew, err := d.w.Create(d.name)
	if err != nil {
		return fmt.Errorf("create %s: %w", d.name, err)
	}
	d.out = bufio.NewWriterSize(ew, docBuffer)
	return nil
}

// emit writes b (usually d.scratch) and recycles the scratch buffer.
func (d *doc) emit(b []byte) error {
	if _, err := d.out.Write(b); err != nil {
		return fmt.Errorf("write %s: %w", d.name, err)
	}
	if cap(b) > maxScratch {
		b = nil
	}
	d.scratch = b[:0]
	return nil
}

func (d *doc) finish(tail []byte) error {
	if err := d.open(); err != nil {
		return err
	}
	d.closed = true
	if _, err := d.out.Write(tail); err != nil {
		return fmt.Errorf("write %s: %w", d.name, err)
	}
	if err := d.out.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", d.name, err)
	}
	return nil
}

// controlsOf maps control names to controls.
func controlsOf(cfg labelconfig.Config) map[string]labelconfig.Control {
	m := make(map[string]labelconfig.Control, len(cfg.Controls))
	for _, k := range cfg.Controls {
		m[k.Name] = k
	}
	return m
}

// categories numbers labels from 0: the config's labels of the given control
// types in config order, then labels met in results that the config lacks.
type categories struct {
	names []string
	ids   map[string]int
}

func newCategories(cfg labelconfig.Config, types ...labelconfig.ControlType) *categories {
	c := &categories{ids: make(map[string]int)}
	for _, k := range cfg.Controls {
		for _, t := range types {
			if k.Type == t {
				for _, l := range k.Labels {
					c.id(l)
				}
			}
		}
	}
	return c
}

func (c *categories) id(name string) int {
	if id, ok := c.ids[name]; ok {
		return id
	}
	id := len(c.names)
	c.ids[name] = id
	c.names = append(c.names, name)
	return id
}
