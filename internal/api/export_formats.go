package api

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/formats"
	"github.com/labelq/labelq/internal/labelconfig"
)

// exportFormat resolves what an export (or a schedule's exports) asks for:
// the format (labelq when none is given) and the options with that format's
// defaults filled in (formats.Defaults), checked against the project's label
// config now, so that a format the config cannot feed (COCO of a text
// project, any converted format without a config) is a 422 naming the field
// rather than a failed export later. The worker checks again when the export
// runs, since the config may change in between. include_consensus (default
// false) is labelq's only: with another format it is a 422 on
// options.include_consensus naming the formats that take it.
func (c *Call) exportFormat(projectID int64, format *string, o ExportOptions) (string, ExportOptions, error) {
	f := labelconfig.FormatLabelq
	if format != nil {
		f = *format
	}
	files, annotations, llm := formats.Defaults(f, o.IncludeFiles, o.IncludeAnnotations, o.IncludeLLM)
	consensus := o.IncludeConsensus != nil && *o.IncludeConsensus
	var raw json.RawMessage
	if f != labelconfig.FormatLabelq {
		pr, err := c.Q.ProjectGet(c.R.Context(), db.ProjectGetParams{ID: projectID, OrgID: c.OrgID})
		if err != nil {
			return "", ExportOptions{}, orNotFound(err, "project")
		}
		raw = pr.LabelConfig
	}
	if _, err := formats.FitOptions(f, raw, files, annotations, llm, consensus); err != nil {
		var fe *formats.FitError
		if errors.As(err, &fe) {
			reason := strings.ReplaceAll(fe.Reason, "{project_id}", strconv.FormatInt(projectID, 10))
			return "", ExportOptions{}, invalid(fe.Field, reason)
		}
		return "", ExportOptions{}, err
	}
	resolved := ExportOptions{IncludeFiles: &files, IncludeAnnotations: &annotations, IncludeLLM: &llm}
	if f == labelconfig.FormatLabelq {
		// labelq's options say whether consensus results are packed; the
		// converted formats take none (FitOptions), and say nothing of them.
		resolved.IncludeConsensus = &consensus
	}
	return f, resolved, nil
}
