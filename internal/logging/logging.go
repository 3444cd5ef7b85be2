// Package logging builds labelq's one slog logger and the adapter asynq needs, and
// keeps secrets out of every line: values of attributes whose key names a secret are
// replaced before they are written.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// New returns a JSON (or text) logger at the given level writing to w.
func New(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv, ReplaceAttr: redact}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// secretKeys are attribute-name fragments whose values are never logged.
var secretKeys = []string{"password", "secret", "token", "api_key", "apikey", "authorization", "credential"}

func redact(_ []string, a slog.Attr) slog.Attr {
	k := strings.ToLower(a.Key)
	for _, s := range secretKeys {
		if strings.Contains(k, s) && !strings.HasSuffix(k, "_id") {
			return slog.String(a.Key, "(hidden)")
		}
	}
	return a
}

type ctxKey struct{}

// WithAttrs returns a context whose log lines (through FromContext) carry attrs, such
// as a request id or a task id.
func WithAttrs(ctx context.Context, attrs ...any) context.Context {
	prev, _ := ctx.Value(ctxKey{}).([]any)
	return context.WithValue(ctx, ctxKey{}, append(append([]any(nil), prev...), attrs...))
}

// From returns log with the attributes stored in ctx by WithAttrs.
func From(ctx context.Context, log *slog.Logger) *slog.Logger {
	if attrs, ok := ctx.Value(ctxKey{}).([]any); ok && len(attrs) > 0 {
		return log.With(attrs...)
	}
	return log
}

// Asynq adapts slog to asynq's Logger interface.
type Asynq struct{ Log *slog.Logger }

func (a Asynq) Debug(args ...any) {
	a.Log.Debug(fmt.Sprint(args...), slog.String("component", "asynq"))
}
func (a Asynq) Info(args ...any) { a.Log.Info(fmt.Sprint(args...), slog.String("component", "asynq")) }
func (a Asynq) Warn(args ...any) {
	msg := fmt.Sprint(args...)
	if strings.HasPrefix(msg, "Retry exhausted for task") {
		// The worker's middleware has logged that failure once already, with its
		// reason; asynq's line would be a second, reasonless copy.
		a.Log.Debug(msg, slog.String("component", "asynq"))
		return
	}
	a.Log.Warn(msg, slog.String("component", "asynq"))
}
func (a Asynq) Error(args ...any) {
	a.Log.Error(fmt.Sprint(args...), slog.String("component", "asynq"))
}
func (a Asynq) Fatal(args ...any) {
	a.Log.Error(fmt.Sprint(args...), slog.String("component", "asynq"), slog.Bool("fatal", true))
	os.Exit(1)
}
