package formats

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/labelq/labelq/internal/labelconfig"
)

// labelStudio writes result.json: a JSON list of Label Studio tasks, one a
// line, as Label Studio's own JSON export has them:
//
//	{"id": 7, "data": {"image": "images/a.jpg"},
//	 "annotations": [{"id": 3, "completed_by": 12, "result": [...], "created_at": "2025-01-02T03:04:05Z"}],
//	 "predictions": [{"model_version": "gpt-4o", "score": 0.9, "result": [...]}],
//	 "meta": {"file_id": 5, "version_id": 9, "filename": "a.jpg", "storage_key": "..."}}
//
// data has one field per data field of the config's objects: the image's
// ImagePath, or the text. Every annotation and prediction is exported, in
// the task's order, their results region by region as they were stored.
// meta (which Label Studio keeps as it is on import) says where the task came
// from in labelq.
type labelStudio struct {
	doc
	keys  []dataKey
	tasks int64
}

type dataKey struct {
	key   string
	image bool
}

// dataKeys lists the config's data fields once each, in object order.
func dataKeys(cfg labelconfig.Config) []dataKey {
	var keys []dataKey
	seen := map[string]bool{}
	for _, o := range cfg.Objects {
		if k := o.DataKey(); !seen[k] {
			seen[k] = true
			keys = append(keys, dataKey{key: k, image: o.Type == labelconfig.ObjectImage})
		}
	}
	return keys
}

func (k dataKey) value(t Task) string {
	if k.image {
		return ImagePath(t)
	}
	return t.Text
}

func newLabelStudio(cfg labelconfig.Config, w Writer) *labelStudio {
	return &labelStudio{doc: doc{w: w, name: ResultJSON}, keys: dataKeys(cfg)}
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

func appendResult(b []byte, regions []labelconfig.Region) ([]byte, error) {
	b = append(b, '[')
	for i := range regions {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = regions[i].AppendJSON(b); err != nil {
			return b, fmt.Errorf("region %d: %w", i, err)
		}
	}
	return append(b, ']'), nil
}

func (l *labelStudio) Add(t Task) error {
	if err := l.open(); err != nil {
		return err
	}
	b := l.scratch
	if l.tasks == 0 {
		b = append(b, "[\n"...)
	} else {
		b = append(b, ",\n"...)
	}
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, t.ID, 10)
	b = append(b, `,"data":{`...)
	for i, k := range l.keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = labelconfig.AppendString(b, k.key)
		b = append(b, ':')
		b = labelconfig.AppendString(b, k.value(t))
	}
	b = append(b, `},"annotations":[`...)
	var err error
	for i, a := range t.Annotations {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":`...)
		b = strconv.AppendInt(b, a.ID, 10)
		b = append(b, `,"completed_by":`...)
		b = strconv.AppendInt(b, a.CompletedBy, 10)
		b = append(b, `,"result":`...)
		if b, err = appendResult(b, a.Result); err != nil {
			return taskErr("label_studio", t, fmt.Errorf("annotation %d: %w", a.ID, err))
		}
		b = append(b, `,"created_at":`...)
		b = appendTime(b, a.CreatedAt)
		b = append(b, '}')
	}
	b = append(b, `],"predictions":[`...)
	for i, p := range t.Predictions {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"model_version":`...)
		b = labelconfig.AppendString(b, p.ModelVersion)
		b = append(b, `,"score":`...)
		if p.Score == nil {
			b = append(b, "null"...)
		} else {
			b = appendNum(b, *p.Score)
		}
		b = append(b, `,"result":`...)
		if b, err = appendResult(b, p.Result); err != nil {
			return taskErr("label_studio", t, fmt.Errorf("prediction %d: %w", i, err))
		}
		b = append(b, '}')
	}
	b = append(b, `],"meta":{"file_id":`...)
	b = strconv.AppendInt(b, t.FileID, 10)
	b = append(b, `,"version_id":`...)
	b = strconv.AppendInt(b, t.VersionID, 10)
	b = append(b, `,"filename":`...)
	b = labelconfig.AppendString(b, t.Filename)
	b = append(b, `,"storage_key":`...)
	b = labelconfig.AppendString(b, t.StorageKey)
	b = append(b, "}}"...)
	l.tasks++
	return l.emit(b)
}

func (l *labelStudio) Close() error {
	if l.closed {
		return errors.New("label_studio: closed twice")
	}
	if l.tasks == 0 {
		return l.finish([]byte("[]\n"))
	}
	return l.finish([]byte("\n]\n"))
}
