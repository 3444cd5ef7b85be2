package formats

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/labelq/labelq/internal/labelconfig"
)

// What an export asks of a format besides the format itself: the export
// options' include_files, include_annotations and include_llm. The API checks
// a request with [Fit] before it accepts it, and the export worker checks the
// export again when it runs (the label config may have changed since), so
// both give the same answer.
//
// For a converted format (any but labelq) the options mean:
//   - include_files packs each task's image under [ImagePath], where the
//     converted files point; default false, as Label Studio's exports
//     without "with images": the archive carries the annotations, and the
//     images are where they were uploaded. Texts travel inside the formats,
//     so a config without an image object takes no include_files.
//   - include_annotations: the tasks are the approved jobs, with their
//     results (default true, the only choice but for label_studio); false,
//     for label_studio only, exports every job of the project with its data
//     and predictions and no annotations: pre-annotations to load into Label
//     Studio, or tasks to annotate there.
//   - include_llm: label_studio carries the tasks' predictions (the
//     pre-annotation outputs in Label Studio's prediction shape); default
//     true, as Label Studio exports them. The other formats export
//     annotations only and take no include_llm.
//   - include_consensus (default false) packs each job's consensus result as
//     a file of its own under consensus/, which only labelq's layout has: a
//     converted format takes no include_consensus ([FitOptions]).

// FitError is an export request a format cannot honour: Field is the request
// field at fault ("format", "options.include_files", ...), Reason says why
// and what to do.
type FitError struct {
	Field  string
	Reason string
}

func (e *FitError) Error() string { return e.Field + ": " + e.Reason }

// Defaults fills what a request leaves out (nil) for format: labelq's
// defaults (files and approved results, no model outputs) or a converted
// format's (see above).
func Defaults(format string, files, annotations, llm *bool) (bool, bool, bool) {
	or := func(p *bool, d bool) bool {
		if p == nil {
			return d
		}
		return *p
	}
	if format == labelconfig.FormatLabelq {
		return or(files, true), or(annotations, true), or(llm, false)
	}
	return or(files, false), or(annotations, true), or(llm, format == labelconfig.FormatLabelStudio)
}

// Fit checks that a project whose label config is rawConfig (the stored
// JSON; empty or null when it has none) can be exported in format with these
// options, and returns the parsed config (the zero Config for labelq, which
// needs none). The error is a *FitError.
func Fit(format string, rawConfig []byte, files, annotations, llm bool) (labelconfig.Config, error) {
	if !slices.Contains(labelconfig.Formats(), format) {
		return labelconfig.Config{}, &FitError{Field: "format", Reason: fmt.Sprintf("%q is not an export format; use one of %s", format, formatList())}
	}
	if format == labelconfig.FormatLabelq {
		if !files && !annotations && !llm {
			return labelconfig.Config{}, &FitError{Field: "options", Reason: "include at least one of files, annotations, llm or consensus"}
		}
		return labelconfig.Config{}, nil
	}
	if t := bytes.TrimSpace(rawConfig); len(t) == 0 || string(t) == "null" {
		return labelconfig.Config{}, &FitError{Field: "format", Reason: fmt.Sprintf(
			"format %s converts Label Studio results, which needs the project's label config (what is annotated, with which labels), and the project has none; set it with PUT /v1/projects/{project_id}/label-config, or export with format labelq", format)}
	}
	cfg, err := labelconfig.Parse(rawConfig)
	if err != nil {
		return labelconfig.Config{}, &FitError{Field: "format", Reason: fmt.Sprintf(
			"format %s needs the project's label config, and the stored one is not valid (%v); set it again with PUT /v1/projects/{project_id}/label-config", format, err)}
	}
	if err := cfg.Fits(format); err != nil {
		return labelconfig.Config{}, &FitError{Field: "format", Reason: err.Error()}
	}
	switch {
	case files && !hasImage(cfg):
		return labelconfig.Config{}, &FitError{Field: "options.include_files", Reason: fmt.Sprintf(
			"include_files packs the images of format %s, and this label config shows no image (format %s carries the texts itself); leave include_files out", format, format)}
	case !annotations && format != labelconfig.FormatLabelStudio:
		return labelconfig.Config{}, &FitError{Field: "options.include_annotations", Reason: fmt.Sprintf(
			"format %s converts the approved annotations; include_annotations=false (every task, with its predictions only) is for label_studio", format)}
	case llm && format != labelconfig.FormatLabelStudio:
		return labelconfig.Config{}, &FitError{Field: "options.include_llm", Reason: fmt.Sprintf(
			"format %s exports annotations only; predictions (include_llm) travel in label_studio, and model outputs as files in labelq", format)}
	}
	return cfg, nil
}

// ConsensusFormats are the formats that take include_consensus.
func ConsensusFormats() []string { return []string{labelconfig.FormatLabelq} }

// FitOptions is [Fit] for a request that may also set include_consensus
// (consensus): labelq packs the consensus results as files, which is a
// selection of its own; a converted format has no place for them (its tasks
// carry the approved annotations, and a consensus result is neither one nor a
// model's prediction), so consensus with any format but labelq is refused on
// options.include_consensus. An unknown format is Fit's "format" error.
func FitOptions(format string, rawConfig []byte, files, annotations, llm, consensus bool) (labelconfig.Config, error) {
	switch {
	case !consensus:
		return Fit(format, rawConfig, files, annotations, llm)
	case format == labelconfig.FormatLabelq:
		return labelconfig.Config{}, nil // something is selected: the consensus results
	case !slices.Contains(labelconfig.Formats(), format):
		return Fit(format, rawConfig, files, annotations, llm)
	}
	return labelconfig.Config{}, &FitError{Field: "options.include_consensus", Reason: fmt.Sprintf(
		"include_consensus packs each job's consensus result as a file under consensus/, which only format %s supports; format %s converts the approved annotations and carries no consensus result: export with format labelq, or leave include_consensus out",
		strings.Join(ConsensusFormats(), ", "), format)}
}

func hasImage(cfg labelconfig.Config) bool {
	return slices.ContainsFunc(cfg.Objects, func(o labelconfig.Object) bool { return o.Type == labelconfig.ObjectImage })
}

// HasText reports whether the config shows a text, which a converted export
// then reads from each task's file.
func HasText(cfg labelconfig.Config) bool {
	return slices.ContainsFunc(cfg.Objects, func(o labelconfig.Object) bool { return o.Type == labelconfig.ObjectText })
}

func formatList() string {
	var b []byte
	for i, f := range labelconfig.Formats() {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, f...)
	}
	return string(b)
}
