package app

import (
	"log/slog"

	"github.com/labelq/labelq/internal/api"
	"github.com/labelq/labelq/internal/config"
	"github.com/labelq/labelq/internal/llm"
	"github.com/labelq/labelq/internal/ratelimit"
)

// apiQuotas are the operator's limits on tenants, from the settings (which the
// configuration checked already). The request limit shares its budget through
// Redis with every other API process.
func (a *App) apiQuotas() api.Quotas {
	q := api.Quotas{
		LLMMaxTokensCap: a.Cfg.LLMMaxTokensCap, LLMSystemPromptMax: a.Cfg.LLMSystemPromptMax,
		ScheduleMinInterval: a.Cfg.ScheduleMinInterval, ScheduleMaxPerProject: a.Cfg.ScheduleMaxPerProject,
		Admission: a.Admission(),
	}
	var err error
	if q.Models, err = llm.ParsePrices(a.Cfg.LLMPrices); err != nil {
		a.Log.Error("LABELQ_LLM_PRICES is invalid; no model is allowed", slog.String("error", err.Error()))
	}
	n, per, err := config.ParseRate(a.Cfg.APIRateLimit)
	if err != nil || n == 0 {
		return q
	}
	rate := ratelimit.Rate{N: n, Per: per}
	rdb, err := a.redisClient()
	if err != nil {
		a.Log.Error("API rate limit is off", slog.String("error", err.Error()))
		return q
	}
	if q.RateLimit, err = api.NewRateLimiter(rdb, rate); err != nil {
		a.Log.Error("API rate limit is off", slog.String("error", err.Error()))
	}
	return q
}
