package llmtest

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// maxRefDepth stops a recursive schema ($ref to an ancestor) from
// recursing forever; past it an optional branch is cut short.
const maxRefDepth = 16

// instanceGen builds the smallest reasonable value that satisfies a JSON
// Schema, the way a model in strict structured-output mode always returns
// a valid value. It covers the keywords OpenAI's structured outputs accept
// (type, properties, required, items, enum, const, anyOf, $ref/$defs,
// min/max bounds, string formats) plus allOf, oneOf and prefixItems. It
// cannot invent a string for an arbitrary "pattern".
type instanceGen struct {
	root any
}

// MinimalInstance returns the minimal value generated for schema, the same
// one the server replies with for a json_schema request. Tests use it to
// know the reply in advance.
func MinimalInstance(schema json.RawMessage) (any, error) {
	var root any
	if err := json.Unmarshal(schema, &root); err != nil {
		return nil, fmt.Errorf("llmtest: schema is not JSON: %w", err)
	}
	g := instanceGen{root: root}
	return g.value(root, 0, 0), nil
}

func (g instanceGen) resolve(s any, depth int) (map[string]any, int) {
	m, _ := s.(map[string]any)
	for m != nil && depth < maxRefDepth {
		ref, ok := m["$ref"].(string)
		if !ok {
			break
		}
		target, ok := pointer(g.root, ref)
		if !ok {
			return nil, depth
		}
		m, _ = target.(map[string]any)
		depth++
	}
	return m, depth
}

// pointer resolves a local reference ("#/$defs/label").
func pointer(root any, ref string) (any, bool) {
	if !strings.HasPrefix(ref, "#") {
		return nil, false
	}
	cur := root
	for _, tok := range strings.Split(strings.TrimPrefix(ref, "#"), "/")[1:] {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[tok]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// value generates an instance; variant > 0 asks for a value different from
// variant 0 (for uniqueItems).
func (g instanceGen) value(s any, depth, variant int) any {
	if b, ok := s.(bool); ok {
		if b {
			return "llmtest"
		}
		return nil
	}
	m, depth := g.resolve(s, depth)
	if m == nil {
		return nil
	}
	if c, ok := m["const"]; ok {
		return c
	}
	if e, ok := m["enum"].([]any); ok && len(e) > 0 {
		return e[variant%len(e)]
	}
	for _, kw := range []string{"anyOf", "oneOf"} {
		if alts, ok := m[kw].([]any); ok && len(alts) > 0 {
			// Prefer a non-null branch: a nullable field reads better filled.
			for _, alt := range alts {
				if am, _ := g.resolve(alt, depth); am != nil && am["type"] != "null" {
					return g.value(alt, depth+1, variant)
				}
			}
			return g.value(alts[0], depth+1, variant)
		}
	}
	if all, ok := m["allOf"].([]any); ok && len(all) > 0 {
		merged := map[string]any{}
		for _, sub := range all {
			v, ok := g.value(sub, depth+1, variant).(map[string]any)
			if !ok {
				return g.value(all[0], depth+1, variant)
			}
			for k, x := range v {
				merged[k] = x
			}
		}
		return merged
	}

	switch schemaType(m) {
	case "object":
		return g.object(m, depth, variant)
	case "array":
		return g.array(m, depth, variant)
	case "string":
		return stringValue(m, variant)
	case "integer":
		return numberValue(m, true, variant)
	case "number":
		return numberValue(m, false, variant)
	case "boolean":
		return variant%2 == 0
	case "null":
		return nil
	}
	return "llmtest"
}

// schemaType picks the type to generate: the first non-null declared type,
// else what the keywords imply.
func schemaType(m map[string]any) string {
	switch t := m["type"].(type) {
	case string:
		return t
	case []any:
		for _, x := range t {
			if s, ok := x.(string); ok && s != "null" {
				return s
			}
		}
		return "null"
	}
	switch {
	case m["properties"] != nil || m["required"] != nil || m["additionalProperties"] != nil:
		return "object"
	case m["items"] != nil || m["prefixItems"] != nil:
		return "array"
	}
	return ""
}

func (g instanceGen) object(m map[string]any, depth, variant int) map[string]any {
	props, _ := m["properties"].(map[string]any)
	out := map[string]any{}
	for _, r := range toStrings(m["required"]) {
		sub, ok := props[r]
		if !ok {
			sub = true
		}
		out[r] = g.value(sub, depth+1, variant)
	}
	if minProps, ok := number(m["minProperties"]); ok {
		names := make([]string, 0, len(props))
		for name := range props {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			if float64(len(out)) >= minProps {
				break
			}
			if _, done := out[name]; !done {
				out[name] = g.value(props[name], depth+1, variant)
			}
		}
	}
	return out
}

func (g instanceGen) array(m map[string]any, depth, variant int) []any {
	prefix, _ := m["prefixItems"].([]any)
	n := max(1, len(prefix))
	if mi, ok := number(m["minItems"]); ok {
		n = max(n, int(mi))
	}
	if ma, ok := number(m["maxItems"]); ok {
		n = min(n, int(ma))
	}
	out := make([]any, 0, n)
	for i := range n {
		var sub any = true
		switch {
		case i < len(prefix):
			sub = prefix[i]
		case m["items"] != nil:
			sub = m["items"]
		}
		// Distinct variants keep uniqueItems satisfied.
		out = append(out, g.value(sub, depth+1, variant+i))
	}
	return out
}

func stringValue(m map[string]any, variant int) string {
	s := "llmtest"
	switch m["format"] {
	case "date-time":
		s = "2024-01-01T00:00:00Z"
	case "date":
		s = "2024-01-01"
	case "time":
		s = "00:00:00Z"
	case "email":
		s = "llmtest@example.com"
	case "uri", "url":
		s = "https://example.com/llmtest"
	case "uuid":
		s = "00000000-0000-4000-8000-000000000000"
	case "hostname":
		s = "example.com"
	case "ipv4":
		s = "192.0.2.1"
	case "ipv6":
		s = "2001:db8::1"
	case "duration":
		s = "PT1S"
	}
	if variant > 0 {
		s += "-" + strconv.Itoa(variant)
	}
	if ml, ok := number(m["minLength"]); ok {
		for len([]rune(s)) < int(ml) {
			s += "x"
		}
	}
	if ml, ok := number(m["maxLength"]); ok && len([]rune(s)) > int(ml) {
		s = string([]rune(s)[:int(ml)])
	}
	return s
}

func numberValue(m map[string]any, integer bool, variant int) any {
	lo, hi := math.Inf(-1), math.Inf(1)
	step := 1.0
	if !integer {
		step = 0.5
	}
	if v, ok := number(m["minimum"]); ok {
		lo = v
	}
	if v, ok := number(m["exclusiveMinimum"]); ok {
		lo = math.Max(lo, v+step)
	}
	if v, ok := number(m["maximum"]); ok {
		hi = v
	}
	if v, ok := number(m["exclusiveMaximum"]); ok {
		hi = math.Min(hi, v-step)
	}
	if integer {
		lo, hi = math.Ceil(lo), math.Floor(hi)
	}
	v := math.Max(0, lo)
	v = math.Min(v, hi)
	if v+float64(variant) <= hi {
		v += float64(variant)
	}
	if mo, ok := number(m["multipleOf"]); ok && mo > 0 {
		if c := math.Ceil(v/mo) * mo; c <= hi {
			v = c
		} else {
			v = math.Floor(v/mo) * mo
		}
	}
	if integer || v == math.Trunc(v) {
		return int64(v)
	}
	return v
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

func toStrings(v any) []string {
	arr, _ := v.([]any)
	out := make([]string, 0, len(arr))
	for _, x := range arr {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// violation returns JSON that does not satisfy schema: a required property
// dropped, an unexpected property added, or a value of the wrong type.
func violation(schema json.RawMessage) ([]byte, error) {
	var root any
	if err := json.Unmarshal(schema, &root); err != nil {
		return nil, err
	}
	g := instanceGen{root: root}
	m, _ := g.resolve(root, 0)
	valid := g.value(root, 0, 0)
	switch v := valid.(type) {
	case map[string]any:
		if req := toStrings(m["required"]); len(req) > 0 {
			delete(v, req[0])
			return json.Marshal(v)
		}
		if ap, ok := m["additionalProperties"].(bool); ok && !ap {
			v["llmtest_unexpected"] = true
			return json.Marshal(v)
		}
		return json.Marshal([]any{"llmtest: an array where an object belongs"})
	case string:
		return json.Marshal(12345)
	default:
		return json.Marshal(map[string]any{"llmtest": "an object where something else belongs"})
	}
}

// strictProblem returns what OpenAI's strict structured outputs would
// reject in schema, "" when nothing: the root must be an object, and every
// object must list all its properties as required and set
// additionalProperties to false.
func strictProblem(schema json.RawMessage) string {
	var root any
	if err := json.Unmarshal(schema, &root); err != nil {
		return "schema is not JSON"
	}
	rm, ok := root.(map[string]any)
	if !ok {
		return "schema must be a JSON object"
	}
	if t, _ := rm["type"].(string); t != "object" {
		return fmt.Sprintf("schema must be a JSON Schema of 'type: \"object\"', got 'type: %q'", rm["type"])
	}
	return strictWalk(rm, nil)
}

func strictWalk(m map[string]any, ctx []string) string {
	where := "(" + strings.Join(quoteAll(ctx), ", ") + ")"
	if schemaType(m) == "object" && m["$ref"] == nil {
		if ap, ok := m["additionalProperties"].(bool); !ok || ap {
			return fmt.Sprintf("In context=%s, 'additionalProperties' is required to be supplied and to be false.", where)
		}
		props, _ := m["properties"].(map[string]any)
		req := toStrings(m["required"])
		names := make([]string, 0, len(props))
		for name := range props {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			if !slices.Contains(req, name) {
				return fmt.Sprintf("In context=%s, 'required' is required to be supplied and to be an array including every key in properties. Missing '%s'.", where, name)
			}
		}
	}
	visit := func(sub any, path ...string) string {
		if sm, ok := sub.(map[string]any); ok {
			return strictWalk(sm, append(slices.Clone(ctx), path...))
		}
		return ""
	}
	if props, ok := m["properties"].(map[string]any); ok {
		names := make([]string, 0, len(props))
		for name := range props {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			if p := visit(props[name], "properties", name); p != "" {
				return p
			}
		}
	}
	if p := visit(m["items"], "items"); p != "" {
		return p
	}
	for _, kw := range []string{"anyOf", "allOf"} {
		alts, _ := m[kw].([]any)
		for i, alt := range alts {
			if p := visit(alt, kw, strconv.Itoa(i)); p != "" {
				return p
			}
		}
	}
	for _, kw := range []string{"$defs", "definitions"} {
		defs, _ := m[kw].(map[string]any)
		names := make([]string, 0, len(defs))
		for name := range defs {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			if p := visit(defs[name], kw, name); p != "" {
				return p
			}
		}
	}
	return ""
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = "'" + s + "'"
	}
	return out
}
