package delivery_test

// The README's "Receiving and verifying" prints two receivers a platform copies.
// These tests run them exactly as printed (the fenced block after each
// `<!-- receiver:… -->` marker) against deliveries signed by labelq's own code,
// so a README whose receiver accepts a forgery, refuses a genuine delivery or
// no longer runs fails here.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/labelq/labelq/internal/webhook"
	"github.com/labelq/labelq/internal/webhook/delivery"
)

const readmePath = "../../../README.md"

// libraryModule is the Standard Webhooks module the Go receiver imports; the
// version must be the one this repository's go.mod requires (so it is in the
// module cache and the build never touches the network).
const libraryModule = "github.com/standard-webhooks/standard-webhooks/libraries"

func TestReceiverPython(t *testing.T) {
	python, err := exec.LookPath("python3")
	require.NoError(t, err, "python3 runs the README's Python receiver")
	dir := t.TempDir()
	script := filepath.Join(dir, "receiver.py")
	require.NoError(t, os.WriteFile(script, []byte(readmeBlock(t, "python")), 0o600))

	secret := delivery.NewSecret()
	r := startReceiver(t, exec.Command(python, script), secret)
	checkReceiver(t, r, secret)
}

func TestReceiverGo(t *testing.T) {
	goBin, err := exec.LookPath("go")
	require.NoError(t, err, "go builds the README's Go receiver")
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte(readmeBlock(t, "go")), 0o600))
	version, sums := libraryRequirement(t)
	gomod := fmt.Sprintf("module receiver\n\ngo 1.22\n\nrequire %s %s\n", libraryModule, version)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.sum"), []byte(sums), 0o600))

	bin := filepath.Join(dir, "receiver")
	build := exec.Command(goBin, "build", "-o", bin, ".")
	build.Dir = dir
	// From the module cache only: never the network, never this repository's workspace.
	build.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=-mod=mod", "GOWORK=off", "GOTOOLCHAIN=local")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build of the README's Go receiver:\n%s", out)

	secret := delivery.NewSecret()
	r := startReceiver(t, exec.Command(bin), secret)
	checkReceiver(t, r, secret)
}

// The README's event table is the reference of every event type and data field.
func TestReceiverReadmeDocumentsEveryEvent(t *testing.T) {
	raw, err := os.ReadFile(readmePath)
	require.NoError(t, err)
	_, readme, ok := strings.Cut(string(raw), "\n## Webhooks\n")
	require.True(t, ok, "README.md has no ## Webhooks section")
	readme, _, _ = strings.Cut(readme, "\n## ")
	for _, f := range jsonFields(reflect.TypeFor[webhook.Envelope]()) {
		require.True(t, strings.Contains(readme, "`"+f+"`"), "README.md lacks the envelope field %s", f)
	}
	for _, typ := range webhook.Types() {
		require.True(t, strings.Contains(readme, "| `"+typ.Type+"` |"), "README.md's event table lacks %s", typ.Type)
		for _, f := range jsonFields(typ.Data) {
			require.True(t, strings.Contains(readme, "`"+f+"`"), "README.md lacks %s's data field %s", typ.Type, f)
		}
	}
}

func jsonFields(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

// readmeBlock is the fenced ```lang block right after the README's
// <!-- receiver:lang --> marker.
func readmeBlock(t *testing.T, lang string) string {
	t.Helper()
	raw, err := os.ReadFile(readmePath)
	require.NoError(t, err)
	marker := "<!-- receiver:" + lang + " -->\n"
	require.Equal(t, 1, strings.Count(string(raw), marker), "README.md must hold the marker %q exactly once", marker)
	_, rest, _ := strings.Cut(string(raw), marker)
	fence := "```" + lang + "\n"
	require.True(t, strings.HasPrefix(rest, fence), "the marker %q must be followed at once by a %q fence", marker, fence)
	body, _, found := strings.Cut(rest[len(fence):], "\n```\n")
	require.True(t, found, "the %s block after %q is not closed", lang, marker)
	return body + "\n"
}

// libraryRequirement is the library's version in this repository's go.mod and its
// go.sum lines.
func libraryRequirement(t *testing.T) (version, sums string) {
	t.Helper()
	mod, err := os.ReadFile("../../../go.mod")
	require.NoError(t, err)
	for line := range strings.Lines(string(mod)) {
		fields := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require "))
		if len(fields) >= 2 && fields[0] == libraryModule {
			version = fields[1]
		}
	}
	require.NotEmpty(t, version, "go.mod does not require %s", libraryModule)
	sum, err := os.ReadFile("../../../go.sum")
	require.NoError(t, err)
	var b strings.Builder
	for line := range strings.Lines(string(sum)) {
		if strings.HasPrefix(line, libraryModule+" "+version) {
			b.WriteString(line)
		}
	}
	require.NotEmpty(t, b.String(), "go.sum has no lines for %s %s", libraryModule, version)
	return version, b.String()
}

// syncBuffer collects a process's output while it runs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type receiver struct {
	url    string
	stdout *syncBuffer
	stderr *syncBuffer
}

// startReceiver runs cmd as the README says (PORT and WEBHOOK_SECRET in its
// environment) and waits until it listens.
func startReceiver(t *testing.T, cmd *exec.Cmd, secret string) *receiver {
	t.Helper()
	port := freePort(t)
	r := &receiver{url: "http://127.0.0.1:" + strconv.Itoa(port) + "/hooks/labelq", stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(port), "WEBHOOK_SECRET="+secret)
	cmd.Stdout, cmd.Stderr = r.stdout, r.stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		werr := <-exited // killed: "signal: killed", as expected
		if t.Failed() {
			t.Logf("receiver (%v) stdout:\n%s\nreceiver stderr:\n%s", werr, r.stdout, r.stderr)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("the receiver exited before listening (%v):\n%s", err, r.stderr)
		default:
		}
		conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 200*time.Millisecond)
		if err == nil {
			_ = conn.Close()
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("the receiver did not listen on port %d within 20 s:\n%s", port, r.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return port
}

// post is one POST as labelq's webhook:deliver makes it, or a forgery of one.
type post struct {
	id      string
	body    []byte
	headers http.Header
}

func event(t *testing.T, typ string) (string, []byte) {
	t.Helper()
	id := webhook.NewEventID()
	sum, reason := strings.Repeat("ab", 32), "declared SHA-256 does not match"
	body, err := json.Marshal(webhook.Envelope{
		ID: id, Type: typ, Timestamp: time.Now().UTC().Truncate(time.Millisecond), OrganizationID: 7,
		Data: webhook.FileVersionData{FileVersionID: 901, FileID: 1, ProjectID: 3, VersionNumber: 2, FileType: "dataset",
			Filename: "sign-001.jpg", StorageKey: "orgs/7/projects/3/files/1/a1b2", Status: "valid", ChecksumSHA256: &sum, Reason: &reason},
	})
	require.NoError(t, err)
	return id, body
}

func signed(t *testing.T, secrets []string, at time.Time, typ string) post {
	t.Helper()
	id, body := event(t, typ)
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	require.NoError(t, delivery.SetHeaders(h, secrets, id, at, body))
	return post{id: id, body: body, headers: h}
}

func (r *receiver) send(t *testing.T, p post) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, r.url, bytes.NewReader(p.body))
	require.NoError(t, err)
	req.Header = p.headers.Clone()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// handled counts the lines the receiver printed for event id ("received <id> <type>":
// where the README's receivers hand an event to the platform's work).
func (r *receiver) handled(id string) int {
	n := 0
	for line := range strings.Lines(r.stdout.String()) {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "received" && f[1] == id {
			n++
		}
	}
	return n
}

// checkReceiver sends genuine and forged deliveries in turn and checks the answers,
// then that each genuine event was handled once and no forgery at all.
func checkReceiver(t *testing.T, r *receiver, secret string) {
	other, otherToo := delivery.NewSecret(), delivery.NewSecret()
	now := time.Now()
	accepted := map[string]bool{}
	is2xx := func(code int) bool { return code >= 200 && code < 300 }
	is4xx := func(code int) bool { return code >= 400 && code < 500 }

	genuine := func(name string, p post) {
		t.Run(name, func(t *testing.T) {
			code := r.send(t, p)
			require.True(t, is2xx(code), "want 2xx, got %d", code)
			accepted[p.id] = true
		})
	}
	forged := func(name string, p post) {
		t.Run(name, func(t *testing.T) {
			code := r.send(t, p)
			require.True(t, is4xx(code), "want 4xx, got %d", code)
			accepted[p.id] = false
		})
	}

	first := signed(t, []string{secret}, now, webhook.FileVersionValidated)
	genuine("signed by labelq", first)
	genuine("the same delivery again (a retry)", first)
	genuine("rotation: the old secret's entry first, the new one second", signed(t, []string{other, secret}, now, webhook.ExportCompleted))
	genuine("rotation: the receiver's secret first", signed(t, []string{secret, other}, now, webhook.WebhookTest))
	genuine("signed 2 minutes ago (within the tolerance)", signed(t, []string{secret}, now.Add(-2*time.Minute), webhook.MatchCompleted))

	tampered := signed(t, []string{secret}, now, webhook.FileVersionValidated)
	tampered.body = bytes.Replace(tampered.body, []byte(`"status":"valid"`), []byte(`"status":"corrupt"`), 1)
	require.NotContains(t, string(tampered.body), `"status":"valid"`)
	forged("body altered after signing", tampered)
	forged("signed with another secret", signed(t, []string{other}, now, webhook.FileVersionValidated))
	forged("two entries, neither of this secret", signed(t, []string{other, otherToo}, now, webhook.FileVersionValidated))
	forged("timestamp 10 minutes old", signed(t, []string{secret}, now.Add(-10*time.Minute), webhook.FileVersionValidated))
	forged("timestamp 10 minutes ahead", signed(t, []string{secret}, now.Add(10*time.Minute), webhook.FileVersionValidated))

	replayed := signed(t, []string{secret}, now, webhook.FileVersionValidated)
	replayed.headers.Set(delivery.HeaderTimestamp, strconv.FormatInt(now.Add(-time.Hour).Unix(), 10))
	forged("timestamp header changed after signing", replayed)
	renamed := signed(t, []string{secret}, now, webhook.FileVersionValidated)
	renamed.headers.Set(delivery.HeaderID, webhook.NewEventID())
	forged("webhook-id header changed after signing", renamed)
	unsigned := signed(t, []string{secret}, now, webhook.FileVersionValidated)
	unsigned.headers.Del(delivery.HeaderSignature)
	forged("no signature header", unsigned)
	v2 := signed(t, []string{secret}, now, webhook.FileVersionValidated)
	v2.headers.Set(delivery.HeaderSignature, strings.Replace(v2.headers.Get(delivery.HeaderSignature), "v1,", "v2,", 1))
	forged("a signature under another version than v1", v2)

	// The receivers handle requests one after another here, so once the last
	// delivery is printed every earlier line is in.
	last := signed(t, []string{secret}, now, webhook.StorageSyncCompleted)
	genuine("one more, to flush the receiver's output", last)
	require.Eventually(t, func() bool { return r.handled(last.id) == 1 }, 10*time.Second, 20*time.Millisecond,
		"the receiver never printed %q", "received "+last.id)
	for id, ok := range accepted {
		want := 0
		if ok {
			want = 1
		}
		require.Equal(t, want, r.handled(id), "times the receiver handled %s (accepted: %v)", id, ok)
	}
}
