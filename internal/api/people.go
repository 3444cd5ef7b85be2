package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/labelq/labelq/internal/db"
)

// UserInput is the body of user create and update: the matching inputs of an
// annotator or reviewer.
type UserInput struct {
	Email             *string                    `json:"email"`
	Name              *string                    `json:"name"`
	Role              *string                    `json:"role"`
	LanguageExpertise map[string]float64         `json:"language_expertise"`
	Availability      map[string]json.RawMessage `json:"availability"`
	SkillScore        *float64                   `json:"skill_score"`
	QAApprovalRate    *float64                   `json:"qa_approval_rate"`
	MaxActiveJobs     *int32                     `json:"max_active_jobs"`
	IsActive          *bool                      `json:"is_active"`
}

func (in *UserInput) validate(create bool) error {
	var v Validation
	if create {
		e := strings.TrimSpace(deref(in.Email))
		v.Check(e != "" && strings.Count(e, "@") == 1 && !strings.ContainsAny(e, " \t\r\n") && len(e) <= 320 &&
			!strings.HasPrefix(e, "@") && !strings.HasSuffix(e, "@"), "email", "must be an email address")
		v.Check(in.Role != nil, "role", "is required (annotator, qc, org_admin, org_pm or our_pm)")
	} else if in.Email != nil {
		v.Add("email", "cannot be changed; create a new user")
	}
	if in.Name != nil {
		checkName(&v, "name", *in.Name, false)
	}
	if in.Role != nil {
		v.Check(db.UserRole(*in.Role).Valid(), "role", "must be one of annotator, qc, org_admin, org_pm, our_pm")
	}
	checkLanguages(&v, "language_expertise", in.LanguageExpertise)
	checkAvailability(&v, "availability", in.Availability)
	checkUnit(&v, "skill_score", in.SkillScore)
	checkUnit(&v, "qa_approval_rate", in.QAApprovalRate)
	if in.MaxActiveJobs != nil {
		v.Check(*in.MaxActiveJobs >= 0 && *in.MaxActiveJobs <= 10000, "max_active_jobs", "must be between 0 and 10,000")
	}
	return v.Err()
}

func createUser(c *Call) (int, any, error) {
	var in UserInput
	if err := decodeJSON(c.Body, &in); err != nil {
		return 0, nil, err
	}
	if err := in.validate(true); err != nil {
		return 0, nil, err
	}
	arg := db.UserCreateParams{
		OrgID: c.OrgID, Email: strings.TrimSpace(*in.Email), Name: deref(in.Name), Role: db.UserRole(*in.Role),
		Availability: rawOrNil(in.Availability, false), LanguageExpertise: rawOrNil(in.LanguageExpertise, false),
		SkillScore: in.SkillScore, QaApprovalRate: in.QAApprovalRate, MaxActiveJobs: 5, IsActive: true,
	}
	if in.Availability == nil {
		arg.Availability = json.RawMessage(`{}`)
	}
	if in.LanguageExpertise == nil {
		arg.LanguageExpertise = json.RawMessage(`{}`)
	}
	if in.MaxActiveJobs != nil {
		arg.MaxActiveJobs = *in.MaxActiveJobs
	}
	if in.IsActive != nil {
		arg.IsActive = *in.IsActive
	}
	u, err := c.Q.UserCreate(c.R.Context(), arg)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, userFromRow(u), nil
}

func getUser(c *Call) (int, any, error) {
	return getByID(c, "user_id", "user", func(ctx context.Context, id int64) (any, error) {
		u, err := c.Q.UserGet(ctx, db.UserGetParams{ID: id, OrgID: c.OrgID})
		return userFromRow(u), err
	})
}

func listUsers(c *Call) (int, any, error) {
	after, limit, err := page(c.R)
	if err != nil {
		return 0, nil, err
	}
	us, err := c.Q.UserListByOrg(c.R.Context(), db.UserListByOrgParams{OrgID: c.OrgID, AfterID: after, MaxRows: limit})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, listOf(us, userFromRow), nil
}

func updateUser(c *Call) (int, any, error) {
	id, err := pathID(c.R, "user_id")
	if err != nil {
		return 0, nil, err
	}
	var in UserInput
	if err := decodeJSON(c.Body, &in); err != nil {
		return 0, nil, err
	}
	if err := in.validate(false); err != nil {
		return 0, nil, err
	}
	arg := db.UserUpdateParams{
		ID: id, OrgID: c.OrgID, Name: in.Name, SkillScore: in.SkillScore, QaApprovalRate: in.QAApprovalRate,
		MaxActiveJobs: in.MaxActiveJobs, IsActive: in.IsActive,
	}
	if in.Role != nil {
		r := db.UserRole(*in.Role)
		arg.Role = &r
	}
	if in.Availability != nil {
		arg.Availability = rawOrNil(in.Availability, false)
	}
	if in.LanguageExpertise != nil {
		arg.LanguageExpertise = rawOrNil(in.LanguageExpertise, false)
	}
	u, err := c.Q.UserUpdate(c.R.Context(), arg)
	if err != nil {
		return 0, nil, orNotFound(err, "user")
	}
	if in.SkillScore != nil || in.QAApprovalRate != nil {
		// The scoring worker writes the same two values after each gold
		// submission; the last writer wins, and the event says who wrote.
		if err := event(c.R.Context(), c, db.EntityTypeUser, u.ID, "quality_updated", map[string]any{
			"by": "api", "qa_approval_rate": u.QaApprovalRate, "skill_score": u.SkillScore,
		}); err != nil {
			return 0, nil, err
		}
	}
	return http.StatusOK, userFromRow(u), nil
}

func orNotFound(err error, what string) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return notFound("the " + what)
	}
	return err
}
