package resultcheck_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/labelconfig"
	"github.com/labelq/labelq/internal/resultcheck"
)

func ner(t *testing.T) labelconfig.Config {
	t.Helper()
	cfg, err := labelconfig.FromXML(strings.NewReader(`<View>
  <Text name="text" value="$text"/>
  <Labels name="label" toName="text"><Label value="PER"/><Label value="LOC"/></Labels>
  <Choices name="topic" toName="text"><Choice value="News"/><Choice value="Sport"/></Choices>
</View>`))
	require.NoError(t, err)
	return cfg
}

func TestIsJSON(t *testing.T) {
	for in, want := range map[string]bool{
		`[]`: true, ` {"result": []}`: true, "\ufeff[{}]": true, "\n\t[": true,
		"id,label\n1,cat": false, "": false, "\x89PNG": false, `"a string"`: false,
	} {
		require.Equal(t, want, resultcheck.IsJSON([]byte(in)), "%q", in)
	}
}

func TestNeedsText(t *testing.T) {
	require.True(t, resultcheck.NeedsText(ner(t)))
	img, err := labelconfig.Parse([]byte(`{"objects": [{"name": "image", "type": "image", "value": "$image"}],
		"controls": [{"name": "label", "type": "rectanglelabels", "to_name": "image", "labels": ["Car"]}]}`))
	require.NoError(t, err)
	require.False(t, resultcheck.NeedsText(img))
}

// Without the task's text, a span is checked for everything but its bounds and
// quoted text, and the region at fault keeps its index in the whole result.
func TestCheckWithoutText(t *testing.T) {
	cfg := ner(t)
	const good = `{"from_name": "label", "to_name": "text", "type": "labels", "value": {"start": 3, "end": 9, "text": "Lovelace?", "labels": ["PER"]}}`
	const topic = `{"from_name": "topic", "to_name": "text", "type": "choices", "value": {"choices": ["News"]}}`
	tests := []struct {
		name   string
		result string
		index  int
		field  string
		reason string
	}{
		{"spans and choices", `[` + good + `,` + topic + `]`, -1, "", ""},
		{"an annotation object", `{"id": 1, "result": [` + good + `]}`, -1, "", ""},
		{"an unknown label", `[` + good + `,` + topic + `, {"from_name": "label", "to_name": "text", "type": "labels", "value": {"start": 0, "end": 2, "labels": ["ORG"]}}]`,
			2, "value.labels", `"ORG" is not one of control "label"'s labels`},
		{"end before start", `[` + topic + `, {"from_name": "label", "to_name": "text", "type": "labels", "value": {"start": 5, "end": 5, "labels": ["LOC"]}}]`,
			1, "value.end", "value.end = 5 must be after value.start = 5"},
		{"a negative start", `[{"from_name": "label", "to_name": "text", "type": "labels", "value": {"start": -1, "end": 5, "labels": ["LOC"]}}]`,
			0, "value.start", "before the start of the text"},
		{"a missing end", `[{"from_name": "label", "to_name": "text", "type": "labels", "value": {"start": 1, "labels": ["LOC"]}}]`,
			0, "value.end", "value.end is missing"},
		{"the wrong choice", `[` + good + `, {"from_name": "topic", "to_name": "text", "type": "choices", "value": {"choices": ["Weather"]}}]`,
			1, "value.choices", `"Weather" is not one of control "topic"'s choices`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := resultcheck.Check(cfg, []byte(tc.result), nil)
			if tc.index < 0 {
				require.NoError(t, err)
				return
			}
			var ve *labelconfig.ValidationError
			require.True(t, errors.As(err, &ve), "%v", err)
			require.Equal(t, tc.index, ve.Index)
			require.Equal(t, tc.field, ve.Field)
			require.Contains(t, ve.Reason, tc.reason)
		})
	}
	// With the text, the same span is held to it.
	text := "Ada Lovelace"
	err := resultcheck.Check(cfg, []byte(`[`+good+`]`), &text)
	var ve *labelconfig.ValidationError
	require.True(t, errors.As(err, &ve), "%v", err)
	require.Equal(t, "value.text", ve.Field)
	short := "Ada"
	err = resultcheck.Check(cfg, []byte(`[`+good+`]`), &short)
	require.True(t, errors.As(err, &ve), "%v", err)
	require.Equal(t, "value.end", ve.Field)
	// A byte order mark does not hide a result.
	require.NoError(t, resultcheck.Check(cfg, []byte("\ufeff["+topic+"]"), nil))
}
