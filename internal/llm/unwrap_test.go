package llm_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/llm"
)

func TestUnwrapJSON(t *testing.T) {
	t.Parallel()
	const obj = `{"label":"positive","confidence":0.9}`
	tests := []struct {
		name  string
		reply string
		want  string // "" with ok false
		how   llm.Unwrapping
	}{
		{"bare", "  " + obj + "\n", obj, llm.NotWrapped},
		{"json fence", "```json\n" + obj + "\n```", obj, llm.UnwrappedFence},
		{"bare fence", "```\n" + obj + "\n```", obj, llm.UnwrappedFence},
		{"upper-case tag", "```JSON\n[1, 2]\n```", "[1, 2]", llm.UnwrappedFence},
		{"fence in sentences (Ollama)", "Sure! Here is the annotation:\n\n```json\n" + obj + "\n```\n\nLet me know if you need more.", obj, llm.UnwrappedFence},
		{"inline fence", "```json " + obj + "```", obj, llm.UnwrappedFence},
		{"fence left open (cut by max tokens)", "```json\n" + obj, obj, llm.UnwrappedFence},
		{"longer fence", "````json\n" + obj + "\n````", obj, llm.UnwrappedFence},
		{"tilde fence", "~~~json\n" + obj + "\n~~~", obj, llm.UnwrappedFence},
		{"spacing kept as written", "```json\n{ \"a\" : 1 }\n```", `{ "a" : 1 }`, llm.UnwrappedFence},
		{"scalar in a fence", "```json\n\"positive\"\n```", `"positive"`, llm.UnwrappedFence},
		{"prose", "Here is the result: " + obj + " Hope this helps", obj, llm.UnwrappedProse},
		{"prose array", `The labels are ["cat", "dog"].`, `["cat", "dog"]`, llm.UnwrappedProse},
		{"braces inside strings", `Result: {"text":"a } b {"} done`, `{"text":"a } b {"}`, llm.UnwrappedProse},
		{"brackets that are not JSON", "As the guide says [see docs], the answer is " + obj + ".", obj, llm.UnwrappedProse},
		{"a fence whose content is not JSON, a value in prose", "```\nnot json\n```\nAnswer: " + obj, obj, llm.UnwrappedProse},

		{"two fences", "```json\n" + obj + "\n```\nor\n```json\n" + obj + "\n```", "", ""},
		{"a fence and an object beside it", "For example {\"label\":\"negative\"}:\n```json\n" + obj + "\n```", "", ""},
		{"two objects in prose", "First " + obj + " then " + obj, "", ""},
		{"an array in prose beside an object", "Of [1] the answer is " + obj, "", ""},
		{"no JSON", "I cannot label this review.", "", ""},
		{"nothing", "   ", "", ""},
		{"cut-off object", `Here: {"label":"posi`, "", ""},
		{"a number in prose is no value", "3 labels: none fit", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, how, ok := llm.UnwrapJSON(tc.reply)
			if tc.want == "" {
				require.False(t, ok, "got %q (%s)", got, how)
				return
			}
			require.True(t, ok)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.how, how)
		})
	}
}

func TestUnwrapJSONGivesUpOnPathologicalReplies(t *testing.T) {
	t.Parallel()
	start := time.Now()
	_, _, ok := llm.UnwrapJSON(strings.Repeat("[", 200_000))
	require.False(t, ok)
	_, _, ok = llm.UnwrapJSON(strings.Repeat("{", 100_000) + `{"a":1}`)
	require.False(t, ok, "a reply that keeps failing to start a value is left alone")
	require.Less(t, time.Since(start), 2*time.Second, "no quadratic scan")
}

func TestCheckReply(t *testing.T) {
	t.Parallel()
	const good = `{"label":"neutral","confidence":0.5,"spans":[]}`
	r, err := llm.CheckReply([]byte(labelSchema), "```json\n"+good+"\n```")
	require.NoError(t, err)
	require.Equal(t, llm.Reply{JSON: good, Unwrapped: llm.UnwrappedFence}, r)

	r, err = llm.CheckReply([]byte(labelSchema), good+"\n")
	require.NoError(t, err)
	require.Equal(t, llm.Reply{JSON: good + "\n"}, r, "a bare reply is stored as it came")

	r, err = llm.CheckReply([]byte(labelSchema), `Here you go: {"label":"happy","confidence":0.5,"spans":[]}`)
	var oe *llm.OutputError
	require.ErrorAs(t, err, &oe, "unwrapped, then judged by the schema")
	require.Contains(t, err.Error(), "/label")
	require.Equal(t, llm.UnwrappedProse, r.Unwrapped)

	_, err = llm.CheckReply([]byte(labelSchema), "```json\n"+good+"\n```\n```json\n"+good+"\n```")
	require.ErrorAs(t, err, &oe)
	require.NotEmpty(t, oe.Syntax, "two values are not unwrapped: the reply is judged as it is")

	r, err = llm.CheckReply(nil, "```json\n"+good+"\n```")
	require.NoError(t, err)
	require.Equal(t, llm.NotWrapped, r.Unwrapped, "without a schema the reply is text, not unwrapped")
}
