// Package schema is labelq's one JSON Schema compiler for annotation schemas: the
// API checks a project's annotation_schema with it when the schema is set, and the
// pre-annotation worker compiles the stored schema with it, so both accept and
// refuse exactly the same documents.
//
// The compiler has no loader: a schema is one self-contained document. A $ref
// (or $schema, $dynamicRef) that points outside it, at a file, a URL or another
// document, is refused without anything being opened or fetched; references
// inside the document ("#/$defs/name", "#anchor") work. A schema is also bounded
// in size (MaxBytes) and JSON nesting depth (MaxDepth) before it is parsed.
package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Limits on an annotation schema. They are the same for the API and the worker
// so that a schema the API stored is one the worker compiles.
const (
	// MaxBytes is the largest schema accepted, in bytes of JSON.
	MaxBytes = 64 << 10
	// MaxDepth is the deepest nesting of JSON objects and arrays accepted
	// ({"type":"object"} is depth 1).
	MaxDepth = 32
)

// resourceURL names the in-memory schema document. Nothing is ever fetched
// from it: a relative $ref resolves against it to another mem: URL, which
// the loader refuses.
const resourceURL = "mem:///labelq/annotation-schema.json"

// Error is a schema refused for a reason the client can act on. Reason never
// contains anything read from outside the document (no file contents, no
// response of a server), only what is wrong with the document itself.
type Error struct {
	Reason string
}

func (e *Error) Error() string { return "annotation schema: " + e.Reason }

func refuse(format string, args ...any) *Error { return &Error{Reason: fmt.Sprintf(format, args...)} }

// Compile checks and compiles one annotation schema. Every error it returns is
// an *Error.
func Compile(raw []byte) (*jsonschema.Schema, error) {
	if len(raw) > MaxBytes {
		return nil, refuse("is %d bytes; at most %d bytes are allowed", len(raw), MaxBytes)
	}
	if err := checkDepth(raw); err != nil {
		return nil, err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, refuse("is not valid JSON")
	}
	if _, ok := doc.(map[string]any); !ok {
		return nil, refuse("must be a JSON Schema object such as {\"type\": \"object\"}")
	}
	l := &noLoader{}
	c := jsonschema.NewCompiler()
	c.UseLoader(l)
	if err := c.AddResource(resourceURL, doc); err != nil {
		return nil, refuse("is not a JSON Schema: %s", firstLine(err.Error()))
	}
	s, err := c.Compile(resourceURL)
	if l.refused != "" {
		return nil, refuse("refers to %s; only references inside the schema (such as \"#/$defs/name\") are allowed, and nothing is loaded from files or URLs", l.refused)
	}
	if err != nil {
		return nil, refuse("is not a valid JSON Schema: %s", describe(err))
	}
	return s, nil
}

// noLoader refuses every document the compiler asks for, remembering what kind
// of reference it was.
type noLoader struct{ refused string }

func (l *noLoader) Load(u string) (any, error) {
	kind := "another document"
	if p, err := url.Parse(u); err == nil {
		switch strings.ToLower(p.Scheme) {
		case "file":
			kind = "a file"
		case "http", "https":
			kind = "a URL"
		case "mem":
			// A relative reference or an absolute path, resolved against the
			// in-memory document's own name.
			kind = "a file path or another document"
		case "":
		default:
			kind = "a " + p.Scheme + ": URL"
		}
	}
	if l.refused == "" {
		l.refused = kind
	}
	return nil, errors.New("external references are not loaded")
}

// checkDepth refuses a document nested deeper than MaxDepth, reading tokens so
// that a deep document is refused before it is built.
func checkDepth(raw []byte) error {
	d := json.NewDecoder(bytes.NewReader(raw))
	depth := 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return refuse("is not valid JSON")
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
			if depth > MaxDepth {
				return refuse("is nested more than %d levels deep", MaxDepth)
			}
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}

// describe says what is wrong with a schema that compiled with an error: the
// metaschema's leaf complaints when there are some, else the first line.
func describe(err error) string {
	var sve *jsonschema.SchemaValidationError
	var ve *jsonschema.ValidationError
	if errors.As(err, &sve) && errors.As(sve.Err, &ve) {
		var leaves []string
		var walk func(*jsonschema.ValidationError)
		walk = func(e *jsonschema.ValidationError) {
			if len(e.Causes) == 0 {
				leaves = append(leaves, firstLine(e.Error()))
				return
			}
			for _, c := range e.Causes {
				walk(c)
			}
		}
		walk(ve)
		if len(leaves) > 3 {
			leaves = append(leaves[:3], fmt.Sprintf("and %d more", len(leaves)-3))
		}
		if len(leaves) > 0 {
			return strings.Join(leaves, "; ")
		}
	}
	return strings.ReplaceAll(firstLine(err.Error()), resourceURL, "")
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
