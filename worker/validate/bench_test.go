package validate_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/admin"
	"github.com/labelq/labelq/internal/app"
	"github.com/labelq/labelq/internal/db"
	"github.com/labelq/labelq/internal/queue"
	"github.com/labelq/labelq/internal/testenv"
	"github.com/labelq/labelq/worker/validate"
)

const (
	benchBlock = 64 << 20 // pseudo-random block, repeated to make the 1 GiB object
	benchTotal = 1 << 30
)

// textBlock is size bytes of CSV-looking text (random words, commas, newlines), so
// the object is an ordinary dataset file that the default allow-list accepts.
func textBlock(size int) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	rng := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, size)
	for i := 0; i < size; i += 8 {
		r := rng.Uint64()
		for j := 0; j < 8 && i+j < size; j++ {
			b[i+j] = alphabet[int(byte(r>>(8*j)))%len(alphabet)]
		}
	}
	copy(b, "id,text,label\n")
	for i := 40; i < size; i += 40 + i%23 {
		b[i] = '\n'
	}
	for i := 17; i < size; i += 31 {
		if b[i] != '\n' {
			b[i] = ','
		}
	}
	return b
}

// repeatReader yields block n times without holding more than block in memory.
type repeatReader struct {
	block []byte
	n     int
	off   int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	k := copy(p, r.block[r.off:])
	r.off += k
	if r.off == len(r.block) {
		r.off, r.n = 0, r.n-1
	}
	return k, nil
}

// peakRSS is the process's high-water resident set size (VmHWM) in bytes.
func peakRSS(b *testing.B) int64 {
	b.Helper()
	f, err := os.Open("/proc/self/status")
	require.NoError(b, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			require.NoError(b, err)
			return kb << 10
		}
	}
	b.Fatal("no VmHWM in /proc/self/status")
	return 0
}

// resetPeakRSS makes VmHWM start again from the current RSS (Linux ≥ 4.0).
func resetPeakRSS(b *testing.B) {
	b.Helper()
	require.NoError(b, os.WriteFile("/proc/self/clear_refs", []byte("5"), 0))
}

// BenchmarkValidate1GiB validates a 1 GiB object end to end (Stat, one streaming
// read out of MinIO with SHA-256, size and type, the checks, the outcome
// transaction) and puts its throughput next to crypto/sha256 over the same bytes
// in memory, measured in the same run. Peak RSS is the whole test process's high
// water mark during the validation; MinIO is a process of its own and not in it.
func BenchmarkValidate1GiB(b *testing.B) {
	hs := newHarness(b, validate.Options{})
	pg := hs.env.PG
	org := pg.Org(b)
	f := pg.File(b, pg.Project(b, org.ID), "big.csv")
	key := fmt.Sprintf("orgs/%d/big.csv", org.ID)

	block := textBlock(benchBlock)
	start := time.Now()
	h := sha256.New()
	for range benchTotal / benchBlock {
		h.Write(block)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	shaSecs := time.Since(start).Seconds()

	_, err := hs.env.S3.Store.Client.PutObject(context.Background(), hs.env.S3.Store.Bucket, key,
		&repeatReader{block: block, n: benchTotal / benchBlock}, benchTotal, minio.PutObjectOptions{PartSize: 64 << 20})
	require.NoError(b, err)
	decl := testenv.Declared{SHA256: &sum, Size: ptr(int64(benchTotal)), MIME: ptr("text/csv")}

	// The baseline's 64 MiB block and the upload's part buffers are not the
	// validator's: give them back before the high-water mark starts again.
	block = nil
	runtime.GC()
	debug.FreeOSMemory()
	versions := make([]db.FileVersion, b.N)
	for i := range versions {
		versions[i] = pg.RegisterVersion(b, f, key, decl)
	}
	rssBefore := peakRSS(b)
	resetPeakRSS(b)

	b.ResetTimer()
	for i := range b.N {
		require.NoError(b, hs.process(b, versions[i].ID))
	}
	b.StopTimer()
	elapsed := b.Elapsed().Seconds()
	peak := peakRSS(b)
	for _, v := range versions {
		require.Equal(b, db.ValidationStatusValid, hs.version(b, v.ID).ValidationStatus)
	}

	// A second baseline: reading the same object from MinIO with no work at all. On a
	// machine where MinIO shares the cores, this bounds what any validator can reach.
	getStart := time.Now()
	obj, err := hs.env.S3.Store.Client.GetObject(context.Background(), hs.env.S3.Store.Bucket, key, minio.GetObjectOptions{})
	require.NoError(b, err)
	n, err := io.Copy(io.Discard, obj)
	require.NoError(b, err)
	obj.Close()
	require.EqualValues(b, benchTotal, n)
	getMBps := float64(benchTotal) / time.Since(getStart).Seconds() / 1e6

	validateMBps := float64(benchTotal) * float64(b.N) / elapsed / 1e6
	shaMBps := float64(benchTotal) / shaSecs / 1e6
	b.ReportMetric(validateMBps, "validate_MBps")
	b.ReportMetric(shaMBps, "sha256_MBps")
	b.ReportMetric(validateMBps/shaMBps, "ratio")
	b.ReportMetric(getMBps, "raw_minio_get_MBps")
	b.ReportMetric(validateMBps/getMBps, "ratio_vs_raw_get")
	b.ReportMetric(float64(peak)/(1<<20), "peak_RSS_MiB")
	b.Logf("peak RSS before the reset (upload and baseline): %d MiB", rssBefore>>20)
}

// BenchmarkValidate10kViaAPI registers 10,000 small versions through the HTTP API
// (POST /v1/files/{id}/versions from a few concurrent clients) and times until all
// are valid: API transaction, outbox relay, asynq, the handler. The baseline in the
// same run is asynq's own throughput for 10,000 no-op tasks with the same worker
// concurrency and the same number of concurrent producers.
func BenchmarkValidate10kViaAPI(b *testing.B) {
	const (
		n       = 10_000
		clients = 8
	)
	env := testenv.New(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	cfg := env.Config(b, map[string]string{"LABELQ_HTTP_ADDR": testenv.FreeAddr(b)})
	a, err := app.New(ctx, cfg, log)
	require.NoError(b, err)
	defer a.Close()

	noopPerSec := benchNoop(b, env, n, clients, cfg.WorkerConcurrency)

	// The API and the relay as app runs them; the worker role does not mount
	// file:validate yet, so this benchmark runs its own asynq server with the
	// handler, built from the app's dependencies exactly as wiring.go would.
	runDone := make(chan error, 1)
	go func() { runDone <- a.Run(ctx, app.RoleAPI, app.RoleRelay) }()
	h := validate.NewHandler(validate.Deps{Pool: a.Pool, Store: a.Store, Log: a.Log, Metrics: a.Metrics, Now: a.Now})
	startPipeline(b, env, h, a.Metrics, cfg.WorkerConcurrency, false) // app's relay moves the outbox

	tok, err := admin.CreateToken(ctx, a.Pool, "bench-org", "bench")
	require.NoError(b, err)
	pr := env.PG.Project(b, tok.OrgID)
	type item struct {
		file    db.File
		key     string
		content []byte
	}
	items := make([]item, n)
	parallel(b, 16, n, func(i int) error {
		content := fmt.Appendf(nil, "id,text\n%d,sample number %d\n", i, i)
		f, err := a.Pool.Acquire(ctx)
		if err != nil {
			return err
		}
		defer f.Release()
		file, err := db.New(f).FileCreate(ctx, db.FileCreateParams{
			OrgID: tok.OrgID, ProjectID: pr.ID, Name: fmt.Sprintf("sample-%05d.csv", i), FileType: db.FileTypeDataset,
		})
		if err != nil {
			return err
		}
		key := fmt.Sprintf("orgs/%d/projects/%d/files/%d/v1.csv", tok.OrgID, pr.ID, file.ID)
		_, err = a.Store.Client.PutObject(ctx, a.Store.Bucket, key, bytes.NewReader(content), int64(len(content)), minio.PutObjectOptions{})
		items[i] = item{file: file, key: key, content: content}
		return err
	})

	base := "http://" + cfg.HTTPAddr
	require.Eventually(b, func() bool {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond)
	httpc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}, Timeout: 30 * time.Second}

	b.ResetTimer()
	start := time.Now()
	parallel(b, clients, n, func(i int) error {
		it := items[i]
		body, _ := json.Marshal(map[string]any{
			"storage_path": it.key, "sha256": testenv.SHA256Hex(it.content), "size": len(it.content), "mime_type": "text/csv",
		})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("%s/v1/files/%d/versions", base, it.file.ID), bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok.Secret)
		req.Header.Set("Content-Type", "application/json")
		resp, err := httpc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			msg, _ := io.ReadAll(resp.Body)
			return fmt.Errorf("POST versions: %d %s", resp.StatusCode, msg)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	})
	registered := time.Since(start)
	deadline := time.Now().Add(10 * time.Minute)
	for {
		var valid, failed int
		err := a.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE validation_status = 'valid'),
		       count(*) FILTER (WHERE validation_status NOT IN ('valid', 'pending'))
		FROM file_versions WHERE project_id = $1`, pr.ID).Scan(&valid, &failed)
		require.NoError(b, err)
		require.Zero(b, failed, "every version is valid")
		if valid == n {
			break
		}
		require.True(b, time.Now().Before(deadline), "only %d of %d valid after 10 minutes", valid, n)
		time.Sleep(20 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()

	perSec := n / elapsed.Seconds()
	b.ReportMetric(perSec, "versions_per_s")
	b.ReportMetric(noopPerSec, "noop_per_s")
	b.ReportMetric(perSec/noopPerSec, "ratio")
	b.Logf("all %d registered after %s, all valid after %s", n, registered.Round(time.Millisecond), elapsed.Round(time.Millisecond))

	cancel()
	require.NoError(b, <-runDone)
}

// benchNoop is asynq's raw throughput: n no-op tasks enqueued by `clients`
// producers and processed by a server of the given concurrency, per second.
func benchNoop(b *testing.B, env *testenv.Env, n, clients, concurrency int) float64 {
	b.Helper()
	var done atomic.Int64
	all := make(chan struct{})
	cfg := queue.ServerConfig(concurrency, 5*time.Second, slog.New(slog.DiscardHandler), nil)
	cfg.Queues = map[string]int{queue.QueueValidate: 1}
	srv := asynq.NewServer(env.Redis.Opt(), cfg)
	mux := asynq.NewServeMux()
	mux.HandleFunc("bench:noop", func(context.Context, *asynq.Task) error {
		if done.Add(1) == int64(n) {
			close(all)
		}
		return nil
	})
	require.NoError(b, srv.Start(mux))
	defer srv.Shutdown()
	client := asynq.NewClient(env.Redis.Opt())
	defer client.Close()

	start := time.Now()
	parallel(b, clients, n, func(i int) error {
		_, err := client.Enqueue(asynq.NewTask("bench:noop", []byte(`{}`)), asynq.Queue(queue.QueueValidate))
		return err
	})
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		b.Fatalf("only %d of %d no-op tasks done after 5 minutes", done.Load(), n)
	}
	return float64(n) / time.Since(start).Seconds()
}

// parallel runs fn for 0..n-1 on `workers` goroutines and fails on the first error.
func parallel(b *testing.B, workers, n int, fn func(i int) error) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(b, err)
	}
}
