package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// decodeJSON reads a JSON object into dst (the body readBody took in, size-limited):
// unknown fields refused, wrong types reported with the field's name, trailing
// data refused. Fuzzed on its own.
func decodeJSON(body []byte, dst any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return problem(http.StatusBadRequest, "Empty body", "the request needs a JSON object body")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var p *Problem
		if errors.As(err, &p) { // a field's own decoder named the field at fault
			return p
		}
		return jsonProblem(err)
	}
	if dec.More() {
		return problem(http.StatusBadRequest, "Malformed JSON", "the body has data after the JSON object")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return problem(http.StatusBadRequest, "Malformed JSON", "the body has data after the JSON object")
	}
	return nil
}

func jsonProblem(err error) *Problem {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return problem(http.StatusBadRequest, "Malformed JSON", fmt.Sprintf("the body is not valid JSON (at byte %d)", syn.Offset))
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return problem(http.StatusBadRequest, "Malformed JSON", "the body must be a JSON object")
		}
		return problem(http.StatusUnprocessableEntity, "Invalid request",
			fmt.Sprintf("%s: must be %s, not %s", field, jsonKind(typ.Type.Kind().String()), typ.Value),
			FieldError{Field: field, Message: "must be " + jsonKind(typ.Type.Kind().String())})
	case errors.Is(err, io.ErrUnexpectedEOF):
		return problem(http.StatusBadRequest, "Malformed JSON", "the body ends before the JSON object does")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return problem(http.StatusUnprocessableEntity, "Invalid request", field+": unknown field",
			FieldError{Field: field, Message: "unknown field; check the spelling against /openapi.json"})
	}
	return problem(http.StatusBadRequest, "Malformed JSON", "the body is not a valid JSON object")
}

func jsonKind(k string) string {
	switch k {
	case "int", "int32", "int64", "uint", "uint32", "uint64":
		return "a whole number"
	case "float32", "float64":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "map", "struct":
		return "an object"
	case "slice", "array":
		return "an array"
	}
	return "of another type"
}

// pathID reads a positive integer path parameter.
func pathID(r *http.Request, name string) (int64, error) {
	v := r.PathValue(name)
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		return 0, problem(http.StatusNotFound, "Not found", fmt.Sprintf("%s %q is not a valid id", name, v))
	}
	return id, nil
}

// page reads ?after=&limit= for list endpoints.
func page(r *http.Request) (after int64, limit int32, err error) {
	q := r.URL.Query()
	limit = 100
	if s := q.Get("limit"); s != "" {
		n, perr := strconv.Atoi(s)
		if perr != nil || n < 1 || n > 1000 {
			return 0, 0, invalid("limit", "must be a whole number from 1 to 1000")
		}
		limit = int32(n)
	}
	if s := q.Get("after"); s != "" {
		n, perr := strconv.ParseInt(s, 10, 64)
		if perr != nil || n < 0 {
			return 0, 0, invalid("after", "must be a non-negative id")
		}
		after = n
	}
	return after, limit, nil
}
