// Package queue holds what every labelq process agrees on about asynq: queue names and
// their weights, the server's retry policy (exponential backoff with jitter, or the
// delay a handler asks for, such as a provider's Retry-After), and the error types
// handlers use to say "retry later" or "never retry".
package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/labelq/labelq/internal/logging"
)

// Queue names. Each task type has its own queue so a flood of one kind of work
// (1,000 uploads) cannot starve another (a project manager's export).
const (
	QueueValidate    = "validate"
	QueuePreannotate = "preannotate"
	QueueMatch       = "match"
	QueueExport      = "export"
	// QueueSync runs storage:sync: long, paged, resumable walks of a bucket.
	QueueSync = "sync"
	// QueueWebhook runs webhook:deliver: short HTTP posts to the platform's
	// endpoints, kept apart so a slow receiver never holds up the pipeline.
	QueueWebhook = "webhook"
	QueueDefault = "default"
)

// Weights are the relative shares of worker slots each queue gets when all are busy.
var Weights = map[string]int{
	QueueValidate:    6,
	QueueMatch:       4,
	QueuePreannotate: 3,
	QueueExport:      2,
	QueueSync:        2,
	QueueWebhook:     3,
	QueueDefault:     1,
}

// Names lists the queues in a stable order.
func Names() []string {
	return []string{QueueValidate, QueuePreannotate, QueueMatch, QueueExport, QueueSync, QueueWebhook, QueueDefault}
}

// RetryAfterError asks for the next attempt after a given delay (a rate limit's
// Retry-After, an upload that may still be finishing).
type RetryAfterError struct {
	After time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("%v (retry in %s)", e.Err, e.After.Round(time.Millisecond))
}
func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryAfter wraps err so the task is retried after d.
func RetryAfter(d time.Duration, err error) error { return &RetryAfterError{After: d, Err: err} }

// Permanent wraps err so asynq archives the task at once: the input will never
// succeed, retrying only spends money and hides the problem.
func Permanent(err error) error { return fmt.Errorf("%w: %w", err, asynq.SkipRetry) }

// Backoff is exponential with full jitter: base·2^n, capped, times a random factor in
// [0.5, 1.5), so many failed tasks do not retry in lock-step.
func Backoff(n int, base, maxDelay time.Duration) time.Duration {
	if n < 0 {
		n = 0
	}
	d := base
	for i := 0; i < n && d < maxDelay; i++ {
		d *= 2
	}
	if d > maxDelay {
		d = maxDelay
	}
	return time.Duration(float64(d) * (0.5 + rand.Float64()))
}

// RetryDelay is asynq's RetryDelayFunc for every labelq server.
func RetryDelay(n int, err error, _ *asynq.Task) time.Duration {
	var ra *RetryAfterError
	if errors.As(err, &ra) && ra.After > 0 {
		return ra.After
	}
	return Backoff(n, 2*time.Second, 10*time.Minute)
}

// ServerConfig is the asynq server configuration every worker process uses.
func ServerConfig(concurrency int, shutdown time.Duration, log *slog.Logger, baseCtx func() context.Context) asynq.Config {
	return asynq.Config{
		Concurrency:     concurrency,
		Queues:          Weights,
		RetryDelayFunc:  RetryDelay,
		ShutdownTimeout: shutdown,
		Logger:          logging.Asynq{Log: log},
		LogLevel:        asynq.WarnLevel,
		BaseContext:     baseCtx,
		// A RetryAfterError is the handler asking for a later try, not a failure to alarm on.
		IsFailure: func(err error) bool {
			var ra *RetryAfterError
			return !errors.As(err, &ra)
		},
		// An idle asynq processor sleeps TaskCheckInterval ±50% between polls; asynq's
		// 1 s default can hold a task just enqueued (an upload's validation) for up to
		// 1.5 s on an idle worker. A worker with a Waker waits for a wake-up instead
		// once every queue is empty, so this short pause is not its idle cost.
		TaskCheckInterval: DefaultPollInterval,
		// Group aggregation for project:match (many uploads → a few matching runs).
		GroupGracePeriod: 2 * time.Second,
		GroupMaxDelay:    10 * time.Second,
		GroupMaxSize:     1000,
		GroupAggregator:  asynq.GroupAggregatorFunc(aggregateGroup),
	}
}

// aggregateGroup collapses a group of identical triggers into one task: they carry
// only a project id (the group key), and a run looks at the project's whole state.
func aggregateGroup(group string, tasks []*asynq.Task) *asynq.Task {
	return asynq.NewTask(tasks[0].Type(), tasks[0].Payload())
}

// Register records labelq's queue names in asynq's queue set. asynq adds a queue to
// that set only on a client's first enqueue into it, so after Redis loses its data
// (FLUSHALL, a restart without persistence) the inspector and asynqmon would stop
// seeing queues whose tasks still flow; the worker calls this at start and the
// reconciler on every pass.
func Register(ctx context.Context, opt asynq.RedisConnOpt) error {
	rc, ok := opt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return nil
	}
	defer rc.Close()
	members := make([]any, 0, len(Names()))
	for _, q := range Names() {
		members = append(members, q)
	}
	return rc.SAdd(ctx, "asynq:queues", members...).Err()
}
