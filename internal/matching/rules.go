package matching

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// The hard rules that depend on a job's own attributes are defined once, here,
// and read by both the solver (which never makes a pair that breaks them) and
// JobRuleBreach (which finds a live assignment that breaks them after the job
// changed: PATCH /v1/jobs/{id}). So the people a re-check takes a job from are
// exactly the people the next run would not give it to.
//
// Of the rules in the package documentation only rule 1 (language) reads the
// job: priority and due date weight the score and order ties, and enter no rule,
// so changing them never makes a live assignment illegal. The other rules are
// about the person or the project (role, activity, availability, capacity,
// previous annotators) and do not change with the job.

// RuleLanguage names rule 1, the minimum proficiency in the job's language.
const RuleLanguage = "language"

// ProjectOptions maps a project's settings onto the solver's options. The
// solver reads a MinProficiency of 0 as "use DefaultMinProficiency"; a project
// that stores 0 means the opposite, no minimum, which is as close as the
// solver gets: any proficiency above zero (one step of its 1e-6 grid).
func ProjectOptions(minLanguageProficiency float64) Options {
	if minLanguageProficiency <= 0 {
		return Options{MinProficiency: 1e-6}
	}
	return Options{MinProficiency: minLanguageProficiency}
}

// ParseProficiency reads a user's language_expertise document ({"en": 4.5,
// "zh": 3}) into Candidate.Proficiency.
func ParseProficiency(raw []byte) (map[string]float64, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var m map[string]float64
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("read language_expertise: %w", err)
	}
	return m, nil
}

// Breach is a hard rule on the job's attributes that a person holding the job
// breaks.
type Breach struct {
	// Rule is RuleLanguage.
	Rule string
	// Language is the job's language (lower case); Proficiency is the
	// person's in it (0 when they have none) and Minimum the one they fall
	// short of, both on the solver's 1e-6 grid.
	Language    string
	Proficiency float64
	Minimum     float64
}

// Reason says in a sentence why the person (who: "annotator", "reviewer")
// may not hold the job, for the event that records a revocation.
func (b Breach) Reason(who string) string {
	if b.Minimum <= 1e-6 {
		// The project has no minimum: only having no proficiency at all breaks it.
		return fmt.Sprintf("%s has no %s proficiency", who, b.Language)
	}
	return fmt.Sprintf("%s's %s proficiency %s is below the project's minimum %s",
		who, b.Language, formatProficiency(b.Proficiency), formatProficiency(b.Minimum))
}

// JobRuleBreach reports whether c, holding job, breaks a hard rule that
// depends on the job's attributes, with the same test the solver applies (see
// the top of this file for which rules those are). Only c's Proficiency is
// read. An error wraps ErrInvalidInput: a value outside its range.
func JobRuleBreach(job Job, c Candidate, opts Options) (Breach, bool, error) {
	pmin, err := opts.minUnits()
	if err != nil {
		return Breach{}, false, err
	}
	lang := languageKey(job.Language)
	if lang == "" {
		return Breach{}, false, nil
	}
	prof, _, err := quantizeProficiency(&c)
	if err != nil {
		return Breach{}, false, err
	}
	if meetsMinimum(prof[lang], pmin) {
		return Breach{}, false, nil
	}
	return Breach{
		Rule: RuleLanguage, Language: lang,
		Proficiency: float64(prof[lang]) / 1e6, Minimum: float64(pmin) / 1e6,
	}, true, nil
}

// minUnits is the minimum proficiency the options ask for, on the 1e-6 grid.
func (o Options) minUnits() (int64, error) {
	minProf := o.MinProficiency
	if minProf == 0 {
		minProf = DefaultMinProficiency
	}
	if !(minProf > 0 && minProf <= 5) {
		return 0, fmt.Errorf("%w: minimum proficiency %v is outside (0, 5]", ErrInvalidInput, o.MinProficiency)
	}
	return quantize(minProf), nil
}

// languageKey is the form languages are compared in: case does not matter.
func languageKey(lang string) string { return strings.ToLower(lang) }

// quantizeProficiency maps a candidate's proficiencies onto the 1e-6 grid
// under language keys, and returns their best.
func quantizeProficiency(c *Candidate) (map[string]int64, int64, error) {
	prof := make(map[string]int64, len(c.Proficiency))
	var best int64
	for lang, p := range c.Proficiency {
		if !(p >= 0 && p <= 5) {
			return nil, 0, fmt.Errorf("%w: candidate %d: proficiency %v in %q is outside [0, 5]", ErrInvalidInput, c.ID, p, lang)
		}
		q := quantize(p)
		l := languageKey(lang)
		// Keys that differ only in case are one language; trust the higher.
		prof[l] = max(prof[l], q)
		best = max(best, q)
	}
	return prof, best, nil
}

// meetsMinimum is rule 1 on the grid: a language missing from the person's
// proficiencies counts as 0.
func meetsMinimum(prof, pmin int64) bool { return prof >= pmin }

func formatProficiency(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
