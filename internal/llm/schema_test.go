package llm_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/llm"
	"github.com/labelq/labelq/internal/schema"
)

func TestValidateOutput(t *testing.T) {
	schema := json.RawMessage(labelSchema)
	tests := []struct {
		name     string
		output   string
		problems []string // "path: message" fragments; nil means valid
		syntax   bool
	}{
		{name: "valid", output: `{"label":"positive","confidence":0.9,"spans":[{"start":0,"end":4}]}`},
		{name: "valid with whitespace", output: " \n{\"label\":\"neutral\",\"confidence\":0,\"spans\":[]}\n"},
		{name: "missing field", output: `{"confidence":0.9,"spans":[]}`, problems: []string{"/label: required property is missing"}},
		{name: "two missing fields", output: `{"spans":[]}`, problems: []string{"/label: required property is missing", "/confidence: required property is missing"}},
		{name: "enum", output: `{"label":"angry","confidence":0.9,"spans":[]}`, problems: []string{"/label: value must be one of"}},
		{name: "range", output: `{"label":"positive","confidence":1.5,"spans":[]}`, problems: []string{"/confidence: maximum: got 1.5, want 1"}},
		{name: "nested", output: `{"label":"positive","confidence":1,"spans":[{"start":0},{"start":1,"end":"2"}]}`, problems: []string{"/spans/0/end: required property is missing", "/spans/1/end: got string, want integer"}},
		{name: "extra field", output: `{"label":"positive","confidence":1,"spans":[],"note":"x"}`, problems: []string{"/note: property is not allowed"}},
		{name: "wrong root type", output: `[1]`, problems: []string{"(root): got array, want object"}},
		{name: "not JSON", output: `{"label": "positive"`, syntax: true},
		{name: "code fence", output: "```json\n{\"label\":\"positive\",\"confidence\":1,\"spans\":[]}\n```", syntax: true},
		{name: "two values", output: `{} {}`, syntax: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := llm.ValidateOutput(schema, tt.output)
			if tt.problems == nil && !tt.syntax {
				require.NoError(t, err)
				return
			}
			var oe *llm.OutputError
			require.ErrorAs(t, err, &oe)
			if tt.syntax {
				require.NotEmpty(t, oe.Syntax)
				require.Contains(t, err.Error(), "not valid JSON")
				return
			}
			require.Len(t, oe.Problems, len(tt.problems), "problems: %v", oe.Problems)
			for _, want := range tt.problems {
				require.Contains(t, err.Error(), want)
			}
		})
	}
}

func TestValidateOutputWithoutSchemaAcceptsAnything(t *testing.T) {
	require.NoError(t, llm.ValidateOutput(nil, "plain words"))
	require.NoError(t, llm.ValidateOutput(json.RawMessage("null"), "plain words"))
}

func TestCompileSchemaRefusesExternalRefs(t *testing.T) {
	for _, ref := range []string{"file:///etc/passwd", "https://example.com/schema.json", "other.json"} {
		_, err := llm.CompileSchema(json.RawMessage(`{"type":"object","properties":{"a":{"$ref":"` + ref + `"}}}`))
		require.Error(t, err, ref)
	}
	// Local references and a declared draft still work.
	s, err := llm.CompileSchema(json.RawMessage(`{"$schema":"http://json-schema.org/draft-07/schema#","definitions":{"l":{"type":"string"}},"type":"object","properties":{"a":{"$ref":"#/definitions/l"}},"required":["a"]}`))
	require.NoError(t, err)
	require.NoError(t, s.Validate(`{"a":"x"}`))
	require.ErrorContains(t, s.Validate(`{"a":1}`), "/a: got number, want string")
}

func TestCompileSchemaRejectsInvalidSchema(t *testing.T) {
	_, err := llm.CompileSchema(json.RawMessage(`{"type":"objekt"}`))
	require.ErrorContains(t, err, "not a valid JSON Schema")
	_, err = llm.CompileSchema(json.RawMessage(`{"type":`))
	require.ErrorContains(t, err, "not valid JSON")
}

func TestRepairPrompt(t *testing.T) {
	p, err := llm.BuildPrompt(spec("text/plain", []byte("x")))
	require.NoError(t, err)
	verr := llm.ValidateOutput(json.RawMessage(labelSchema), `{"confidence":2}`)
	require.Error(t, verr)

	r := llm.RepairPrompt(p, `{"confidence":2}`, verr)
	require.Len(t, r.Messages, len(p.Messages)+2)
	require.Equal(t, p.Messages, r.Messages[:len(p.Messages)], "the original conversation is kept")
	require.Equal(t, llm.RoleAssistant, r.Messages[2].Role)
	require.Equal(t, `{"confidence":2}`, r.Messages[2].Text())
	ask := r.Messages[3].Text()
	require.Equal(t, llm.RoleUser, r.Messages[3].Role)
	require.Contains(t, ask, "/label: required property is missing")
	require.Contains(t, ask, "/confidence: maximum")
	require.Contains(t, ask, "only the corrected JSON")
	require.NotContains(t, ask, "llm: ")

	require.Len(t, p.Messages, 2, "the input prompt is not modified")

	empty := llm.RepairPrompt(p, "", verr)
	require.NotEmpty(t, empty.Messages[2].Text(), "an empty assistant turn would be rejected by the API")

	long := llm.RepairPrompt(p, strings.Repeat("x", 100000), verr)
	require.Less(t, len(long.Messages[2].Text()), 17000)
}

// The worker compiles with the API's compiler (internal/schema): the same
// refusals, as a *schema.Error, and nothing read from /dev/stdin or a file.
func TestCompileSchemaIsTheSharedCompiler(t *testing.T) {
	for _, doc := range []string{
		`{"$ref":"/dev/stdin"}`, `{"$ref":"/etc/passwd"}`, `{"$ref":"https://example.com/s.json"}`,
		strings.Repeat(`{"not":`, schema.MaxDepth+1) + `{}` + strings.Repeat(`}`, schema.MaxDepth+1),
		`{"description":"` + strings.Repeat("x", schema.MaxBytes) + `"}`,
	} {
		done := make(chan error, 1)
		go func() { _, err := llm.CompileSchema(json.RawMessage(doc)); done <- err }()
		select {
		case err := <-done:
			var se *schema.Error
			require.True(t, errors.As(err, &se), "%.80s: %v", doc, err)
			_, apiErr := schema.Compile([]byte(doc))
			require.Equal(t, apiErr.Error(), se.Error(), "the same refusal as the API's")
		case <-time.After(2 * time.Second):
			t.Fatalf("CompileSchema(%.80s) blocked", doc)
		}
	}
}
