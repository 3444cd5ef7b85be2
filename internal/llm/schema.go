package llm

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"

	"github.com/labelq/labelq/internal/schema"
)

// Schema is a compiled annotation schema, reusable across outputs.
type Schema struct {
	compiled *jsonschema.Schema
}

// CompileSchema compiles a project's annotation_schema with the compiler the
// API checks it with (internal/schema): external $refs are refused without a
// file being read or a URL fetched, and size and depth are bounded.
func CompileSchema(raw json.RawMessage) (*Schema, error) {
	compiled, err := schema.Compile(raw)
	if err != nil {
		return nil, fmt.Errorf("llm: %w", err)
	}
	return &Schema{compiled: compiled}, nil
}

// Validate checks one model reply. The reply must be exactly one JSON
// value (surrounding whitespace allowed): a reply wrapped in prose or code
// fences is invalid here; CheckReply unwraps it first.
func (s *Schema) Validate(output string) error {
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(output))
	if err != nil {
		return &OutputError{Syntax: err.Error()}
	}
	err = s.compiled.Validate(inst)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return &OutputError{Problems: []Problem{{Path: "", Message: err.Error()}}}
	}
	return &OutputError{Problems: problems(ve)}
}

// ValidateOutput compiles schema and validates output against it. An empty
// schema accepts any output: without a schema the project asked for plain
// text. Compile once with CompileSchema when validating many outputs.
func ValidateOutput(schema json.RawMessage, output string) error {
	if c, err := canonicalJSON(schema); err != nil {
		return err
	} else if c == nil {
		return nil
	}
	s, err := CompileSchema(schema)
	if err != nil {
		return err
	}
	return s.Validate(output)
}

// Reply is a model reply checked against the annotation schema.
type Reply struct {
	// JSON is what is stored: the reply as it came when it is one JSON value,
	// else the one value it wrapped (see UnwrapJSON).
	JSON string
	// Unwrapped says where the value was found; NotWrapped when the reply was
	// the value.
	Unwrapped Unwrapping
}

// CheckReply validates a reply against the schema. A reply that is not JSON as
// a whole but holds exactly one JSON value inside a Markdown code fence or a
// sentence is judged, and answered, by that value: a wrapped reply is not worth
// a repair call. The error is the schema's verdict on what was judged (an
// *OutputError), and the Reply is filled in either way.
func (s *Schema) CheckReply(reply string) (Reply, error) {
	v, how, ok := UnwrapJSON(reply)
	if !ok || how == NotWrapped {
		return Reply{JSON: reply}, s.Validate(reply)
	}
	return Reply{JSON: v, Unwrapped: how}, s.Validate(v)
}

// CheckReply compiles schema and checks reply against it (Schema.CheckReply).
// An empty schema accepts any reply as it is: without a schema the project
// asked for plain text, which is not unwrapped either.
func CheckReply(schema json.RawMessage, reply string) (Reply, error) {
	if c, err := canonicalJSON(schema); err != nil {
		return Reply{JSON: reply}, err
	} else if c == nil {
		return Reply{JSON: reply}, nil
	}
	s, err := CompileSchema(schema)
	if err != nil {
		return Reply{JSON: reply}, err
	}
	return s.CheckReply(reply)
}

// Problem is one reason the output fails the schema.
type Problem struct {
	// Path is the JSON Pointer of the failing field in the output ("" for
	// the whole document), e.g. "/labels/0/confidence".
	Path    string
	Message string
}

func (p Problem) String() string {
	path := p.Path
	if path == "" {
		path = "(root)"
	}
	return path + ": " + p.Message
}

// OutputError is a model reply that is not JSON or does not satisfy the
// annotation schema.
type OutputError struct {
	// Syntax is set when the reply is not JSON at all.
	Syntax   string
	Problems []Problem
}

func (e *OutputError) Error() string {
	if e.Syntax != "" {
		return "llm: model output is not valid JSON: " + e.Syntax
	}
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return "llm: model output does not satisfy the annotation schema: " + strings.Join(parts, "; ")
}

// problems flattens the validation tree to its leaves, naming the exact
// field for missing and unexpected properties (the library reports those
// at the parent object). The tree is walked directly because the library's
// flat "basic" output drops the leaf under a $ref.
func problems(ve *jsonschema.ValidationError) []Problem {
	var out []Problem
	var walk func(*jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		loc := pointerOf(e.InstanceLocation)
		switch k := e.ErrorKind.(type) {
		case *kind.Required:
			for _, name := range k.Missing {
				out = append(out, Problem{Path: loc + "/" + escapePointer(name), Message: "required property is missing"})
			}
		case *kind.AdditionalProperties:
			for _, name := range k.Properties {
				out = append(out, Problem{Path: loc + "/" + escapePointer(name), Message: "property is not allowed by the schema"})
			}
		default:
			out = append(out, Problem{Path: loc, Message: kindMessage(e.ErrorKind)})
		}
	}
	walk(ve)
	return out
}

// kindMessage renders one error kind in the library's English wording
// without its location prefix, so that Problem can put the path first.
func kindMessage(k jsonschema.ErrorKind) string {
	s := (&jsonschema.ValidationError{ErrorKind: k}).Error()
	return strings.TrimPrefix(s, "at '': ")
}

func pointerOf(tokens []string) string {
	var sb strings.Builder
	for _, t := range tokens {
		sb.WriteByte('/')
		sb.WriteString(escapePointer(t))
	}
	return sb.String()
}

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// maxRepairEcho bounds how much of the invalid reply is sent back; a reply
// that ran to max tokens can be long, and the problems list says what to
// fix.
const maxRepairEcho = 16000

// RepairPrompt returns the prompt for the one repair attempt: the original
// messages, the invalid reply as the assistant's turn, and a user message
// with the validation problems asking for corrected JSON only. The reply
// is cut to 16,000 bytes and the problem text is whatever validation
// returned (an *OutputError lists every failing field).
func RepairPrompt(p Prompt, invalidReply string, validationErr error) Prompt {
	problem := "the reply does not satisfy the JSON Schema"
	if validationErr != nil {
		problem = strings.TrimPrefix(validationErr.Error(), "llm: ")
	}
	if strings.TrimSpace(invalidReply) == "" {
		// An assistant turn with empty content is rejected by the API.
		invalidReply = "(empty reply)"
	}
	msgs := make([]Message, 0, len(p.Messages)+2)
	msgs = append(msgs, p.Messages...)
	msgs = append(msgs,
		textMessage(RoleAssistant, truncateText(strings.ToValidUTF8(invalidReply, "\uFFFD"), maxRepairEcho)),
		textMessage(RoleUser, "Your previous reply is invalid: "+problem+".\n"+
			"Reply again with only the corrected JSON value that satisfies the JSON Schema given in the instructions: "+
			"no prose, no Markdown code fences."),
	)
	p.Messages = msgs
	return p
}
