package testenv

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/labelq/labelq/internal/storage"
)

// MinIOServer is the one MinIO process of this test binary.
type MinIOServer struct {
	Endpoint  string
	AccessKey string
	SecretKey string
	Dir       string
	cmd       *exec.Cmd
	exited    chan struct{}
	log       *LogBuffer
}

// S3 is one test's bucket on the shared MinIO server.
type S3 struct {
	*MinIOServer
	Store *storage.Store
}

var (
	minioOnce sync.Once
	minioSrv  *MinIOServer
	minioErr  error
)

// MinIOBinary finds the minio binary: $LABELQ_MINIO_BIN, $PATH, then $GOPATH/bin,
// where `make tools` installs it.
func MinIOBinary() (string, error) {
	if b := os.Getenv("LABELQ_MINIO_BIN"); b != "" {
		return b, nil
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		home, _ := os.UserHomeDir()
		gopath = filepath.Join(home, "go")
	}
	p := filepath.Join(strings.Split(gopath, string(os.PathListSeparator))[0], "bin", "minio")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("the minio binary was not found in $PATH or %s: run `make tools` "+
		"(go install github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c) or set LABELQ_MINIO_BIN", p)
}

// FreePort returns a TCP port nobody listens on right now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// StartMinIO starts a MinIO server in a fresh temporary directory and waits until it
// answers. The process dies with the test binary (Pdeathsig), and data directories of
// dead test binaries are removed the next time one starts. env adds KEY=value
// settings to its environment (such as MINIO_NOTIFY_WEBHOOK_* for a webhook target).
func StartMinIO(ctx context.Context, env ...string) (*MinIOServer, error) {
	removeStaleMinIODirs()
	dir, err := os.MkdirTemp("", fmt.Sprintf("labelq-minio-%d-", os.Getpid()))
	if err != nil {
		return nil, err
	}
	return StartMinIOAt(ctx, dir, "labelq-test", "labelq-test-"+randHex(8), "", env...)
}

// StartMinIOAt starts MinIO on dir with the given credentials at endpoint
// (host:port; "" picks a free port). Starting it again on the same dir and endpoint
// after Stop is how a test takes MinIO down for a while. env is as for StartMinIO.
func StartMinIOAt(ctx context.Context, dir, accessKey, secretKey, endpoint string, env ...string) (*MinIOServer, error) {
	bin, err := MinIOBinary()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		ep := endpoint
		if ep == "" {
			port, err := FreePort()
			if err != nil {
				return nil, err
			}
			ep = fmt.Sprintf("127.0.0.1:%d", port)
		}
		console, err := FreePort()
		if err != nil {
			return nil, err
		}
		s := &MinIOServer{
			Endpoint:  ep,
			AccessKey: accessKey,
			SecretKey: secretKey,
			Dir:       dir,
			log:       &LogBuffer{},
		}
		cmd := exec.Command(bin, "server", dir, "--address", s.Endpoint,
			"--console-address", fmt.Sprintf("127.0.0.1:%d", console), "--quiet")
		cmd.Env = append(os.Environ(),
			"MINIO_ROOT_USER="+s.AccessKey, "MINIO_ROOT_PASSWORD="+s.SecretKey,
			"MINIO_BROWSER=off", "MINIO_UPDATE=off")
		cmd.Env = append(cmd.Env, env...)
		cmd.Stdout, cmd.Stderr = s.log, s.log
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start minio: %w", err)
		}
		s.cmd = cmd
		s.exited = make(chan struct{})
		go func() { _ = cmd.Wait(); close(s.exited) }()
		if err := waitReady(ctx, s); err != nil {
			s.Kill()
			lastErr = err
			continue
		}
		return s, nil
	}
	return nil, lastErr
}

func waitReady(ctx context.Context, s *MinIOServer) error {
	deadline := time.Now().Add(60 * time.Second)
	url := "http://" + s.Endpoint + "/minio/health/live"
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("minio exited at start: %s", s.log.String())
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("minio did not become ready in 60s: %s", s.log.String())
}

// Pid is the server's process id (the leader of its process group), 0 before it
// started.
func (s *MinIOServer) Pid() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Kill stops the server and keeps its data, so it can be started again.
func (s *MinIOServer) Kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
		}
	}
}

// Stop kills the server and removes its data.
func (s *MinIOServer) Stop() {
	s.Kill()
	_ = os.RemoveAll(s.Dir)
}

func removeStaleMinIODirs() {
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), "labelq-minio-*"))
	for _, m := range matches {
		parts := strings.Split(filepath.Base(m), "-")
		if len(parts) < 3 {
			continue
		}
		pid, _ := strconv.Atoi(parts[2])
		if pid != os.Getpid() && !processAlive(pid) {
			_ = os.RemoveAll(m)
		}
	}
}

// MinIO returns a bucket of the test's own on this binary's MinIO server (started on
// first use), emptied and removed when the test ends.
func MinIO(t testing.TB) *S3 {
	t.Helper()
	minioOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		minioSrv, minioErr = StartMinIO(ctx)
	})
	if minioErr != nil {
		t.Fatalf("testenv: %v", minioErr)
	}
	bucket := "t-" + randHex(8)
	st, err := storage.New(storage.Config{
		Endpoint: minioSrv.Endpoint, AccessKey: minioSrv.AccessKey, SecretKey: minioSrv.SecretKey,
		Bucket: bucket, Region: "us-east-1",
	})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	ctx := context.Background()
	if err := st.EnsureBucket(ctx); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Client.RemoveBucketWithOptions(context.Background(), bucket,
			minio.RemoveBucketOptions{ForceDelete: true}); err != nil {
			t.Logf("testenv: remove bucket %s: %v", bucket, err)
		}
	})
	return &S3{MinIOServer: minioSrv, Store: st}
}

// Put stores content under key in the test's bucket.
func (s *S3) Put(t testing.TB, key string, content []byte, opts minio.PutObjectOptions) minio.UploadInfo {
	t.Helper()
	info, err := s.Store.Client.PutObject(context.Background(), s.Store.Bucket, key,
		bytes.NewReader(content), int64(len(content)), opts)
	if err != nil {
		t.Fatalf("testenv: put %s: %v", key, err)
	}
	return info
}
