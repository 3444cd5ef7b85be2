package matching_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/matching"
)

func TestProjectOptions(t *testing.T) {
	assert.Equal(t, 3.5, matching.ProjectOptions(3.5).MinProficiency)
	// The solver reads 0 as its default of 3; a project's 0 means no minimum.
	assert.Equal(t, 1e-6, matching.ProjectOptions(0).MinProficiency)
}

func TestParseProficiency(t *testing.T) {
	m, err := matching.ParseProficiency([]byte(`{"en": 4.5, "zh": 3}`))
	require.NoError(t, err)
	assert.Equal(t, map[string]float64{"en": 4.5, "zh": 3}, m)
	m, err = matching.ParseProficiency(nil)
	require.NoError(t, err)
	assert.Empty(t, m)
	_, err = matching.ParseProficiency([]byte(`["en"]`))
	assert.Error(t, err)
}

func TestJobRuleBreach(t *testing.T) {
	for _, tc := range []struct {
		name       string
		lang       string
		prof       map[string]float64
		projectMin float64
		broken     bool
		reason     string
	}{
		{"no language breaks nothing", "", en(1), 3, false, ""},
		{"at the minimum", "en", en(3), 3, false, ""},
		{"case does not matter", "PT-br", map[string]float64{"pt-BR": 4}, 3, false, ""},
		{"language missing", "zh", en(5), 3, true, "annotator's zh proficiency 0 is below the project's minimum 3"},
		{"below the minimum", "zh", map[string]float64{"zh": 2.5}, 3, true, "annotator's zh proficiency 2.5 is below the project's minimum 3"},
		{"no project minimum, some proficiency", "zh", map[string]float64{"zh": 0.5}, 0, false, ""},
		{"no project minimum, none at all", "zh", en(5), 0, true, "annotator has no zh proficiency"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := job(1, tc.lang, matching.PriorityMedium)
			c := user(7, tc.prof, 0.5)
			opts := matching.ProjectOptions(tc.projectMin)
			b, broken, err := matching.JobRuleBreach(j, c, opts)
			require.NoError(t, err)
			require.Equal(t, tc.broken, broken)
			if broken {
				assert.Equal(t, matching.RuleLanguage, b.Rule)
				assert.Equal(t, tc.reason, b.Reason("annotator"))
			}
			// One rule: the solver gives the job to the person exactly when
			// the re-check would leave them holding it.
			res, err := matching.Solve(context.Background(), []matching.Job{j}, []matching.Candidate{c}, opts)
			require.NoError(t, err)
			assert.Equal(t, !broken, len(res.Assignments) == 1, "solver and re-check disagree")
		})
	}

	_, _, err := matching.JobRuleBreach(job(1, "en", matching.PriorityLow), user(7, en(6), 0), matching.Options{})
	assert.True(t, errors.Is(err, matching.ErrInvalidInput), "a proficiency above 5 is invalid input: %v", err)
}
