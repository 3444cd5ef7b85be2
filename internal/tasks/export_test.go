package tasks_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/tasks"
)

// TestParseExportOptions pins export_logs.options: absent fields take their
// defaults (include_consensus false), include_consensus alone is a selection,
// and options that select nothing or are not the object are refused.
func TestParseExportOptions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in, want, wantErr string
	}{
		{``, `{"include_files":true,"include_annotations":true,"include_llm":false,"include_consensus":false}`, ""},
		{`{}`, `{"include_files":true,"include_annotations":true,"include_llm":false,"include_consensus":false}`, ""},
		{`{"include_consensus":true}`, `{"include_files":true,"include_annotations":true,"include_llm":false,"include_consensus":true}`, ""},
		{`{"include_files":false,"include_annotations":false,"include_consensus":true}`,
			`{"include_files":false,"include_annotations":false,"include_llm":false,"include_consensus":true}`, ""},
		{`{"include_files":false,"include_annotations":false}`, ``, "include_consensus"},
		{`{"include_files":false,"include_annotations":false,"include_consensus":false}`, ``, "options include nothing"},
		{`{"include_consensus":"yes"}`, ``, "include_consensus"},
		{`[]`, ``, "not a JSON object"},
	}
	for _, tc := range cases {
		o, err := tasks.ParseExportOptions(json.RawMessage(tc.in))
		if tc.wantErr != "" {
			require.ErrorContains(t, err, tc.wantErr, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		b, err := json.Marshal(o)
		require.NoError(t, err)
		require.JSONEq(t, tc.want, string(b), tc.in)
	}
}

func TestExportOptionsCheck(t *testing.T) {
	t.Parallel()
	yes, no := true, false
	require.NoError(t, tasks.ExportOptions{}.Check(), "the defaults pack files and results")
	nothing := tasks.ExportOptions{IncludeFiles: &no, IncludeAnnotations: &no, IncludeLLM: &no}
	require.ErrorIs(t, nothing.Check(), tasks.ErrEmptyExport)
	require.Contains(t, tasks.ErrEmptyExport.Error(), "include_consensus")
	consensus := nothing
	consensus.IncludeConsensus = &yes
	require.NoError(t, consensus.Check(), "consensus results alone are something to pack")
	n := tasks.ExportOptions{}.Normalized()
	require.NotNil(t, n.IncludeConsensus)
	require.False(t, *n.IncludeConsensus, "include_consensus defaults to false")
	kept := tasks.ExportOptions{IncludeConsensus: &yes}.Normalized()
	require.True(t, *kept.IncludeConsensus, "Normalized keeps what was asked")
}
