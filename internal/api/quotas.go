package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/labelq/labelq/internal/admission"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/llm"
	"github.com/labelq/labelq/internal/logging"
	"github.com/labelq/labelq/internal/ratelimit"
	"github.com/labelq/labelq/internal/schedule"
)

// Defaults of Quotas' zero fields; they are the configuration's defaults too
// (LABELQ_LLM_MAX_TOKENS_CAP, LABELQ_LLM_SYSTEM_PROMPT_MAX,
// LABELQ_SCHEDULE_MIN_INTERVAL, LABELQ_SCHEDULE_MAX_PER_PROJECT).
const (
	DefaultLLMMaxTokensCap       = 4096
	DefaultLLMSystemPromptMax    = 8000
	DefaultScheduleMinInterval   = time.Hour
	DefaultScheduleMaxPerProject = 10
)

// Quotas are the limits an operator sets and a tenant cannot exceed.
type Quotas struct {
	// Models is the price table, which is also the list of models a project may
	// use (llm.Prices.Allows). Nil allows none.
	Models llm.Prices
	// LLMMaxTokensCap bounds a project's llm_max_tokens.
	LLMMaxTokensCap int32
	// LLMSystemPromptMax bounds a project's llm_system_prompt, in characters.
	LLMSystemPromptMax int
	// ScheduleMinInterval is the shortest gap between two ticks of a schedule.
	ScheduleMinInterval time.Duration
	// ScheduleMaxPerProject is the most schedules one project may have.
	ScheduleMaxPerProject int
	// RateLimit limits each token's requests; nil is no limit.
	RateLimit *RateLimiter
	// Admission is LABELQ_ADMIT_PER_ORG, which GET /v1/admission answers as
	// each task type's limit (the relay enforces it).
	Admission admission.Limits
}

func (q Quotas) maxTokens() int32 { return cmp.Or(q.LLMMaxTokensCap, DefaultLLMMaxTokensCap) }
func (q Quotas) systemPromptMax() int {
	return cmp.Or(q.LLMSystemPromptMax, DefaultLLMSystemPromptMax)
}
func (q Quotas) scheduleMinInterval() time.Duration {
	return cmp.Or(q.ScheduleMinInterval, DefaultScheduleMinInterval)
}
func (q Quotas) scheduleMax() int {
	return cmp.Or(q.ScheduleMaxPerProject, DefaultScheduleMaxPerProject)
}

// checkLLM refuses the LLM settings of a project create or update that go beyond
// the operator's quotas. Settings the request leaves out are not checked again.
func (q Quotas) checkLLM(in *ProjectInput) error {
	var v Validation
	if in.LLMModel != nil && *in.LLMModel != "" && !q.Models.Allows(*in.LLMModel) {
		allowed := "none (the operator has listed no model in LABELQ_LLM_PRICES)"
		if models := q.Models.Models(); len(models) > 0 {
			allowed = strings.Join(models, ", ")
		}
		v.Add("llm_model", "%q is not offered on this deployment; choose one of: %s", *in.LLMModel, allowed)
	}
	if in.LLMMaxTokens != nil && *in.LLMMaxTokens > q.maxTokens() {
		v.Add("llm_max_tokens", "must be at most %d on this deployment", q.maxTokens())
	}
	if in.LLMSystemPrompt != nil && utf8.RuneCountInString(*in.LLMSystemPrompt) > q.systemPromptMax() {
		v.Add("llm_system_prompt", "must be at most %d characters on this deployment", q.systemPromptMax())
	}
	return v.Err()
}

// checkScheduleInterval refuses a schedule whose ticks come closer together than
// the operator's minimum.
func (c *Call) checkScheduleInterval(cronSpec, timezone string) error {
	return c.checkCronInterval("cron_spec", cronSpec, timezone)
}

// checkCronInterval is checkScheduleInterval for any schedule's field (a
// storage's sync_cron follows the same rules as an export schedule).
func (c *Call) checkCronInterval(field, cronSpec, timezone string) error {
	err := schedule.CheckInterval(cronSpec, timezone, c.S.Quotas.scheduleMinInterval(), c.S.now())
	var tf *schedule.TooFrequentError
	switch {
	case errors.As(err, &tf):
		return invalid(field, fmt.Sprintf("%q %s; use a spec such as \"0 * * * *\" (hourly) or \"0 2 * * *\" (daily)", cronSpec, tf.Error()))
	case err != nil:
		return invalid(field, fmt.Sprintf("%q is not a cron spec: %v", cronSpec, err))
	}
	return nil
}

// checkScheduleCount refuses one schedule more than the project may have. It
// locks the project row for the rest of the transaction first, so that two
// concurrent creates cannot both see room for one.
func (c *Call) checkScheduleCount(projectID int64) error {
	ctx := c.R.Context()
	if _, err := c.Q.ExportScheduleLockProject(ctx, db.ExportScheduleLockProjectParams{ProjectID: projectID, OrgID: c.OrgID}); err != nil {
		return orNotFound(err, "project")
	}
	n, err := c.Q.ExportScheduleCountByProject(ctx, db.ExportScheduleCountByProjectParams{ProjectID: projectID, OrgID: c.OrgID})
	if err != nil {
		return fmt.Errorf("count export schedules: %w", err)
	}
	if limit := c.S.Quotas.scheduleMax(); n >= int64(limit) {
		return problem(http.StatusUnprocessableEntity, "Too many schedules",
			fmt.Sprintf("project %d has %d export schedules, the most this deployment allows per project; delete one first", projectID, n))
	}
	return nil
}

// rateLimitFailOpen is how long requests pass unchecked after Redis failed to
// answer the limiter, so that an outage costs one failed call, not one per request.
const rateLimitFailOpen = 5 * time.Second

// RateLimiter is the API's per-token request limit. Its budget lives in Redis,
// shared by every API process. When Redis is unreachable the limit is not
// enforced (the API keeps accepting work, which waits in the Postgres outbox)
// and the outage is logged.
type RateLimiter struct {
	req       *ratelimit.Requests
	openUntil atomic.Int64 // unix nanoseconds
}

// NewRateLimiter limits every token to r over rdb; nil when r is no limit.
func NewRateLimiter(rdb redis.UniversalClient, r ratelimit.Rate) (*RateLimiter, error) {
	if r.Off() {
		return nil, nil
	}
	req, err := ratelimit.NewRequests(rdb, "labelq:api:rate:", r)
	if err != nil {
		return nil, err
	}
	return &RateLimiter{req: req}, nil
}

// rateLimited counts the request against its token's budget and, when the budget
// is spent, answers 429 with Retry-After and reports true.
func (s *Server) rateLimited(ctx context.Context, w http.ResponseWriter, tok token) bool {
	return s.rateLimitedBy(ctx, w, "token:"+strconv.FormatInt(tok.ID, 10), "this API token")
}

// rateLimitedBy is rateLimited for any budget: key names it in Redis, who in the
// answer ("this API token", "this storage's notifications").
func (s *Server) rateLimitedBy(ctx context.Context, w http.ResponseWriter, key, who string) bool {
	l := s.Quotas.RateLimit
	if l == nil || time.Now().UnixNano() < l.openUntil.Load() {
		return false
	}
	d, err := l.req.Allow(ctx, key)
	if err != nil {
		if ctx.Err() == nil {
			l.openUntil.Store(time.Now().Add(rateLimitFailOpen).UnixNano())
			logging.From(ctx, s.Log).WarnContext(ctx, "API rate limit unavailable; requests pass unchecked for a while",
				slog.Duration("for", rateLimitFailOpen), slog.String("error", err.Error()))
		}
		return false
	}
	if d.Allowed {
		return false
	}
	secs := max(1, int(math.Ceil(d.RetryAfter.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeProblem(w, problem(http.StatusTooManyRequests, "Too many requests",
		fmt.Sprintf("%s may make %s requests; retry in %d s (Retry-After)", who, l.req.Rate(), secs)))
	return true
}
