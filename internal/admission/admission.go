// Package admission reads LABELQ_ADMIT_PER_ORG: how many tasks of each type one
// organization may have admitted into Redis and not finished at once. The outbox
// relay enforces it (internal/outbox); the API and /metrics show it.
package admission

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Default is LABELQ_ADMIT_PER_ORG's default: tasks of each type one
// organization may have in Redis, admitted and not finished. Validation is short
// and the limit only bounds how far another organization's work waits behind
// (200 tasks are well under a second of validation); pre-annotation waits on the
// shared model limits, so a small limit keeps the LLM queue short; webhook
// deliveries are not held back (a delivery waits hours in asynq between its
// attempts and would hold its slot all that time).
const Default = "validate=200,preannotate=10,match=20,export=4,sync=4,score=200,consensus=4,deliver=0,default=100"

// Limits is how many tasks of each type one organization may have admitted
// (in Redis, not finished) at once: the relay moves an organization's row into
// asynq only below its type's limit, times the organization's weight. A zero
// limit holds nothing back; the zero Limits is admission off, every row
// relayed at once, oldest first (the relay as it was before admission).
type Limits struct {
	// ByKind are limits by task type ("file:validate") or by the type's name
	// after its colon ("validate"); the full type wins when both are set.
	ByKind map[string]int
	// Default is the limit of the types ByKind does not name.
	Default int
}

var kindKey = regexp.MustCompile(`^[a-z_]+(:[a-z_]+)?$`)

// Parse reads LABELQ_ADMIT_PER_ORG: comma-separated type=limit pairs,
// "default=N" for the types not named, or 0 (off) for no admission at all.
func Parse(s string) (Limits, error) {
	s = strings.TrimSpace(s)
	if s == "0" || strings.EqualFold(s, "off") || s == "" {
		return Limits{}, nil
	}
	a := Limits{ByKind: map[string]int{}}
	seen := map[string]bool{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		n, err := strconv.Atoi(v)
		if !ok || err != nil || n < 0 || n > 1_000_000 {
			return Limits{}, fmt.Errorf("%q: want type=limit with a limit from 0 (not held back) to 1000000, such as validate=200", part)
		}
		if !kindKey.MatchString(k) {
			return Limits{}, fmt.Errorf("%q: %q is not a task type (file:validate) or its short name (validate)", part, k)
		}
		if seen[k] {
			return Limits{}, fmt.Errorf("%q: %s is set twice", s, k)
		}
		seen[k] = true
		if k == "default" {
			a.Default = n
			continue
		}
		a.ByKind[k] = n
	}
	return a, nil
}

// On reports whether any task type is held back.
func (a Limits) On() bool {
	return a.Default > 0 || slices.ContainsFunc(slices.Collect(maps.Values(a.ByKind)), func(n int) bool { return n > 0 })
}

// Limit is the limit of task type kind (before an organization's weight).
func (a Limits) Limit(kind string) int {
	if n, ok := a.ByKind[kind]; ok {
		return n
	}
	if _, short, ok := strings.Cut(kind, ":"); ok {
		if n, ok := a.ByKind[short]; ok {
			return n
		}
	}
	return a.Default
}

// String is the setting as Parse reads it, keys sorted.
func (a Limits) String() string {
	if !a.On() {
		return "0"
	}
	parts := make([]string, 0, len(a.ByKind)+1)
	for _, k := range slices.Sorted(maps.Keys(a.ByKind)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, a.ByKind[k]))
	}
	return strings.Join(append(parts, fmt.Sprintf("default=%d", a.Default)), ",")
}

// SQLArgs are the limits as the outbox's admission query takes them: the named
// types and their limits, in order, and the default.
func (a Limits) SQLArgs() (kinds []string, limits []int32, def int32) {
	kinds, limits = make([]string, 0, len(a.ByKind)), make([]int32, 0, len(a.ByKind))
	for _, k := range slices.Sorted(maps.Keys(a.ByKind)) {
		kinds = append(kinds, k)
		limits = append(limits, int32(a.ByKind[k]))
	}
	return kinds, limits, int32(a.Default)
}
