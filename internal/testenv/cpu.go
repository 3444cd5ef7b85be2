package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// CPUByProcess is CPU seconds (user + system) per process name, summed over every
// process of that name: where a benchmark's time went when the services share the
// machine's cores with it.
type CPUByProcess map[string]float64

// CPUSnapshot reads /proc for the processes a labelq benchmark involves: postgres,
// minio, redis-server and this test binary (under the name "labelq (this process)").
// Take one before and one after; Since gives the difference. Processes that exit in
// between (a Postgres backend of a closed connection) are missed, which errs low.
func CPUSnapshot() CPUByProcess {
	const clkTck = 100 // USER_HZ on Linux, fixed by the kernel ABI
	self := os.Getpid()
	out := CPUByProcess{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < open {
			continue
		}
		name := s[open+1 : closing]
		f := strings.Fields(s[closing+1:])
		if len(f) < 13 {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(d))
		switch {
		case pid == self:
			name = "labelq (this process)"
		case name == "postgres", name == "minio", name == "redis-server":
		default:
			continue
		}
		utime, _ := strconv.ParseFloat(f[11], 64)
		stime, _ := strconv.ParseFloat(f[12], 64)
		out[name] += (utime + stime) / clkTck
	}
	return out
}

// Since is what each process spent between before and c.
func (c CPUByProcess) Since(before CPUByProcess) CPUByProcess {
	d := CPUByProcess{}
	for k, v := range c {
		d[k] = v - before[k]
	}
	return d
}

// String lists the processes, most CPU first, with the total.
func (c CPUByProcess) String() string {
	names := make([]string, 0, len(c))
	var total float64
	for k, v := range c {
		names = append(names, k)
		total += v
	}
	sort.Slice(names, func(i, j int) bool { return c[names[i]] > c[names[j]] })
	parts := make([]string, 0, len(names)+1)
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %.1f s", n, c[n]))
	}
	parts = append(parts, fmt.Sprintf("total %.1f CPU-s", total))
	return strings.Join(parts, ", ")
}
