package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/labelq/labelq/internal/config"
)

// RedisFailoverWait is how long a process starting against a Redis Cluster or
// Sentinel set waits for Redis to answer: a failover is a normal event there (15 to
// 30 s with the servers' default timeouts), and a process restarted during one
// (by its supervisor, after a crash or a deploy) must come up once it is over, not
// exit. A single server that does not answer is a mistake to report at once.
const RedisFailoverWait = 60 * time.Second

// waitRedis checks that Redis answers the inspector, retrying for up to
// RedisFailoverWait on a Cluster or Sentinel set.
func waitRedis(ctx context.Context, opt asynq.RedisConnOpt, inspector *asynq.Inspector, log *slog.Logger) error {
	_, err := inspector.Queues()
	switch opt.(type) {
	case config.RedisClusterOpt, asynq.RedisClusterClientOpt, asynq.RedisFailoverClientOpt:
	default:
		return err
	}
	if err == nil {
		return nil
	}
	log.WarnContext(ctx, "Redis does not answer; a Cluster or Sentinel failover may be under way, waiting for it",
		slog.Duration("for at most", RedisFailoverWait), slog.String("error", err.Error()))
	deadline := time.Now().Add(RedisFailoverWait)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return err
		case <-time.After(500 * time.Millisecond):
		}
		if _, err = inspector.Queues(); err == nil {
			log.InfoContext(ctx, "Redis answers")
			return nil
		}
	}
	return err
}
