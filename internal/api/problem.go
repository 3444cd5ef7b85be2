package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/jackc/pgx/v5"
)

// Problem is an RFC 9457 problem+json body: what went wrong, in words a person can
// act on, and the fields at fault.
type Problem struct {
	Type   string       `json:"type"`
	Title  string       `json:"title"`
	Status int          `json:"status"`
	Detail string       `json:"detail,omitempty"`
	Errors []FieldError `json:"errors,omitempty"`
}

// FieldError names one field at fault.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (p *Problem) Error() string { return fmt.Sprintf("%d %s: %s", p.Status, p.Title, p.Detail) }

func problem(status int, title, detail string, fields ...FieldError) *Problem {
	return &Problem{Type: "about:blank", Title: title, Status: status, Detail: detail, Errors: fields}
}

func notFound(what string) *Problem {
	return problem(http.StatusNotFound, "Not found", what+" does not exist or belongs to another organization")
}

func invalid(field, msg string) *Problem {
	return problem(http.StatusUnprocessableEntity, "Invalid request", field+": "+msg, FieldError{Field: field, Message: msg})
}

func conflict(detail string) *Problem {
	return problem(http.StatusConflict, "Conflict", detail)
}

// Validation collects every field error of a request so the client fixes them at once.
type Validation struct{ fields []FieldError }

// Add records a field error.
func (v *Validation) Add(field, format string, args ...any) {
	v.fields = append(v.fields, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// Check adds the error when ok is false.
func (v *Validation) Check(ok bool, field, format string, args ...any) {
	if !ok {
		v.Add(field, format, args...)
	}
}

// Err is nil when nothing failed.
func (v *Validation) Err() error {
	if len(v.fields) == 0 {
		return nil
	}
	detail := v.fields[0].Field + ": " + v.fields[0].Message
	if len(v.fields) > 1 {
		detail += fmt.Sprintf(" (and %d more)", len(v.fields)-1)
	}
	return problem(http.StatusUnprocessableEntity, "Invalid request", detail, v.fields...)
}

func writeProblem(w http.ResponseWriter, p *Problem) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// asProblem maps an error to the problem the client sees; ok is false for errors
// that are the server's fault (logged, answered 500 without details).
func asProblem(err error) (*Problem, bool) {
	var p *Problem
	if errors.As(err, &p) {
		return p, true
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return notFound("the resource"), true
	}
	return nil, false
}
