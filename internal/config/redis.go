package config

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// ClusterStateReload is how often a Redis Cluster client reads the slot map again
// when nothing told it to sooner (go-redis's default is a minute).
const ClusterStateReload = 10 * time.Second

// RedisClusterOpt is asynq's Redis Cluster connection option with a client that
// follows a failover as soon as the cluster has made it. go-redis reloads the slot
// map on a MOVED answer, but a killed master answers nothing: its slots' commands
// fail against the dead address (connection refused, then timeouts) until the next
// periodic reload, a minute later by default, long after a replica has taken over.
// This client reloads the map whenever a command fails for want of a node, and
// every ClusterStateReload otherwise. asynq, asynqmon and labelq's own go-redis users
// all make their clients through MakeRedisClient, so they all get it.
type RedisClusterOpt struct {
	asynq.RedisClusterClientOpt
}

// MakeRedisClient is asynq's RedisClusterClientOpt.MakeRedisClient with the reloads
// described above.
func (o RedisClusterOpt) MakeRedisClient() any {
	c := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:                      o.Addrs,
		MaxRedirects:               o.MaxRedirects,
		Username:                   o.Username,
		Password:                   o.Password,
		DialTimeout:                o.DialTimeout,
		ReadTimeout:                o.ReadTimeout,
		WriteTimeout:               o.WriteTimeout,
		TLSConfig:                  o.TLSConfig,
		ClusterStateReloadInterval: ClusterStateReload,
	})
	c.AddHook(reloadOnNodeFailure{c})
	return c
}

// reloadOnNodeFailure asks the cluster client for a fresh slot map after a command
// that failed because its node was gone or the cluster was between masters.
// go-redis coalesces the requests (one reload at a time, 200 ms apart), so a burst
// of failures costs one CLUSTER SLOTS.
type reloadOnNodeFailure struct{ c *redis.ClusterClient }

func (h reloadOnNodeFailure) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h reloadOnNodeFailure) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.after(err)
		return err
	}
}

func (h reloadOnNodeFailure) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.after(err)
		return err
	}
}

func (h reloadOnNodeFailure) after(err error) {
	if nodeFailure(err) {
		h.c.ReloadState(context.Background())
	}
}

// nodeFailure reports whether err says the command's node is unreachable or the
// cluster is reconfiguring, as opposed to an answer (a script error, redis.Nil) or
// the caller giving up.
func nodeFailure(err error) bool {
	if err == nil || errors.Is(err, redis.Nil) || errors.Is(err, context.Canceled) || errors.Is(err, redis.ErrClosed) {
		return false
	}
	var reply redis.Error
	if errors.As(err, &reply) {
		msg := reply.Error()
		return strings.HasPrefix(msg, "CLUSTERDOWN") || strings.HasPrefix(msg, "TRYAGAIN") ||
			strings.HasPrefix(msg, "LOADING") || strings.HasPrefix(msg, "MASTERDOWN")
	}
	return true // dial errors, timeouts, connections reset by a dying server
}
