package testenv

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// PeakRSS is this process's high-water resident set size (VmHWM) in bytes, since
// it started or since the last ResetPeakRSS.
func PeakRSS(t testing.TB) int64 {
	t.Helper()
	v, err := procStatus("VmHWM:")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return v
}

// RSS is this process's resident set size now (VmRSS) in bytes.
func RSS(t testing.TB) int64 {
	t.Helper()
	v, err := procStatus("VmRSS:")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return v
}

// ResetPeakRSS makes VmHWM start again from the current RSS (Linux ≥ 4.0), so
// the next PeakRSS is the peak of what runs in between.
func ResetPeakRSS(t testing.TB) {
	t.Helper()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Fatalf("testenv: reset the peak RSS: %v", err)
	}
}

func procStatus(field string) (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/self/status %s %w", field, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no %s in /proc/self/status", field)
}
