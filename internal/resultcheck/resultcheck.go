// Package resultcheck checks stored annotation results against a project's
// label config, for the two places that do it: file:validate (an
// annotation_results version) and the API (a job's result set through PATCH
// /v1/jobs/{id}, and the annotations and predictions of an import). It reads
// the bytes of a result and of the text it annotates with fixed bounds, and
// leaves the checks themselves to internal/labelconfig.
package resultcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/labelq/labelq/internal/labelconfig"
	"github.com/labelq/labelq/internal/storage"
)

// Bounds on what is read to check a result.
const (
	// MaxResultBytes is the largest result checked against a label config; a
	// larger one is refused (CodeTooLarge). A Label Studio result of 100,000
	// boxes is about 25 MiB.
	MaxResultBytes = 32 << 20
	// MaxTextBytes is the most of a task's text read to check span offsets
	// against it; the spans of a longer text are checked without it (see
	// Check), and the check says so.
	MaxTextBytes = 10 << 20
)

// Codes of the findings, as file:validate records them.
const (
	CodeInvalid  = "result_invalid"   // a region does not fit the label config or the result format
	CodeTooLarge = "result_too_large" // more than MaxResultBytes
)

// IsJSON says whether b looks like JSON (a list or an object): the only
// results a label config describes. Other results (CSV, a COCO zip, mask
// images) are not checked against it.
func IsJSON(b []byte) bool {
	t := bytes.TrimLeft(b, " \t\r\n\ufeff") // \ufeff: a UTF-8 byte order mark
	return len(t) > 0 && (t[0] == '[' || t[0] == '{')
}

// NeedsText says whether checking results against cfg needs the task's text:
// it has a text object, and so may have spans.
func NeedsText(cfg labelconfig.Config) bool {
	for _, o := range cfg.Objects {
		if o.Type == labelconfig.ObjectText {
			return true
		}
	}
	return false
}

// Check parses result (a Label Studio result list, or an annotation or
// prediction object holding one) and validates it against cfg. text is the
// task's text, or nil when it is not known (or, for a config without a text
// object, not needed): span regions are then checked for
// everything but the text (their control, type, labels and 0 ≤ start < end),
// since their bounds and quoted text cannot be. The error is a
// *labelconfig.ValidationError naming the region and field, or another error
// when the JSON is not a result at all.
func Check(cfg labelconfig.Config, result []byte, text *string) error {
	regions, err := labelconfig.ParseResult(bytes.TrimPrefix(result, []byte("\xef\xbb\xbf")))
	if err != nil {
		return err
	}
	switch {
	case text != nil:
		return cfg.Validate(regions, *text)
	case !NeedsText(cfg):
		return cfg.Validate(regions, "") // no spans to check against a text
	}
	return validateWithoutText(cfg, regions)
}

// validateWithoutText validates regions one by one: every region but a span
// against an empty text, a span against a stand-in text that holds it, with
// its quoted text left out.
func validateWithoutText(cfg labelconfig.Config, regions []labelconfig.Region) error {
	for i := range regions {
		r := regions[i]
		stand := ""
		if r.Type == labelconfig.Labels {
			if c, ok := cfg.Control(r.FromName); ok && c.Type == labelconfig.Labels {
				var err error
				if r, stand, err = withoutText(r); err != nil {
					return &labelconfig.ValidationError{Index: i, FromName: r.FromName, Field: "value", Reason: err.Error()}
				}
			}
		}
		if err := cfg.Validate([]labelconfig.Region{r}, stand); err != nil {
			var ve *labelconfig.ValidationError
			if errors.As(err, &ve) {
				ve.Index = i
			}
			return err
		}
	}
	return nil
}

// withoutText is a span region without its quoted text, and a text just long
// enough for its end offset ("" when the offset is unusable: Validate then
// names it).
func withoutText(r labelconfig.Region) (labelconfig.Region, string, error) {
	var v map[string]json.RawMessage
	if err := json.Unmarshal(r.Value, &v); err != nil {
		return r, "", nil // Validate names what is wrong with the value
	}
	delete(v, "text")
	b, err := json.Marshal(v)
	if err != nil {
		return r, "", err
	}
	r.Value = b
	var end float64
	if raw, ok := v["end"]; ok && json.Unmarshal(raw, &end) == nil && end > 0 && end <= MaxTextBytes {
		return r, strings.Repeat(" ", int(math.Ceil(end))), nil
	}
	return r, "", nil
}

// ErrTooLarge is an object longer than the limit it was read with.
var ErrTooLarge = errors.New("object larger than the limit")

// Read reads the object key of src, at most limit bytes; a longer object is
// ErrTooLarge (wrapped with its size when known). A non-empty etag reads the
// object validation measured (If-Match), so bytes replaced since fail the read
// instead of being checked in their place.
func Read(ctx context.Context, src *storage.Source, key, etag string, limit int64) ([]byte, error) {
	var opts minio.GetObjectOptions
	if etag != "" {
		if err := opts.SetMatchETag(etag); err != nil {
			return nil, err
		}
	}
	obj, err := src.Client.GetObject(ctx, src.Bucket, key, opts)
	if err != nil {
		return nil, err
	}
	defer func() { _ = obj.Close() }()
	b, err := io.ReadAll(io.LimitReader(obj, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%q is larger than %d bytes: %w", key, limit, ErrTooLarge)
	}
	return b, nil
}
