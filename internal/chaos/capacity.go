package chaos

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Components are the parts a version's CPU is split between in the capacity
// figures, in report order.
var Components = []string{"api", "relay", "scheduler", "workers", "postgres", "redis", "minio"}

// cpuSample is the CPU seconds (user + system) each component has used so far:
// labelq's processes by role, and each service with every process it forked
// (PostgreSQL's backends, those that exited included: a parent's cutime and
// cstime hold its reaped children's time).
type cpuSample map[string]float64

// procStat is one /proc/<pid>/stat, the fields the sample needs.
type procStat struct {
	ppid                       int
	utime, stime, cutime, cstm float64
}

const clkTck = 100 // USER_HZ on Linux, fixed by the kernel ABI

func readProcStats() map[int]procStat {
	out := map[int]procStat{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		closing := strings.LastIndexByte(s, ')')
		if closing < 0 {
			continue
		}
		f := strings.Fields(s[closing+1:])
		if len(f) < 15 {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(d))
		st := procStat{}
		st.ppid, _ = strconv.Atoi(f[1])
		st.utime, _ = strconv.ParseFloat(f[11], 64)
		st.stime, _ = strconv.ParseFloat(f[12], 64)
		st.cutime, _ = strconv.ParseFloat(f[13], 64)
		st.cstm, _ = strconv.ParseFloat(f[14], 64)
		out[pid] = st
	}
	return out
}

// treeCPU is the CPU seconds of root, its live descendants and its reaped
// children.
func treeCPU(stats map[int]procStat, root int) float64 {
	r, ok := stats[root]
	if !ok {
		return 0
	}
	total := r.utime + r.stime + r.cutime + r.cstm
	for pid, st := range stats {
		if pid == root {
			continue
		}
		for p, hops := st.ppid, 0; p > 1 && hops < 16; hops++ {
			if p == root {
				total += st.utime + st.stime
				break
			}
			p = stats[p].ppid
		}
	}
	return total / clkTck
}

// postmasterPid reads a PostgreSQL data directory's postmaster.pid.
func postmasterPid(dataDir string) int {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid
}

// sampleCPU reads what every component has spent so far. A labelq process
// that exited (stopped, or killed by a fault) counts with what it had spent.
func (r *run) sampleCPU() cpuSample {
	stats := readProcStats()
	out := cpuSample{}
	r.env.mu.Lock()
	for _, p := range r.env.procs {
		role := p.Role
		if role == "worker" {
			role = "workers"
		}
		if ps := p.cmd.ProcessState; ps != nil {
			out[role] += (ps.UserTime() + ps.SystemTime()).Seconds()
		} else if p.cmd.Process != nil {
			out[role] += treeCPU(stats, p.cmd.Process.Pid)
		}
	}
	r.env.mu.Unlock()
	out["postgres"] = treeCPU(stats, postmasterPid(filepath.Join(r.env.PG.Dir, "data")))
	out["redis"] = treeCPU(stats, r.env.Redis.Pid())
	if m := r.env.minio(); m != nil {
		out["minio"] = treeCPU(stats, m.Pid())
	}
	return out
}

// capacityFigures is the CPU-ms per version each component spent between the
// two samples: what the README's capacity section is computed from.
func capacityFigures(before, after cpuSample, versions int) []Figure {
	if versions <= 0 {
		return nil
	}
	var figs []Figure
	var total float64
	for _, c := range Components {
		ms := (after[c] - before[c]) * 1000 / float64(versions)
		total += ms
		figs = append(figs, Figure{Name: "cpu_ms_per_version " + c, Value: fmt.Sprintf("%.2f", ms), OK: true})
	}
	return append(figs, Figure{Name: "cpu_ms_per_version total", Value: fmt.Sprintf("%.2f", total), OK: true})
}
