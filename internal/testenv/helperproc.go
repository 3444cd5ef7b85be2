package testenv

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// StartHelperProcess runs the test binary again as a process of its own, running
// only the test named test (which acts as a worker when it finds env set), and
// returns once that process has printed a line containing marker: the point a
// test kills it at. It fails t when the process ends first or within passes, and
// kills the process when t ends. The process's stdout is drained after the
// marker; its stderr is this process's.
func StartHelperProcess(t testing.TB, test string, env []string, marker string, within time.Duration) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("testenv: %s: %v", test, err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start %s: %v", test, err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	seen := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), marker) {
				seen <- true
				break
			}
		}
		for sc.Scan() { // keep the pipe drained
		}
		close(seen)
	}()
	select {
	case ok := <-seen:
		if !ok {
			t.Fatalf("testenv: the %s process ended before it printed %q", test, marker)
		}
	case <-time.After(within):
		t.Fatalf("testenv: the %s process did not print %q within %s", test, marker, within)
	}
	return cmd
}
