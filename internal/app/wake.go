package app

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/labelq/labelq/internal/queue"
)

// workerServer is the worker role's asynq server. With LABELQ_WORKER_IDLE_WAIT it
// runs on a Redis client of its own carrying a queue.Waker, subscribed to the
// relay's wake-ups, so an idle worker waits instead of polling (see queue.Waker).
// stop ends the waits, shuts the server down (asynq hands unfinished tasks
// back) and closes that client.
func (a *App) workerServer(ctx context.Context, cfg asynq.Config) (srv *asynq.Server, stop func(), err error) {
	if a.Cfg.WorkerIdleWait == 0 {
		srv := asynq.NewServer(a.Redis, cfg)
		return srv, srv.Shutdown, nil
	}
	rc, ok := a.Redis.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return nil, nil, fmt.Errorf("redis connection option %T makes no go-redis client", a.Redis)
	}
	w := queue.NewWaker(slices.Collect(maps.Keys(cfg.Queues)), a.Cfg.WorkerIdleWait)
	rc.AddHook(w)
	lctx, stopListening := context.WithCancel(context.WithoutCancel(ctx))
	go w.Listen(lctx, rc)
	srv = asynq.NewServerFromRedisClient(rc, cfg)
	return srv, func() {
		w.Close()
		srv.Shutdown()
		stopListening()
		_ = rc.Close() // the server is done with it; nothing to report at exit
	}, nil
}

// wakeWorkers is the relay's Wake: one message on queue.WakeChannel.
func (a *App) wakeWorkers(ctx context.Context) error {
	rc, err := a.redisClient()
	if err != nil {
		return err
	}
	return queue.PublishWake(ctx, rc)
}
