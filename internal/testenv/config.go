package testenv

import (
	"fmt"
	"testing"

	"github.com/labelq/labelq/internal/config"
)

// Env bundles a test's private services.
type Env struct {
	PG    *PG
	Redis *Redis
	S3    *S3
}

// New gives the test its own database, Redis database and bucket.
func New(t testing.TB) *Env {
	t.Helper()
	return &Env{PG: Postgres(t), Redis: RedisDB(t), S3: MinIO(t)}
}

// Config is a labelq configuration pointing at the test's own services, with
// overrides applied on top (variable name → value).
func (e *Env) Config(t testing.TB, overrides map[string]string) *config.Config {
	t.Helper()
	vars := map[string]string{
		"LABELQ_DATABASE_URL":        e.PG.URL,
		"LABELQ_API_DATABASE_URL":    e.PG.APIURL,
		"LABELQ_REDIS_URL":           e.Redis.URL(),
		"LABELQ_S3_ENDPOINT":         e.S3.Endpoint,
		"LABELQ_S3_ACCESS_KEY":       e.S3.AccessKey,
		"LABELQ_S3_SECRET_KEY":       e.S3.SecretKey,
		"LABELQ_S3_BUCKET":           e.S3.Store.Bucket,
		"LABELQ_HTTP_ADDR":           "127.0.0.1:0",
		"LABELQ_OPERATOR_PASSWORD":   "operator-test-" + randHex(4),
		"LABELQ_SHUTDOWN_TIMEOUT":    "5s",
		"LABELQ_RELAY_POLL_INTERVAL": "200ms",
		"LABELQ_LOG_LEVEL":           "warn",
	}
	for k, v := range overrides {
		vars[k] = v
	}
	cfg, err := config.Load(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatalf("testenv: config: %v", err)
	}
	return cfg
}

// FreeAddr is a 127.0.0.1 address with a free port.
func FreeAddr(t testing.TB) string {
	t.Helper()
	p, err := FreePort()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return fmt.Sprintf("127.0.0.1:%d", p)
}
