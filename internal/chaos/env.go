// Package chaos is labelq's fault-injection suite. It runs the real processes (api,
// relay, scheduler and several workers, as separate OS processes of the labelq
// binary) against private PostgreSQL, Redis and MinIO servers, the OpenAI-compatible
// test server and a webhook receiver of its own, drives a realistic workload through
// the API, injects faults while it runs (kill -9 of workers, Redis FLUSHALL and
// restart, a Postgres restart, MinIO down for a while, an LLM 429 storm and slow
// replies, a webhook endpoint that fails a third of its deliveries and hangs on some),
// and finally checks the invariants a job system owes its users and prints them as
// figures.
package chaos

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/llm/llmtest"
	"github.com/labelq/labelq/internal/storage"
	"github.com/labelq/labelq/internal/testenv"
)

// Secrets are recognisable values the run uses for every credential, so the secret
// scan can look for them in every log line, error, payload and asynqmon answer.
type Secrets struct {
	S3Secret         string
	LLMKey           string
	OperatorPassword string
	APIToken         string // filled in once the token is created
	// StorageKey is LABELQ_SECRET_KEY's key (base64), which seals storage credentials.
	StorageKey string
}

// Env is the running system under test.
type Env struct {
	Dir      string
	Bin      string
	PG       *testenv.PrivatePostgres
	Redis    *testenv.PrivateRedis
	MinIO    *testenv.MinIOServer
	LLM      *llmtest.Server
	LLMAddr  string
	HTTPAddr string
	Secrets  Secrets
	Bucket   string
	Store    *storage.Store

	// Extra overrides the defaults below for every process.
	Extra []string
	// Net places each worker in a network namespace of its own (-netns); nil: none.
	Net *hostNet
	// redisTopo is the Redis Cluster or Sentinel set in use (-redis); nil: the
	// single server Redis.
	redisTopo *redisTopology
	// bouncer is the PgBouncer every labelq process reaches PostgreSQL through
	// (-pgbouncer); nil: none.
	bouncer *testenv.PgBouncer
	// s3Endpoint stays the same when MinIO is restarted (same port, same data).
	s3Endpoint string

	mu    sync.Mutex
	procs map[string]*Proc
}

// DatabaseURL is the labelq database on the private server.
func (e *Env) DatabaseURL() string { return e.PG.URL("labelq") }

// RedisURL is the private Redis.
func (e *Env) RedisURL() string { return "redis://" + e.Redis.Addr + "/0" }

// Vars is the environment every labelq process gets.
func (e *Env) Vars(extra ...string) []string {
	v := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"LABELQ_DATABASE_URL=" + e.DatabaseURL(),
		"LABELQ_REDIS_URL=" + e.RedisURL(),
		"LABELQ_S3_ENDPOINT=" + e.s3Endpoint,
		"LABELQ_S3_ACCESS_KEY=labelq-chaos",
		"LABELQ_S3_SECRET_KEY=" + e.Secrets.S3Secret,
		"LABELQ_S3_BUCKET=" + e.Bucket,
		"LABELQ_HTTP_ADDR=" + e.HTTPAddr,
		"LABELQ_OPERATOR_PASSWORD=" + e.Secrets.OperatorPassword,
		"LABELQ_SECRET_KEY=chaos:" + e.Secrets.StorageKey,
		"LABELQ_LLM_BASE_URL=http://" + e.LLMAddr + "/v1",
		"LABELQ_LLM_API_KEY=" + e.Secrets.LLMKey,
		"LABELQ_LLM_RPM=600",
		"LABELQ_LLM_MAX_CONCURRENT=4",
		"LABELQ_RECONCILE_INTERVAL=3s",
		"LABELQ_RECONCILE_AFTER=6s",
		"LABELQ_SCHEDULE_SYNC=2s",
		// The run's schedule ticks every 8 s and its project uses the test server's
		// model; its workload (and -load's) is far above a tenant's request budget.
		"LABELQ_SCHEDULE_MIN_INTERVAL=1s",
		"LABELQ_LLM_PRICES=chaos-model=0/0",
		"LABELQ_API_RATE_LIMIT=100000/min",
		"LABELQ_RELAY_POLL_INTERVAL=300ms",
		"LABELQ_SHUTDOWN_TIMEOUT=5s",
		"LABELQ_WORKER_CONCURRENCY=6",
		"LABELQ_DATABASE_MAX_CONNS=8",
		"LABELQ_LOG_LEVEL=info",
	}
	v = append(v, webhookVars()...)
	v = append(v, e.Net.vars()...)
	v = append(v, e.redisTopo.vars()...)
	v = append(v, e.bouncerVars()...)
	v = append(v, e.Extra...)
	return append(v, extra...)
}

// Start brings up the private services, builds the binary and migrates.
func Start(ctx context.Context, dir string, llmLatency time.Duration) (*Env, error) {
	return StartOn(ctx, dir, llmLatency, nil)
}

// StartOn is Start with the services reachable from net's namespaces (nil: none).
func StartOn(ctx context.Context, dir string, llmLatency time.Duration, net *hostNet) (*Env, error) {
	e := &Env{Dir: dir, procs: map[string]*Proc{}, Bucket: "labelq-chaos", Net: net}
	e.Secrets = Secrets{
		S3Secret:         "CHAOS-S3-SECRET-" + rnd(),
		LLMKey:           "sk-CHAOS-LLM-KEY-" + rnd(),
		OperatorPassword: "CHAOS-OPERATOR-" + rnd(),
		// An AES-256 key is 32 bytes: a recognisable start, then random digits.
		StorageKey: base64.StdEncoding.EncodeToString([]byte(("CHAOS-STORAGE-KEY-" + rnd() + "--------------")[:32])),
	}
	var err error
	if e.PG, err = testenv.StartPrivatePostgresOn(ctx, net.pgListen(), net.clients()); err != nil {
		return nil, err
	}
	if e.Redis, err = testenv.StartPrivateRedisOn(ctx, net.redisListen()); err != nil {
		e.Close()
		return nil, err
	}
	minioAt, err := net.minioEndpoint()
	if err != nil {
		e.Close()
		return nil, err
	}
	if e.MinIO, err = startMinIO(ctx, filepath.Join(dir, "minio"), e.Secrets.S3Secret, minioAt); err != nil {
		e.Close()
		return nil, err
	}
	e.s3Endpoint = e.MinIO.Endpoint
	if e.Store, err = storage.New(storage.Config{Endpoint: e.MinIO.Endpoint, AccessKey: e.MinIO.AccessKey,
		SecretKey: e.Secrets.S3Secret, Bucket: e.Bucket, Region: "us-east-1"}); err != nil {
		e.Close()
		return nil, err
	}
	if err := e.Store.EnsureBucket(ctx); err != nil {
		e.Close()
		return nil, err
	}
	port, err := testenv.FreePort()
	if err != nil {
		e.Close()
		return nil, err
	}
	e.LLMAddr = fmt.Sprintf("%s:%d", net.serviceHost(), port)
	e.LLM = llmtest.NewServer(llmtest.Config{APIKey: e.Secrets.LLMKey, Latency: llmLatency, RecordLimit: 100000})
	if err := e.LLM.Start(e.LLMAddr); err != nil {
		e.Close()
		return nil, err
	}
	hp, err := testenv.FreePort()
	if err != nil {
		e.Close()
		return nil, err
	}
	e.HTTPAddr = fmt.Sprintf("127.0.0.1:%d", hp)
	if e.Bin, err = Build(ctx, dir); err != nil {
		e.Close()
		return nil, err
	}
	if err := database.EnsureDatabase(ctx, e.DatabaseURL()); err != nil {
		e.Close()
		return nil, err
	}
	out, err := e.command(ctx, "migrate", "up").CombinedOutput()
	if err != nil {
		e.Close()
		return nil, fmt.Errorf("migrate: %w: %s", err, out)
	}
	return e, nil
}

// startMinIO starts MinIO on a data directory of the run's own; port "" picks one.
func startMinIO(ctx context.Context, dir, secret, endpoint string) (*testenv.MinIOServer, error) {
	return testenv.StartMinIOAt(ctx, dir, "labelq-chaos", secret, endpoint)
}

// Build compiles the labelq binary from this module into dir.
func Build(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "labelq")
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	args := []string{"build", "-o", bin}
	if ov := os.Getenv("LABELQ_BUILD_OVERLAY"); ov != "" {
		args = append(args, "-overlay", ov)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "./cmd/labelq")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build labelq: %w: %s", err, out)
	}
	return bin, nil
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the labelq module")
	}
	return filepath.Dir(mod), nil
}

func (e *Env) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, e.Bin, args...)
	cmd.Env = e.Vars()
	return cmd
}

// Close stops every process and service.
func (e *Env) Close() {
	e.mu.Lock()
	procs := make([]*Proc, 0, len(e.procs))
	for _, p := range e.procs {
		procs = append(procs, p)
	}
	e.mu.Unlock()
	for _, p := range procs {
		p.Kill()
	}
	if e.LLM != nil {
		_ = e.LLM.Close()
	}
	if m := e.minio(); m != nil {
		m.Stop()
	}
	e.redisTopo.close()
	if e.bouncer != nil {
		e.bouncer.Stop()
	}
	if e.Redis != nil {
		e.Redis.Stop()
	}
	if e.PG != nil {
		e.PG.Close()
	}
}

// minio and setMinIO guard the server, which a fault replaces while processes start.
func (e *Env) minio() *testenv.MinIOServer {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.MinIO
}

func (e *Env) setMinIO(m *testenv.MinIOServer) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.MinIO = m
}

// Proc is one labelq process.
type Proc struct {
	Name string
	Role string
	Log  string
	cmd  *exec.Cmd
	done chan struct{}
}

// StartProc starts `labelq <role>` named name, appending its output to its log file.
func (e *Env) StartProc(name, role string) (*Proc, error) {
	logPath := filepath.Join(e.Dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := e.Net.command(name, e.Bin, role)
	cmd.Env = e.Vars(e.Net.workerVars(name, e)...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, err
	}
	p := &Proc{Name: name, Role: role, Log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); _ = f.Close(); close(p.done) }()
	e.mu.Lock()
	e.procs[name] = p
	e.mu.Unlock()
	return p, nil
}

// Kill is kill -9.
func (p *Proc) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Term is a graceful stop (SIGTERM), waiting up to d.
func (p *Proc) Term(d time.Duration) bool {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		p.Kill()
		return false
	}
}

// Logs returns every process log file.
func (e *Env) Logs() []string {
	m, _ := filepath.Glob(filepath.Join(e.Dir, "*.log"))
	return m
}

func rnd() string {
	f, err := os.Open("/dev/urandom")
	if err != nil {
		return fmt.Sprint(time.Now().UnixNano())
	}
	defer func() { _ = f.Close() }()
	b := make([]byte, 6)
	_, _ = io.ReadFull(f, b)
	return fmt.Sprintf("%x", b)
}

// usePgBouncer puts a PgBouncer in transaction pooling mode (Debian's 1.18)
// between every labelq process started from now on and the private PostgreSQL,
// as a large deployment does: LABELQ_DATABASE_URL goes through it, with the exec
// mode a pooler before 1.21 needs, and LABELQ_DATABASE_DIRECT_URL reaches the
// server for what needs a session (the relay's LISTEN). Migrations ran before,
// directly. The runner's own checks read the server directly.
func (e *Env) usePgBouncer(ctx context.Context, poolSize int) error {
	b, err := testenv.StartPgBouncer(ctx, testenv.PgBouncerConfig{Server: fmt.Sprintf("127.0.0.1:%d", e.PG.Port), PoolSize: poolSize})
	if err != nil {
		return err
	}
	e.bouncer = b
	return nil
}

// bouncerVars are the variables of a run through PgBouncer (later values win in
// a process's environment).
func (e *Env) bouncerVars() []string {
	if e.bouncer == nil {
		return nil
	}
	return []string{
		"LABELQ_DATABASE_URL=" + e.bouncer.URL(e.DatabaseURL()),
		"LABELQ_DATABASE_DIRECT_URL=" + e.DatabaseURL(),
		"LABELQ_DATABASE_EXEC_MODE=cache_describe",
	}
}
