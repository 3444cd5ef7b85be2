package testenv

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/labelq/labelq/internal/logging"
)

// LogBuffer collects log output (or a child process's) written from any number of
// goroutines while the test reads it. The zero value is ready to use.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Contains reports whether s was written.
func (l *LogBuffer) Contains(s string) bool { return strings.Contains(l.String(), s) }

// LogRecord is one decoded JSON log line: "time", "level" ("DEBUG", "INFO", "WARN",
// "ERROR"), "msg" and the attributes (numbers are float64).
type LogRecord map[string]any

// Records decodes the lines written so far as JSON log records (Logger's format),
// keeping those whose line contains every one of contains. A line that is not JSON
// fails the test.
func (l *LogBuffer) Records(t testing.TB, contains ...string) []LogRecord {
	t.Helper()
	var out []LogRecord
	for _, line := range strings.Split(l.String(), "\n") {
		if line == "" || !containsAll(line, contains) {
			continue
		}
		var r LogRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("testenv: log line is not JSON (%v): %s", err, line)
		}
		out = append(out, r)
	}
	return out
}

// Messages are the records whose "msg" is msg.
func (l *LogBuffer) Messages(t testing.TB, msg string) []LogRecord {
	t.Helper()
	var out []LogRecord
	for _, r := range l.Records(t) {
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// logTail bounds what a failed test prints of its logs.
const logTail = 64 << 10

// Logger is labelq's own logger (logging.New: JSON, secrets redacted) at debug
// level, writing into a LogBuffer of the test's. When the test fails, the end of
// the buffer goes to the test's output. The buffer outlives the test, so a
// goroutine still logging after it ended is harmless (t.Log would panic).
func Logger(t testing.TB) (*slog.Logger, *LogBuffer) {
	t.Helper()
	buf := &LogBuffer{}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		s := buf.String()
		if len(s) > logTail {
			s = "…" + s[len(s)-logTail:]
		}
		if s != "" {
			t.Logf("logs of the failed test:\n%s", s)
		}
	})
	return logging.New(buf, "debug", "json"), buf
}

// Quiet is a logger that writes nothing, for tests that never read their logs.
func Quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }
