package llm

import (
	"encoding/json"
	"strings"
)

// Unwrapping says where a reply's JSON value was found.
type Unwrapping string

const (
	// NotWrapped: the reply is the JSON value itself (surrounding whitespace
	// aside).
	NotWrapped Unwrapping = ""
	// UnwrappedFence: the value was the content of a Markdown code fence
	// ("```json … ```" or "``` … ```"), with or without sentences around it.
	UnwrappedFence Unwrapping = "code_fence"
	// UnwrappedProse: the value was an object or an array inside sentences
	// ("Here is the result: {…} Hope this helps").
	UnwrappedProse Unwrapping = "prose"
)

// maxProseAttempts bounds the places in a reply where a JSON value is tried
// and found not to start: a reply of ten thousand "[" must not cost a
// quadratic scan. Past it the reply is left as it is.
const maxProseAttempts = 64

// UnwrapJSON finds the one JSON value in a model reply. Open models behind
// vLLM, Ollama or LiteLLM, when nothing constrains their output, often put
// it in a Markdown code fence or in a sentence. The answer is the value's
// text, exactly as the model wrote it, and where it was; ok is false when
// the reply holds no JSON value or more than one (two fences, a fence and
// an object beside it, two objects in the prose): guessing which one the
// model meant is the repair call's job. A reply that is one JSON value as a
// whole comes back trimmed, NotWrapped. In prose only objects and arrays
// count as values: "3 labels" holds no JSON number.
func UnwrapJSON(reply string) (value string, how Unwrapping, ok bool) {
	s := strings.TrimSpace(reply)
	if s == "" {
		return "", NotWrapped, false
	}
	if json.Valid([]byte(s)) {
		return s, NotWrapped, true
	}
	blocks, outside, fenced := codeFences(s)
	if fenced {
		var found []string
		for _, b := range blocks {
			if v, ok := fenceValue(b); ok {
				found = append(found, v)
			}
		}
		if len(found) > 0 {
			if len(found) == 1 && len(proseValues(outside, 1)) == 0 {
				return found[0], UnwrappedFence, true
			}
			return "", NotWrapped, false
		}
	}
	if vals := proseValues(s, 2); len(vals) == 1 {
		return vals[0], UnwrappedProse, true
	}
	return "", NotWrapped, false
}

// codeFences splits s into the contents of its Markdown code fences (```,
// three backticks or more, or ~~~) and the text outside them. A fence left
// open (a reply cut by max tokens, a model that forgot) runs to the end.
// Fences are recognised anywhere on a line, since models write them inline
// ("```json {…}```") as often as on lines of their own.
func codeFences(s string) (blocks []string, outside string, fenced bool) {
	var out strings.Builder
	rest := s
	for {
		i, mark := fenceStart(rest)
		if i < 0 {
			out.WriteString(rest)
			break
		}
		fenced = true
		out.WriteString(rest[:i])
		out.WriteByte('\n')
		body := rest[i+len(mark):]
		j := strings.Index(body, mark)
		if j < 0 {
			blocks = append(blocks, body)
			break
		}
		blocks = append(blocks, body[:j])
		rest = body[j+len(mark):]
		// A longer closing run ("````" after "```") belongs to the fence.
		rest = strings.TrimLeft(rest, mark[:1])
	}
	return blocks, out.String(), fenced
}

// fenceStart finds the first fence marker in s: its index and the marker
// (its whole run of backticks or tildes), or -1.
func fenceStart(s string) (int, string) {
	best, mark := -1, ""
	for _, m := range []string{"```", "~~~"} {
		i := strings.Index(s, m)
		if i < 0 || (best >= 0 && i >= best) {
			continue
		}
		n := len(m)
		for i+n < len(s) && s[i+n] == m[0] {
			n++
		}
		best, mark = i, s[i:i+n]
	}
	return best, mark
}

// fenceValue is a fenced block's content when it is one JSON value: the
// block's first word is its language tag ("json", "JSON", "jsonc", "js")
// when what follows it is the value.
func fenceValue(block string) (string, bool) {
	b := strings.TrimSpace(block)
	if json.Valid([]byte(b)) && b != "" {
		return b, true
	}
	tag := 0
	for tag < len(b) && isTagByte(b[tag]) {
		tag++
	}
	if tag == 0 {
		return "", false
	}
	v := strings.TrimSpace(b[tag:])
	if v != "" && json.Valid([]byte(v)) {
		return v, true
	}
	return "", false
}

func isTagByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '+' || c == '.'
}

// proseValues returns up to limit JSON objects or arrays found in s, each
// whole (a value inside another is part of it, not a second one). It gives
// up, returning none, after maxProseAttempts places where one did not start.
func proseValues(s string, limit int) []string {
	var vals []string
	failed := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c != '{' && c != '[' {
			i++
			continue
		}
		dec := json.NewDecoder(strings.NewReader(s[i:]))
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if failed++; failed > maxProseAttempts {
				return nil
			}
			i++
			continue
		}
		vals = append(vals, string(raw))
		if len(vals) >= limit {
			return vals
		}
		i += int(dec.InputOffset())
	}
	return vals
}
