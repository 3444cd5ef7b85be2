// Package config reads labelq's configuration from environment variables (12-factor),
// with defaults that work on a developer machine running Postgres, Redis and MinIO
// locally. Every variable is declared once, in the Config struct's tags, so that
// loading, validation, --help and the docker-compose check all read the same list.
package config

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"

	"github.com/labelq/labelq/internal/admission"
	"github.com/labelq/labelq/internal/llm"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/webhook/delivery"
)

// Config is every setting of every labelq process. Field tags:
//
//	env:     the variable name
//	default: the value when the variable is unset
//	help:    one line for --help and the README
//	secret:  "true" for values that must never be printed or logged
type Config struct {
	DatabaseURL      string `env:"LABELQ_DATABASE_URL" default:"postgres://postgres@127.0.0.1:5432/labelq?sslmode=disable" help:"PostgreSQL connection URL (the source of truth) of migrations, token commands and the worker, scheduler and relay roles: the schema owner for migrate, labelq_worker for the others" secret:"true"`
	APIDatabaseURL   string `env:"LABELQ_API_DATABASE_URL" default:"" help:"PostgreSQL URL of the api role, as the non-superuser labelq_api_login under row-level security; empty: LABELQ_DATABASE_URL with its user replaced by labelq_api_login and no password" secret:"true"`
	DatabaseMaxConns int32  `env:"LABELQ_DATABASE_MAX_CONNS" default:"10" help:"maximum Postgres connections per process"`
	// A transaction pooler (PgBouncer, pool_mode = transaction) in LABELQ_DATABASE_URL and LABELQ_API_DATABASE_URL needs these two.
	DatabaseDirectURL string `env:"LABELQ_DATABASE_DIRECT_URL" default:"" help:"PostgreSQL URL of the server itself, not through a transaction pooler, for what needs a session of its own: migrations and the relay's LISTEN; empty: LABELQ_DATABASE_URL" secret:"true"`
	DatabaseExecMode  string `env:"LABELQ_DATABASE_EXEC_MODE" default:"cache_statement" help:"how queries are sent (pgx's QueryExecMode): cache_statement prepares named statements on each session; cache_describe sends unnamed ones, for PgBouncer before 1.21 in transaction pooling; also describe_exec, exec, simple_protocol"`

	RedisURL          string `env:"LABELQ_REDIS_URL" default:"redis://127.0.0.1:6379/0" help:"Redis for asynq: redis://[:password@]host:port/db, rediss://… for TLS, redis-sentinel://[:password@]host1:port,host2:port?master=name for Sentinel" secret:"true"`
	RedisClusterAddrs string `env:"LABELQ_REDIS_CLUSTER_ADDRS" default:"" help:"comma-separated Redis Cluster node addresses; when set, used instead of LABELQ_REDIS_URL's host"`
	RedisPassword     string `env:"LABELQ_REDIS_PASSWORD" default:"" help:"Redis password (overrides one in the URL; used for Cluster)" secret:"true"`

	S3Endpoint  string `env:"LABELQ_S3_ENDPOINT" default:"127.0.0.1:9000" help:"S3/MinIO endpoint host:port"`
	S3AccessKey string `env:"LABELQ_S3_ACCESS_KEY" default:"minioadmin" help:"S3 access key id"`
	S3SecretKey string `env:"LABELQ_S3_SECRET_KEY" default:"minioadmin" help:"S3 secret key" secret:"true"`
	S3Bucket    string `env:"LABELQ_S3_BUCKET" default:"labelq" help:"bucket for uploads, LLM outputs and exports"`
	S3Region    string `env:"LABELQ_S3_REGION" default:"us-east-1" help:"S3 region"`
	S3UseTLS    bool   `env:"LABELQ_S3_USE_TLS" default:"false" help:"use HTTPS for S3"`

	SecretKey               string `env:"LABELQ_SECRET_KEY" default:"" help:"keys that encrypt storage credentials at rest: kid:base64(32 bytes)[,kid:base64...]; the first encrypts, all decrypt (rotation); empty refuses storages with credentials" secret:"true"`
	StorageAllowedEndpoints string `env:"LABELQ_STORAGE_ALLOWED_ENDPOINTS" default:"" help:"S3 endpoints (host:port, or *.domain:port) tenants may use for import and export storages, comma-separated; empty allows only LABELQ_S3_ENDPOINT"`

	HTTPAddr           string `env:"LABELQ_HTTP_ADDR" default:"127.0.0.1:8080" help:"listen address of the API, /monitoring, /metrics, /healthz; beyond loopback (such as :8080) labelq refuses default or short operator passwords and MinIO's default keys"`
	MetricsAddr        string `env:"LABELQ_METRICS_ADDR" default:"" help:"listen address of a metrics-only server (/metrics behind the operator credential, and /healthz) that any process starts, so Prometheus can scrape a worker, scheduler or relay; empty: none (the api role serves /metrics on LABELQ_HTTP_ADDR); beyond loopback the operator password rules of LABELQ_HTTP_ADDR apply"`
	PublicURL          string `env:"LABELQ_PUBLIC_URL" default:"http://localhost:8080" help:"URL users reach the API at (printed by make run)"`
	OperatorUser       string `env:"LABELQ_OPERATOR_USER" default:"operator" help:"basic-auth user for /monitoring and /metrics"`
	OperatorPassword   string `env:"LABELQ_OPERATOR_PASSWORD" default:"" help:"basic-auth password for /monitoring and /metrics; empty disables those routes" secret:"true"`
	MonitoringWritable bool   `env:"LABELQ_MONITORING_WRITABLE" default:"false" help:"let /monitoring (asynqmon) pause queues and delete, run or archive tasks; read-only when false; cross-origin writes are refused either way"`
	MaxBodyBytes       int64  `env:"LABELQ_MAX_BODY_BYTES" default:"1048576" help:"largest accepted API request body"`

	WorkerConcurrency  int           `env:"LABELQ_WORKER_CONCURRENCY" default:"10" help:"tasks one worker process runs at once"`
	WorkerPollInterval time.Duration `env:"LABELQ_WORKER_POLL_INTERVAL" default:"50ms" help:"pause, ±50%, after a worker looked at every queue and found nothing (asynq's TaskCheckInterval, 1s there); once every queue was found empty the worker waits LABELQ_WORKER_IDLE_WAIT instead"`
	WorkerIdleWait     time.Duration `env:"LABELQ_WORKER_IDLE_WAIT" default:"1s" help:"how long an idle worker, every queue found empty, waits for a wake-up (the relay publishes one on Redis after each batch it enqueues) before looking again; a task that comes without one (a retry, a scheduled or periodic task) waits up to this; 0 turns the wake-up off: plain polling every LABELQ_WORKER_POLL_INTERVAL (raise it then: each look is one Redis call per queue)"`
	ShutdownTimeout    time.Duration `env:"LABELQ_SHUTDOWN_TIMEOUT" default:"25s" help:"how long a stopping process waits for in-flight work"`
	HeartbeatInterval  time.Duration `env:"LABELQ_HEARTBEAT_INTERVAL" default:"5s" help:"how often a running export or sync run writes its heartbeat_at; the API answers status stalled for one whose heartbeat is older than 3 intervals (its worker is gone; asynq hands the task to another worker when its lease runs out)"`

	RelayPollInterval time.Duration `env:"LABELQ_RELAY_POLL_INTERVAL" default:"1s" help:"outbox relay polling fallback (LISTEN/NOTIFY wakes it sooner)"`
	RelayBatchSize    int           `env:"LABELQ_RELAY_BATCH_SIZE" default:"500" help:"outbox rows one relay claims and moves to asynq at a time"`
	AdmitPerOrg       string        `env:"LABELQ_ADMIT_PER_ORG" default:"validate=200,preannotate=10,match=20,export=4,sync=4,score=200,consensus=4,deliver=0,default=100" help:"fair admission: tasks of each type one organization may have in Redis, admitted and not finished (type=limit pairs by task type or its short name, default=N for the rest, times the organization's admission_weight); the rest waits in the outbox and organizations take turns; 0 turns admission off (every row relayed at once, oldest first)"`
	ReconcileInterval time.Duration `env:"LABELQ_RECONCILE_INTERVAL" default:"1m" help:"how often the reconciler looks for stuck rows"`
	ReconcileAfter    time.Duration `env:"LABELQ_RECONCILE_AFTER" default:"5m" help:"a pending row older than this with no live task is queued again"`
	OutboxRetention   time.Duration `env:"LABELQ_OUTBOX_RETENTION" default:"24h" help:"relayed outbox rows are kept this long (GET /v1/tasks/{id} and the reconciler read them)"`
	// Retention of the other growing tables (internal/retention, hourly; 0 keeps).
	EventLogRetention    time.Duration `env:"LABELQ_EVENT_LOG_RETENTION" default:"2160h" help:"event_log is kept this long, then dropped a whole month at a time (so up to a month longer); 0 keeps it forever. Upgrading with the default drops older history on the first pass"`
	IdempotencyRetention time.Duration `env:"LABELQ_IDEMPOTENCY_RETENTION" default:"720h" help:"answers stored for Idempotency-Key requests are kept this long (the same key after that is a new request); 0 keeps them"`
	LLMRunRetention      time.Duration `env:"LABELQ_LLM_RUN_RETENTION" default:"8760h" help:"finished pre-annotation runs unchanged for this long are deleted (usage and cost totals then count the runs kept; a run a cached copy points to stays while the copy does); 0 keeps them"`
	SyncRunRetention     time.Duration `env:"LABELQ_SYNC_RUN_RETENTION" default:"2160h" help:"finished storage sync runs unchanged for this long are deleted, except each storage's newest; 0 keeps them"`

	LLMBaseURL           string        `env:"LABELQ_LLM_BASE_URL" default:"https://api.openai.com/v1" help:"OpenAI-compatible base URL (OpenAI, Azure OpenAI, vLLM, Ollama, LiteLLM)"`
	LLMAPIKey            string        `env:"LABELQ_LLM_API_KEY" default:"" help:"API key for the LLM endpoint" secret:"true"`
	LLMTimeout           time.Duration `env:"LABELQ_LLM_TIMEOUT" default:"120s" help:"timeout of one model call"`
	LLMRequestsPerMinute int           `env:"LABELQ_LLM_RPM" default:"60" help:"requests per minute to the LLM, shared by every worker process"`
	LLMTokensPerMinute   int           `env:"LABELQ_LLM_TPM" default:"100000" help:"tokens per minute to the LLM, shared by every worker process"`
	LLMMaxConcurrent     int           `env:"LABELQ_LLM_MAX_CONCURRENT" default:"4" help:"model calls in flight at once, across every worker process"`
	LLMPrices            string        `env:"LABELQ_LLM_PRICES" default:"gpt-4o-mini=0.15/0.60,gpt-4o=2.50/10,gpt-4.1-nano=0.10/0.40,gpt-4.1-mini=0.40/1.60,gpt-4.1=2/8" help:"the models projects may use, with their USD per million input/output tokens for the cost recorded on every call (a name also prices the dated snapshots the provider echoes); a project's llm_model must be listed exactly; *=0/0 allows any model at no cost (a local endpoint)"`
	LLMMaxTokensCap      int32         `env:"LABELQ_LLM_MAX_TOKENS_CAP" default:"4096" help:"largest llm_max_tokens a project may set"`
	LLMSystemPromptMax   int           `env:"LABELQ_LLM_SYSTEM_PROMPT_MAX" default:"8000" help:"longest llm_system_prompt a project may set, in characters"`
	LLMReasoningModels   string        `env:"LABELQ_LLM_REASONING_MODELS" default:"" help:"models to call as OpenAI reasoning models (max_completion_tokens instead of max_tokens, no temperature), comma-separated names or prefixes ending in *, for deployments and aliases whose names do not say so (an Azure deployment, a LiteLLM alias); the o1, o3, o4, gpt-5 and gpt-6 families always are"`

	UploadURLTTL    time.Duration `env:"LABELQ_UPLOAD_URL_TTL" default:"15m" help:"lifetime of a presigned upload (PUT) URL"`
	ExportURLTTL    time.Duration `env:"LABELQ_EXPORT_URL_TTL" default:"15m" help:"lifetime of an export's presigned download URL"`
	ExportRetention time.Duration `env:"LABELQ_EXPORT_RETENTION" default:"720h" help:"completed export archives older than this are deleted (0 keeps them)"`
	ScheduleSync    time.Duration `env:"LABELQ_SCHEDULE_SYNC" default:"30s" help:"how often the scheduler re-reads export schedules and storages' sync schedules"`

	ExportOrphanGrace time.Duration `env:"LABELQ_EXPORT_ORPHAN_GRACE" default:"13h" help:"export objects with no completed export are deleted once older than this (keep it above the export task timeout, 12h)"`

	ScheduleMinInterval   time.Duration `env:"LABELQ_SCHEDULE_MIN_INTERVAL" default:"1h" help:"shortest time between two ticks of an export schedule or a storage's sync schedule (checked over a year of a cron spec's ticks)"`
	ScheduleMaxPerProject int           `env:"LABELQ_SCHEDULE_MAX_PER_PROJECT" default:"10" help:"most export schedules one project may have"`
	APIRateLimit          string        `env:"LABELQ_API_RATE_LIMIT" default:"600/min" help:"requests one API token may make, shared by every API process through Redis: N/s, N/min or N/h (a burst of N, then N per period), 0 for no limit; over it: 429 with Retry-After"`

	WebhookRetrySchedule   string        `env:"LABELQ_WEBHOOK_RETRY_SCHEDULE" default:"0s,5s,5m,30m,2h,5h,10h,10h" help:"when a webhook delivery's attempts are made, each delay after the previous failure (Svix's schedule); a 429's Retry-After replaces that step's delay; after the last, the delivery has failed"`
	WebhookTimeout         time.Duration `env:"LABELQ_WEBHOOK_TIMEOUT" default:"15s" help:"a webhook receiver must answer 2xx within this (the whole request, connection included)"`
	WebhookAllowHTTP       string        `env:"LABELQ_WEBHOOK_ALLOW_HTTP" default:"" help:"hosts a webhook URL may name with plain http (comma-separated, such as localhost,127.0.0.1 in development); every other URL must be https"`
	WebhookAllowedNetworks string        `env:"LABELQ_WEBHOOK_ALLOWED_NETWORKS" default:"" help:"private, loopback or link-local networks (CIDRs, comma-separated, such as 127.0.0.0/8) webhook deliveries may reach; every other such address is refused when the connection is made"`
	WebhookConcurrency     int           `env:"LABELQ_WEBHOOK_ENDPOINT_CONCURRENCY" default:"4" help:"deliveries in flight to one webhook endpoint at once, across every worker process; a slow endpoint holds at most this many worker slots"`
	WebhookDisableAfter    time.Duration `env:"LABELQ_WEBHOOK_DISABLE_AFTER" default:"120h" help:"an endpoint whose every attempt has failed for this long is disabled (and a webhook.disabled event recorded)"`
	WebhookRetention       time.Duration `env:"LABELQ_WEBHOOK_RETENTION" default:"720h" help:"webhook events, deliveries and attempts older than this are deleted"`
	WebhookSecretOverlap   time.Duration `env:"LABELQ_WEBHOOK_SECRET_OVERLAP" default:"24h" help:"after a secret rotation the old secret signs every delivery too, for this long"`

	ArchiveMaxDepth int `env:"LABELQ_ARCHIVE_MAX_DEPTH" default:"3" help:"levels of archives inside archives that validation opens, the uploaded file counting as 1 and a .tar.gz as one level; a file nested deeper is rejected (1: no archive inside an archive)"`

	LogLevel  string `env:"LABELQ_LOG_LEVEL" default:"info" help:"debug, info, warn or error"`
	LogFormat string `env:"LABELQ_LOG_FORMAT" default:"json" help:"json or text"`

	// A test knob: Linux time namespaces do not shift CLOCK_REALTIME, so the chaos
	// runner's -netns variant gives one worker a clock this far off through it.
	ClockSkew time.Duration `env:"LABELQ_CLOCK_SKEW" default:"0s" help:"test knob, leave at 0s: shifts the clock this process reads for its own timestamps and schedule ticks (not asynq's, not PostgreSQL's), to test a host whose clock is off (labelq-chaos -netns)"`
}

// Var describes one environment variable.
type Var struct {
	Name    string
	Default string
	Help    string
	Secret  bool
	field   int
}

// Vars lists every variable in declaration order.
func Vars() []Var {
	t := reflect.TypeOf(Config{})
	vars := make([]Var, 0, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		vars = append(vars, Var{
			Name: f.Tag.Get("env"), Default: f.Tag.Get("default"), Help: f.Tag.Get("help"),
			Secret: f.Tag.Get("secret") == "true", field: i,
		})
	}
	return vars
}

// Load reads the configuration through getenv (os.Getenv in production, a map in
// tests) and validates it. The error lists every problem at once, each naming its
// variable, so a person fixes them in one go.
func Load(getenv func(string) string) (*Config, error) {
	var c Config
	v := reflect.ValueOf(&c).Elem()
	var errs []error
	for _, ev := range Vars() {
		raw, set := getenv(ev.Name), true
		if raw == "" {
			raw, set = ev.Default, false
		}
		if err := setField(v.Field(ev.field), raw); err != nil {
			shown := raw
			if ev.Secret {
				shown = "(hidden)"
			}
			where := "default"
			if set {
				where = "value"
			}
			errs = append(errs, fmt.Errorf("%s: %s %q is not valid: %w", ev.Name, where, shown, err))
		}
	}
	if len(errs) == 0 {
		errs = append(errs, c.validate()...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &c, nil
}

func setField(f reflect.Value, raw string) error {
	if _, ok := f.Interface().(time.Duration); ok {
		d, err := time.ParseDuration(raw)
		if err != nil {
			return errors.New("want a duration such as 30s, 5m or 1h")
		}
		f.SetInt(int64(d))
		return nil
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(raw)
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return errors.New("want true or false")
		}
		f.SetBool(b)
	case reflect.Int, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, f.Type().Bits())
		if err != nil {
			return errors.New("want a whole number")
		}
		f.SetInt(n)
	default:
		return fmt.Errorf("unsupported kind %s", f.Kind())
	}
	return nil
}

func (c *Config) validate() []error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{name}, args...)...))
	}
	if u, err := url.Parse(c.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		bad("LABELQ_DATABASE_URL", "want postgres://user@host:port/dbname")
	}
	if c.APIDatabaseURL != "" {
		if u, err := url.Parse(c.APIDatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			bad("LABELQ_API_DATABASE_URL", "want postgres://labelq_api_login@host:port/dbname, or leave it empty")
		}
	}
	if c.DatabaseDirectURL != "" {
		if u, err := url.Parse(c.DatabaseDirectURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			bad("LABELQ_DATABASE_DIRECT_URL", "want postgres://user@host:port/dbname, or leave it empty")
		}
	}
	if _, err := c.QueryExecMode(); err != nil {
		bad("LABELQ_DATABASE_EXEC_MODE", "%v", err)
	}
	if c.DatabaseMaxConns < 2 {
		bad("LABELQ_DATABASE_MAX_CONNS", "must be at least 2")
	}
	if _, err := c.RedisConnOpt(); err != nil {
		bad("LABELQ_REDIS_URL", "%v", err)
	}
	if _, _, err := net.SplitHostPort(c.S3Endpoint); err != nil {
		bad("LABELQ_S3_ENDPOINT", "want host:port, such as 127.0.0.1:9000")
	}
	if !validBucket(c.S3Bucket) {
		bad("LABELQ_S3_BUCKET", "%q is not a valid bucket name (3-63 lowercase letters, digits, dots, hyphens)", c.S3Bucket)
	}
	// Both name their variable; neither prints key material.
	if _, err := storage.ParseKeyring(c.SecretKey); err != nil {
		errs = append(errs, err)
	}
	if _, err := storage.ParseAllowlist(c.StorageAllowedEndpoints, c.S3Endpoint); err != nil {
		errs = append(errs, err)
	}
	if c.S3AccessKey == "" || c.S3SecretKey == "" {
		bad("LABELQ_S3_ACCESS_KEY", "the S3 access key and LABELQ_S3_SECRET_KEY must both be set")
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		bad("LABELQ_HTTP_ADDR", "want [host]:port, such as 127.0.0.1:8080")
	}
	if _, _, err := net.SplitHostPort(c.MetricsAddr); c.MetricsAddr != "" && err != nil {
		bad("LABELQ_METRICS_ADDR", "want [host]:port, such as 127.0.0.1:9464, or empty")
	}
	errs = append(errs, c.exposureProblems()...)
	errs = append(errs, c.metricsExposureProblems()...)
	if c.MaxBodyBytes < 1024 {
		bad("LABELQ_MAX_BODY_BYTES", "must be at least 1024")
	}
	if c.WorkerPollInterval < 10*time.Millisecond || c.WorkerPollInterval > time.Minute {
		bad("LABELQ_WORKER_POLL_INTERVAL", "must be between 10ms and 1m")
	}
	if c.WorkerIdleWait != 0 && (c.WorkerIdleWait < 10*time.Millisecond || c.WorkerIdleWait > 10*time.Second) {
		bad("LABELQ_WORKER_IDLE_WAIT", "must be 0 (no wake-up) or between 10ms and 10s (far inside asynq's 30s task lease)")
	}
	if c.HeartbeatInterval < 10*time.Millisecond || c.HeartbeatInterval > 10*time.Minute {
		bad("LABELQ_HEARTBEAT_INTERVAL", "must be between 10ms and 10m")
	}
	if c.ClockSkew < -24*time.Hour || c.ClockSkew > 24*time.Hour {
		bad("LABELQ_CLOCK_SKEW", "must be between -24h and 24h")
	}
	if c.WorkerConcurrency < 1 || c.WorkerConcurrency > 1000 {
		bad("LABELQ_WORKER_CONCURRENCY", "must be between 1 and 1000")
	}
	for name, d := range map[string]time.Duration{
		"LABELQ_SHUTDOWN_TIMEOUT": c.ShutdownTimeout, "LABELQ_RELAY_POLL_INTERVAL": c.RelayPollInterval,
		"LABELQ_RECONCILE_INTERVAL": c.ReconcileInterval, "LABELQ_RECONCILE_AFTER": c.ReconcileAfter,
		"LABELQ_LLM_TIMEOUT": c.LLMTimeout, "LABELQ_EXPORT_URL_TTL": c.ExportURLTTL, "LABELQ_SCHEDULE_SYNC": c.ScheduleSync,
		"LABELQ_UPLOAD_URL_TTL": c.UploadURLTTL, "LABELQ_OUTBOX_RETENTION": c.OutboxRetention,
	} {
		if d <= 0 {
			bad(name, "must be positive")
		}
	}
	if _, err := delivery.ParseSchedule(c.WebhookRetrySchedule); err != nil {
		bad("LABELQ_WEBHOOK_RETRY_SCHEDULE", "%v", err)
	}
	if _, err := delivery.ParsePolicy(c.WebhookAllowHTTP, c.WebhookAllowedNetworks); err != nil {
		errs = append(errs, err)
	}
	if c.WebhookTimeout <= 0 || c.WebhookTimeout > 5*time.Minute {
		bad("LABELQ_WEBHOOK_TIMEOUT", "must be between 1ms and 5m")
	}
	if c.WebhookConcurrency < 1 || c.WebhookConcurrency > 256 {
		bad("LABELQ_WEBHOOK_ENDPOINT_CONCURRENCY", "must be between 1 and 256")
	}
	for name, d := range map[string]time.Duration{
		"LABELQ_WEBHOOK_DISABLE_AFTER": c.WebhookDisableAfter, "LABELQ_WEBHOOK_RETENTION": c.WebhookRetention,
		"LABELQ_WEBHOOK_SECRET_OVERLAP": c.WebhookSecretOverlap,
	} {
		if d <= 0 {
			bad(name, "must be positive")
		}
	}
	if c.ExportRetention < 0 {
		bad("LABELQ_EXPORT_RETENTION", "must be 0 (keep) or positive")
	}
	for name, d := range map[string]time.Duration{
		"LABELQ_EVENT_LOG_RETENTION": c.EventLogRetention, "LABELQ_IDEMPOTENCY_RETENTION": c.IdempotencyRetention,
		"LABELQ_LLM_RUN_RETENTION": c.LLMRunRetention, "LABELQ_SYNC_RUN_RETENTION": c.SyncRunRetention,
	} {
		if d < 0 {
			bad(name, "must be 0 (keep) or positive")
		}
	}
	if c.ExportOrphanGrace <= 0 {
		bad("LABELQ_EXPORT_ORPHAN_GRACE", "must be positive, and longer than an export may run (12h)")
	}
	if c.ExportURLTTL > 7*24*time.Hour {
		bad("LABELQ_EXPORT_URL_TTL", "S3 presigned URLs last at most 7 days")
	}
	if c.UploadURLTTL > 7*24*time.Hour {
		bad("LABELQ_UPLOAD_URL_TTL", "S3 presigned URLs last at most 7 days")
	}
	if c.ArchiveMaxDepth < 1 || c.ArchiveMaxDepth > 16 {
		bad("LABELQ_ARCHIVE_MAX_DEPTH", "must be between 1 and 16")
	}
	if c.RelayBatchSize < 1 || c.RelayBatchSize > 10000 {
		bad("LABELQ_RELAY_BATCH_SIZE", "must be between 1 and 10000")
	}
	if _, err := admission.Parse(c.AdmitPerOrg); err != nil {
		bad("LABELQ_ADMIT_PER_ORG", "%s", err)
	}
	if u, err := url.Parse(c.LLMBaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("LABELQ_LLM_BASE_URL", "want an http(s) URL such as https://api.openai.com/v1")
	}
	if _, err := llm.ParsePrices(c.LLMPrices); err != nil {
		bad("LABELQ_LLM_PRICES", "%s", err)
	}
	if c.LLMMaxTokensCap < 1 || c.LLMMaxTokensCap > 1000000 {
		bad("LABELQ_LLM_MAX_TOKENS_CAP", "must be between 1 and 1000000")
	}
	if c.LLMSystemPromptMax < 1 {
		bad("LABELQ_LLM_SYSTEM_PROMPT_MAX", "must be at least 1")
	}
	if _, err := llm.ParseReasoningModels(c.LLMReasoningModels); err != nil {
		bad("LABELQ_LLM_REASONING_MODELS", "%s", strings.TrimPrefix(err.Error(), "llm: "))
	}
	if c.ScheduleMinInterval < time.Second {
		bad("LABELQ_SCHEDULE_MIN_INTERVAL", "must be at least 1s (the finest a schedule ticks)")
	}
	if c.ScheduleMaxPerProject < 1 {
		bad("LABELQ_SCHEDULE_MAX_PER_PROJECT", "must be at least 1")
	}
	if _, _, err := ParseRate(c.APIRateLimit); err != nil {
		bad("LABELQ_API_RATE_LIMIT", "%s", err)
	}
	if c.LLMRequestsPerMinute < 1 || c.LLMTokensPerMinute < 1 || c.LLMMaxConcurrent < 1 {
		bad("LABELQ_LLM_RPM", "LLM limits (LABELQ_LLM_RPM, LABELQ_LLM_TPM, LABELQ_LLM_MAX_CONCURRENT) must be at least 1")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("LABELQ_LOG_LEVEL", "want debug, info, warn or error")
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		bad("LABELQ_LOG_FORMAT", "want json or text")
	}
	return errs
}

func validBucket(s string) bool {
	if len(s) < 3 || len(s) > 63 {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '.' && r != '-' {
			return false
		}
	}
	return true
}

// APIRoleUser is the login role migrations/00008 creates for the API.
const APIRoleUser = "labelq_api_login"

// APIDatabase is the API role's database URL: LABELQ_API_DATABASE_URL, or
// LABELQ_DATABASE_URL logging in as APIRoleUser without a password (what a
// developer machine's trust authentication accepts).
func (c *Config) APIDatabase() string {
	if c.APIDatabaseURL != "" {
		return c.APIDatabaseURL
	}
	u, err := url.Parse(c.DatabaseURL)
	if err != nil {
		return c.DatabaseURL // validate refused it already
	}
	u.User = url.User(APIRoleUser)
	return u.String()
}

// DirectDatabase is the URL of the PostgreSQL server itself: LABELQ_DATABASE_DIRECT_URL,
// or LABELQ_DATABASE_URL when that is unset (no pooler in between).
func (c *Config) DirectDatabase() string {
	if c.DatabaseDirectURL != "" {
		return c.DatabaseDirectURL
	}
	return c.DatabaseURL
}

// execModes are LABELQ_DATABASE_EXEC_MODE's values: pgx's names for its modes (as
// in its default_query_exec_mode connection parameter).
var execModes = map[string]pgx.QueryExecMode{
	"cache_statement": pgx.QueryExecModeCacheStatement,
	"cache_describe":  pgx.QueryExecModeCacheDescribe,
	"describe_exec":   pgx.QueryExecModeDescribeExec,
	"exec":            pgx.QueryExecModeExec,
	"simple_protocol": pgx.QueryExecModeSimpleProtocol,
}

// QueryExecMode is LABELQ_DATABASE_EXEC_MODE as pgx's mode.
func (c *Config) QueryExecMode() (pgx.QueryExecMode, error) {
	m, ok := execModes[c.DatabaseExecMode]
	if !ok {
		return 0, errors.New("want cache_statement, cache_describe, describe_exec, exec or simple_protocol")
	}
	return m, nil
}

// RedisConnOpt turns the Redis settings into asynq connection options: a single
// server, Sentinel failover (redis-sentinel://) or Cluster (LABELQ_REDIS_CLUSTER_ADDRS).
func (c *Config) RedisConnOpt() (asynq.RedisConnOpt, error) {
	if c.RedisClusterAddrs != "" {
		var addrs []string
		for _, a := range strings.Split(c.RedisClusterAddrs, ",") {
			a = strings.TrimSpace(a)
			if _, _, err := net.SplitHostPort(a); err != nil {
				return nil, fmt.Errorf("cluster address %q: want host:port", a)
			}
			addrs = append(addrs, a)
		}
		return RedisClusterOpt{asynq.RedisClusterClientOpt{Addrs: addrs, Password: c.RedisPassword}}, nil
	}
	opt, err := asynq.ParseRedisURI(c.RedisURL)
	if err != nil {
		// asynq's message may quote the URL, password and all.
		return nil, errors.New("want redis://[:password@]host:port/db, rediss://… or redis-sentinel://host:port?master=name")
	}
	if c.RedisPassword != "" {
		switch o := opt.(type) {
		case asynq.RedisClientOpt:
			o.Password = c.RedisPassword
			opt = o
		case asynq.RedisFailoverClientOpt:
			o.Password = c.RedisPassword
			opt = o
		}
	}
	return opt, nil
}

// LogValue keeps secrets out of logs: slog prints the config with them hidden.
func (c *Config) LogValue() slog.Value {
	v := reflect.ValueOf(c).Elem()
	attrs := make([]slog.Attr, 0, v.NumField())
	for _, ev := range Vars() {
		if ev.Secret {
			attrs = append(attrs, slog.String(ev.Name, "(hidden)"))
			continue
		}
		attrs = append(attrs, slog.String(ev.Name, fmt.Sprint(v.Field(ev.field).Interface())))
	}
	return slog.GroupValue(attrs...)
}

// String hides secrets too, for fmt and %v.
func (c *Config) String() string { return c.LogValue().String() }

// WriteHelp prints the variable table for --help.
func WriteHelp(w io.Writer) {
	// Help output has nowhere to report a failed write (stdout closed), so
	// write errors are dropped.
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "VARIABLE\tDEFAULT\tMEANING")
	for _, v := range Vars() {
		def := v.Default
		if def == "" {
			def = "(empty)"
		}
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\n", v.Name, def, v.Help)
	}
	_ = tw.Flush()
}
