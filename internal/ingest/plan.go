package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/labelq/labelq/internal/db"
)

// Match kinds of a key filter and of a rule's pattern.
const (
	MatchGlob  = "glob"
	MatchRegex = "regex"
)

// MaxRules bounds a storage's rules: each key is tried against them in turn.
const MaxRules = 100

// Rule is one entry of a storage's rules (storages.rules): the first rule whose
// pattern matches a key (relative to the storage's prefix) sets the file type of
// the file it becomes and the attributes its annotation job is born with.
type Rule struct {
	Match     string      `json:"match"`
	MatchKind string      `json:"match_kind,omitempty"`
	FileType  db.FileType `json:"file_type,omitempty"`
	Language  string      `json:"language,omitempty"`
	Priority  string      `json:"priority,omitempty"`
	// DueIn is a Go duration ("72h"): the job is due that long after the key is
	// registered.
	DueIn string `json:"due_in,omitempty"`
}

// FieldError says which field of a storage is wrong and why; the API answers it
// as a 422 naming the field.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// JobAttrs are what a version's annotation job is born with (file_versions.job_*);
// nil fields take the defaults (no language, medium priority, no due date).
type JobAttrs struct {
	Language *string
	Priority *db.JobPriority
	DueDate  *time.Time
}

// Plan is a storage's key filter and rules, compiled once per sync run (or
// notification) and applied to every key.
type Plan struct {
	prefix   string
	fileType db.FileType
	filter   matcher // nil: every key
	rules    []rule
	// Now is the clock due dates are counted from; nil is time.Now.
	Now func() time.Time
}

type rule struct {
	m        matcher
	fileType db.FileType
	language *string
	priority *db.JobPriority
	dueIn    time.Duration
}

// matcher says whether a key, relative to the storage's prefix, matches.
type matcher func(rel string) bool

var languageRe = regexp.MustCompile(`^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$`)

// Compile checks and compiles a storage's key filter and rules. Its error is a
// *FieldError naming the field at fault ("key_filter", "rules[2].due_in").
func Compile(st db.Storage) (*Plan, error) {
	p := &Plan{prefix: st.Prefix, fileType: st.FileType}
	if p.fileType == "" {
		p.fileType = db.FileTypeDataset
	}
	if st.KeyFilter != "" {
		m, err := compileMatch(st.KeyFilter, st.KeyFilterKind)
		if err != nil {
			return nil, &FieldError{Field: "key_filter", Reason: err.Error()}
		}
		p.filter = m
	}
	rules, err := ParseRules(st.Rules)
	if err != nil {
		return nil, err
	}
	for i, r := range rules {
		cr, err := compileRule(r, p.fileType)
		if err != nil {
			err.Field = fmt.Sprintf("rules[%d].%s", i, err.Field)
			return nil, err
		}
		p.rules = append(p.rules, cr)
	}
	return p, nil
}

// ParseRules reads a storage's rules JSON (empty or null: none).
func ParseRules(raw json.RawMessage) ([]Rule, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	var rules []Rule
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rules); err != nil {
		return nil, &FieldError{Field: "rules", Reason: "must be an array of {match, match_kind, file_type, language, priority, due_in}: " + err.Error()}
	}
	if len(rules) > MaxRules {
		return nil, &FieldError{Field: "rules", Reason: fmt.Sprintf("at most %d rules", MaxRules)}
	}
	return rules, nil
}

// ValidateRules checks rules as Compile would, for the API to call on input
// before it is stored; the error is a *FieldError ("rules[2].due_in").
func ValidateRules(rules []Rule) error {
	if len(rules) > MaxRules {
		return &FieldError{Field: "rules", Reason: fmt.Sprintf("at most %d rules", MaxRules)}
	}
	for i, r := range rules {
		if _, err := compileRule(r, db.FileTypeDataset); err != nil {
			err.Field = fmt.Sprintf("rules[%d].%s", i, err.Field)
			return err
		}
	}
	return nil
}

// ValidateFilter checks a key filter of a kind ("glob" or "regex").
func ValidateFilter(filter, kind string) error {
	if filter == "" {
		if kind != "" && kind != MatchGlob && kind != MatchRegex {
			return &FieldError{Field: "key_filter_kind", Reason: `must be "glob" or "regex"`}
		}
		return nil
	}
	if _, err := compileMatch(filter, kind); err != nil {
		return &FieldError{Field: "key_filter", Reason: err.Error()}
	}
	return nil
}

func compileRule(r Rule, def db.FileType) (rule, *FieldError) {
	var cr rule
	if r.Match == "" {
		return cr, &FieldError{Field: "match", Reason: "is required"}
	}
	m, err := compileMatch(r.Match, r.MatchKind)
	if err != nil {
		f := "match"
		if r.MatchKind != "" && r.MatchKind != MatchGlob && r.MatchKind != MatchRegex {
			f = "match_kind"
		}
		return cr, &FieldError{Field: f, Reason: err.Error()}
	}
	cr.m = m
	cr.fileType = def
	if r.FileType != "" {
		if !r.FileType.Valid() || r.FileType == db.FileTypeLlmOutput {
			return cr, &FieldError{Field: "file_type", Reason: "must be dataset, requirement or annotation_results"}
		}
		cr.fileType = r.FileType
	}
	if r.Language != "" {
		if !languageRe.MatchString(r.Language) {
			return cr, &FieldError{Field: "language", Reason: `must be a language tag such as "en", "zh" or "pt-BR"`}
		}
		l := r.Language
		cr.language = &l
	}
	if r.Priority != "" {
		p := db.JobPriority(r.Priority)
		if !p.Valid() {
			return cr, &FieldError{Field: "priority", Reason: "must be low, medium or high"}
		}
		cr.priority = &p
	}
	if r.DueIn != "" {
		d, err := time.ParseDuration(r.DueIn)
		if err != nil || d <= 0 {
			return cr, &FieldError{Field: "due_in", Reason: `must be a positive duration such as "72h" or "30m"`}
		}
		cr.dueIn = d
	}
	return cr, nil
}

// compileMatch builds a matcher. A glob is matched against the key relative to
// the prefix with ** crossing slashes; a glob without a slash is also matched
// against the key's last segment, as in .gitignore ("*.json" is every JSON
// file, however deep). A regex is a Go regular expression, unanchored.
func compileMatch(pattern, kind string) (matcher, error) {
	switch kind {
	case "", MatchGlob:
		if !doublestar.ValidatePattern(pattern) {
			return nil, fmt.Errorf("%q is not a valid glob pattern", pattern)
		}
		base := !strings.Contains(pattern, "/")
		return func(rel string) bool {
			if ok, _ := doublestar.Match(pattern, rel); ok {
				return true
			}
			if base {
				ok, _ := doublestar.Match(pattern, path.Base(rel))
				return ok
			}
			return false
		}, nil
	case MatchRegex:
		re, err := regexp.Compile(pattern)
		if err != nil {
			return nil, fmt.Errorf("not a valid regular expression: %w", err)
		}
		return re.MatchString, nil
	default:
		return nil, fmt.Errorf(`match kind %q: must be "glob" or "regex"`, kind)
	}
}

// admits says whether the key filter lets rel through.
func (p *Plan) admits(rel string) bool { return p.filter == nil || p.filter(rel) }

// classify gives the file type and job attributes of rel: the first matching
// rule's, else the storage's file type and none.
func (p *Plan) classify(rel string) (db.FileType, JobAttrs) {
	for _, r := range p.rules {
		if !r.m(rel) {
			continue
		}
		a := JobAttrs{Language: r.language, Priority: r.priority}
		if r.dueIn > 0 {
			d := p.now().Add(r.dueIn)
			a.DueDate = &d
		}
		return r.fileType, a
	}
	return p.fileType, JobAttrs{}
}

func (p *Plan) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}
