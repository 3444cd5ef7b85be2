package tasks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// ExportOptions choose what an export packs (export_logs.options): written by the
// API, read by the project:export worker. An absent field takes the default, so a
// row written by hand or by an older version packs approved results with their raw
// files, without model outputs or consensus results.
type ExportOptions struct {
	IncludeFiles       *bool `json:"include_files,omitempty"`
	IncludeAnnotations *bool `json:"include_annotations,omitempty"`
	IncludeLLM         *bool `json:"include_llm,omitempty"`
	// IncludeConsensus packs each job's consensus result (consensus_results,
	// written by project:consensus) under consensus/; format labelq only.
	IncludeConsensus *bool `json:"include_consensus,omitempty"`
}

// Normalized fills the defaults, so stored options say exactly what was packed.
func (o ExportOptions) Normalized() ExportOptions {
	t, f := true, false
	if o.IncludeFiles == nil {
		o.IncludeFiles = &t
	}
	if o.IncludeAnnotations == nil {
		o.IncludeAnnotations = &t
	}
	if o.IncludeLLM == nil {
		o.IncludeLLM = &f
	}
	if o.IncludeConsensus == nil {
		o.IncludeConsensus = &f
	}
	return o
}

// ErrEmptyExport says the options select nothing to pack.
var ErrEmptyExport = errors.New("options include nothing: set at least one of include_files, include_annotations, include_llm, include_consensus")

// Check reports options that pack nothing.
func (o ExportOptions) Check() error {
	n := o.Normalized()
	if !*n.IncludeFiles && !*n.IncludeAnnotations && !*n.IncludeLLM && !*n.IncludeConsensus {
		return ErrEmptyExport
	}
	return nil
}

// ParseExportOptions reads export_logs.options, fills the defaults and checks
// that something is selected.
func ParseExportOptions(raw json.RawMessage) (ExportOptions, error) {
	var o ExportOptions
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &o); err != nil {
			return ExportOptions{}, fmt.Errorf("options are not a JSON object of include_files, include_annotations, include_llm, include_consensus: %w", err)
		}
	}
	if err := o.Check(); err != nil {
		return ExportOptions{}, err
	}
	return o.Normalized(), nil
}
