package app

import (
	"net/http"
	"net/url"

	"github.com/hibiken/asynqmon"
)

// monitoring is asynqmon at /monitoring: read-only unless LABELQ_MONITORING_WRITABLE,
// and, writable or not, a write (anything but GET, HEAD, OPTIONS) a browser sends
// from another site is refused, so a page the operator visits cannot pause queues
// or delete tasks with the operator's saved basic-auth credential.
func (a *App) monitoring() http.Handler {
	mon := asynqmon.New(asynqmon.Options{
		RootPath:         "/monitoring",
		RedisConnOpt:     a.Redis,
		PayloadFormatter: asynqmon.PayloadFormatterFunc(safePayload),
		ResultFormatter:  asynqmon.ResultFormatterFunc(safePayload),
		ReadOnly:         !a.Cfg.MonitoringWritable,
	})
	return a.sameOrigin(mon)
}

// sameOrigin refuses cross-origin writes with 403: Sec-Fetch-Site cross-site or
// same-site, or an Origin that is neither the request's host nor LABELQ_PUBLIC_URL's
// (net/http's CrossOriginProtection). Requests without either header (curl, scripts)
// pass: they carry no ambient browser credential.
func (a *App) sameOrigin(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	if u, err := url.Parse(a.Cfg.PublicURL); err == nil && u.Scheme != "" && u.Host != "" {
		if err := cop.AddTrustedOrigin(u.Scheme + "://" + u.Host); err != nil {
			a.Log.Warn("LABELQ_PUBLIC_URL is not usable as a trusted origin for /monitoring", "err", err)
		}
	}
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, http.StatusForbidden, "Cross-origin request refused",
			"/monitoring accepts changes only from its own origin (the request's host or LABELQ_PUBLIC_URL)")
	}))
	return cop.Handler(next)
}
