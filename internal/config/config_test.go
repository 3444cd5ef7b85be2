package config_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/config"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaultsWorkLocally(t *testing.T) {
	c, err := config.Load(env(nil))
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:9000", c.S3Endpoint)
	require.Equal(t, "127.0.0.1:8080", c.HTTPAddr)
	opt, err := c.RedisConnOpt()
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:6379", opt.(asynq.RedisClientOpt).Addr)
}

func TestRedisForms(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want func(t *testing.T, o asynq.RedisConnOpt)
	}{
		{"single with db and password", map[string]string{"LABELQ_REDIS_URL": "redis://:pw@redis.internal:6380/3"},
			func(t *testing.T, o asynq.RedisConnOpt) {
				r := o.(asynq.RedisClientOpt)
				require.Equal(t, "redis.internal:6380", r.Addr)
				require.Equal(t, 3, r.DB)
				require.Equal(t, "pw", r.Password)
			}},
		{"sentinel", map[string]string{"LABELQ_REDIS_URL": "redis-sentinel://s1:26379,s2:26379?master=mymaster", "LABELQ_REDIS_PASSWORD": "pw2"},
			func(t *testing.T, o asynq.RedisConnOpt) {
				r := o.(asynq.RedisFailoverClientOpt)
				require.Equal(t, "mymaster", r.MasterName)
				require.Equal(t, []string{"s1:26379", "s2:26379"}, r.SentinelAddrs)
				require.Equal(t, "pw2", r.Password)
			}},
		{"cluster", map[string]string{"LABELQ_REDIS_CLUSTER_ADDRS": "n1:7000, n2:7001,n3:7002"},
			func(t *testing.T, o asynq.RedisConnOpt) {
				r := o.(config.RedisClusterOpt)
				require.Equal(t, []string{"n1:7000", "n2:7001", "n3:7002"}, r.Addrs)
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.Load(env(tc.env))
			require.NoError(t, err)
			o, err := c.RedisConnOpt()
			require.NoError(t, err)
			tc.want(t, o)
		})
	}
}

func TestInvalidValuesAreAllReported(t *testing.T) {
	_, err := config.Load(env(map[string]string{
		"LABELQ_REDIS_URL":          "http://:topsecret@nowhere",
		"LABELQ_S3_ENDPOINT":        "no-port",
		"LABELQ_SHUTDOWN_TIMEOUT":   "soon",
		"LABELQ_LOG_LEVEL":          "loud",
		"LABELQ_WORKER_CONCURRENCY": "0",
	}))
	require.Error(t, err)
	msg := err.Error()
	for _, name := range []string{"LABELQ_SHUTDOWN_TIMEOUT"} {
		require.Contains(t, msg, name)
	}
	_, err = config.Load(env(map[string]string{
		"LABELQ_REDIS_URL":            "http://:topsecret@nowhere",
		"LABELQ_S3_ENDPOINT":          "no-port",
		"LABELQ_LOG_LEVEL":            "loud",
		"LABELQ_WORKER_CONCURRENCY":   "0",
		"LABELQ_S3_BUCKET":            "UPPER",
		"LABELQ_LLM_PRICES":           "gpt-4o-mini=cheap",
		"LABELQ_WORKER_POLL_INTERVAL": "1ms",
		"LABELQ_LLM_REASONING_MODELS": "prod-reasoner,my model",
	}))
	require.Error(t, err)
	msg = err.Error()
	require.Contains(t, msg, `"gpt-4o-mini=cheap"`, "the bad price entry is quoted")
	require.Contains(t, msg, `"my model"`, "the bad model name is quoted")
	for _, name := range []string{"LABELQ_REDIS_URL", "LABELQ_S3_ENDPOINT", "LABELQ_LOG_LEVEL", "LABELQ_WORKER_CONCURRENCY", "LABELQ_S3_BUCKET", "LABELQ_LLM_PRICES", "LABELQ_WORKER_POLL_INTERVAL", "LABELQ_LLM_REASONING_MODELS"} {
		require.Contains(t, msg, name)
	}
	require.NotContains(t, msg, "topsecret", "a secret in a bad value must not be echoed")
}

func TestSecretsNeverPrinted(t *testing.T) {
	c, err := config.Load(env(map[string]string{
		"LABELQ_S3_SECRET_KEY": "s3-very-secret", "LABELQ_LLM_API_KEY": "sk-very-secret",
		"LABELQ_OPERATOR_PASSWORD": "op-very-secret", "LABELQ_DATABASE_URL": "postgres://u:db-very-secret@h:5432/d",
	}))
	require.NoError(t, err)
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", slog.Any("config", c))
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), buf.String()} {
		require.NotContains(t, s, "very-secret")
	}
	require.Contains(t, buf.String(), "LABELQ_S3_BUCKET")
}

func TestHelpTable(t *testing.T) {
	var buf bytes.Buffer
	config.WriteHelp(&buf)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, len(config.Vars())+1)
}

// The README's configuration table is how users learn the variables: it must list
// every one.
func TestReadmeListsEveryVariable(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	for _, v := range config.Vars() {
		require.Contains(t, string(raw), "`"+v.Name+"`", "README.md lacks %s", v.Name)
	}
}
