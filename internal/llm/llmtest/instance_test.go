package llmtest_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/llm"
	"github.com/labelq/labelq/internal/llm/llmtest"
)

// Every generated instance must satisfy its schema, checked by the same
// validator the worker uses.
func TestMinimalInstanceSatisfiesSchema(t *testing.T) {
	tests := map[string]string{
		"enum and bounds":      schema,
		"nested array object":  `{"type":"object","properties":{"items":{"type":"array","minItems":2,"uniqueItems":true,"items":{"type":"object","properties":{"t":{"type":"string","minLength":12},"n":{"type":"integer","exclusiveMinimum":3,"multipleOf":5}},"required":["t","n"],"additionalProperties":false}}},"required":["items"],"additionalProperties":false}`,
		"refs and defs":        `{"$defs":{"label":{"type":"string","enum":["a","b"]},"box":{"type":"object","properties":{"label":{"$ref":"#/$defs/label"},"x":{"type":"number","maximum":-2}},"required":["label","x"]}},"type":"object","properties":{"boxes":{"type":"array","items":{"$ref":"#/$defs/box"}}},"required":["boxes"]}`,
		"nullable and anyOf":   `{"type":"object","properties":{"note":{"type":["string","null"]},"v":{"anyOf":[{"type":"null"},{"type":"integer","minimum":10}]}},"required":["note","v"]}`,
		"const and formats":    `{"type":"object","properties":{"k":{"const":"fixed"},"when":{"type":"string","format":"date-time"},"mail":{"type":"string","format":"email"},"id":{"type":"string","format":"uuid"}},"required":["k","when","mail","id"]}`,
		"unique enum items":    `{"type":"array","minItems":3,"uniqueItems":true,"items":{"enum":["x","y","z"]}}`,
		"unique integer items": `{"type":"array","minItems":3,"maxItems":3,"uniqueItems":true,"items":{"type":"integer","minimum":0,"maximum":10}}`,
		"allOf":                `{"allOf":[{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]},{"type":"object","properties":{"b":{"type":"boolean"}},"required":["b"]}]}`,
		"string bounds":        `{"type":"string","maxLength":3}`,
		"min properties":       `{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"}},"minProperties":2}`,
		"prefix items":         `{"type":"array","prefixItems":[{"type":"string"},{"type":"integer"}],"items":false}`,
	}
	for name, s := range tests {
		t.Run(name, func(t *testing.T) {
			v, err := llmtest.MinimalInstance(json.RawMessage(s))
			require.NoError(t, err)
			out, err := json.Marshal(v)
			require.NoError(t, err)
			require.NoError(t, llm.ValidateOutput(json.RawMessage(s), string(out)), "instance %s", out)
		})
	}
}
