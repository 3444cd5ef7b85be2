package match

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/matching"
)

func TestHasAvailability(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  string
		want bool
	}{
		{"empty document", `{}`, false},
		{"only a time zone", `{"timezone": "Asia/Tokyo"}`, false},
		{"days without windows", `{"timezone": "UTC", "monday": [], "friday": []}`, false},
		{"one window", `{"timezone": "UTC", "monday": [], "saturday": ["09:00-12:00"]}`, true},
		{"no time zone", `{"sunday": ["00:00-24:00"]}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := hasAvailability(json.RawMessage(tc.doc))
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
	_, err := hasAvailability(json.RawMessage(`{"monday": "09:00-12:00"}`))
	assert.Error(t, err, "a day must be a list of windows")
}

func TestCandidateFromRow(t *testing.T) {
	skill, qa := 0.5, 0.75
	c, err := candidate(db.UserListCandidatesRow{
		ID: 7, Role: db.UserRoleQc, Availability: json.RawMessage(`{"tuesday": ["08:00-10:00"]}`),
		LanguageExpertise: json.RawMessage(`{"en": 4.5, "pt-BR": 3}`), SkillScore: &skill, QaApprovalRate: &qa,
		MaxActiveJobs: 5, LiveAssignments: 2, AnnotatesInProject: true,
	})
	require.NoError(t, err)
	assert.Equal(t, matching.Candidate{
		ID: 7, Role: matching.RoleQC, Active: true, HasAvailability: true,
		Proficiency: map[string]float64{"en": 4.5, "pt-BR": 3}, SkillScore: &skill, QAApprovalRate: &qa,
		Remaining: 3, Load: 2, AnnotatesInProject: true,
	}, c)

	_, err = candidate(db.UserListCandidatesRow{ID: 8, Availability: json.RawMessage(`{}`), LanguageExpertise: json.RawMessage(`["en"]`)})
	assert.Error(t, err)
}
