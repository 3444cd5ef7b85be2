package resultcheck

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/labelconfig"
)

// TestValidateRegionsChecksSpansWithoutText: a span is checked by its labels
// and offsets, not against an empty text (which would refuse every span);
// a label the config does not have is still refused.
func TestValidateRegionsChecksSpansWithoutText(t *testing.T) {
	cfg := labelconfig.Config{
		Objects:  []labelconfig.Object{{Name: "text", Type: labelconfig.ObjectText, Value: "$text"}},
		Controls: []labelconfig.Control{{Name: "ner", Type: labelconfig.Labels, ToName: "text", Labels: []string{"PER"}}},
	}
	ok, err := labelconfig.ParseResult([]byte(`[{"from_name": "ner", "to_name": "text", "type": "labels", "value": {"start": 20, "end": 28, "labels": ["PER"]}}]`))
	require.NoError(t, err)
	require.Error(t, cfg.Validate(ok, ""), "against an empty text the span is past the end")
	require.NoError(t, ValidateRegions(cfg, ok))
	bad, err := labelconfig.ParseResult([]byte(`[{"from_name": "ner", "to_name": "text", "type": "labels", "value": {"start": 20, "end": 28, "labels": ["ORG"]}}]`))
	require.NoError(t, err)
	require.ErrorContains(t, ValidateRegions(cfg, bad), "ORG")
}
