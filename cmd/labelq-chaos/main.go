// Command labelq-chaos runs labelq's fault-injection scenario (`make chaos`): the real
// processes against private Postgres, Redis and MinIO, a workload through the API,
// faults while it runs, and the invariants printed as figures. It exits 1 when an
// invariant broke.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/labelq/labelq/internal/chaos"
)

func main() { os.Exit(run()) }

// run is the whole program; it returns the exit code, so its defers run first.
func run() int {
	short := flag.Bool("short", false, "the short variant that runs inside make test")
	load := flag.Int("load", 0, "a load run instead: this many versions through the whole pipeline, no faults")
	versions := flag.Int("versions", 0, "uploads through the API (default: the variant's)")
	workers := flag.Int("workers", 0, "worker processes (default: the variant's)")
	kills := flag.Int("kills", -1, "kill -9 of a worker over the run (default: the variant's)")
	duration := flag.Duration("duration", 0, "how long uploads and faults are spread over (default: the variant's)")
	syncObjects := flag.Int("sync", -1, "objects in the storage synced during the run, 0 for no sync (default: the variant's)")
	big := flag.Int("big", -1, "the largest organization's backlog, registered through versions:batch at the start; 0 (with -small 0) for no fairness workload (default: the variant's)")
	small := flag.Int("small", -1, "the smallest organization's uploads while that backlog drains (default: the variant's)")
	admit := flag.String("admit", "", "LABELQ_ADMIT_PER_ORG for every process, such as 0 (admission off: the fairness figure then fails) (default: labelq's)")
	dir := flag.String("dir", "", "keep logs and data here (default: a temporary directory, removed)")
	netns := flag.Bool("netns", false, "each worker in a network namespace of its own (root, ip, nft), with partitions: one worker cut off from Redis, one from PostgreSQL mid-transaction, one clock 30 s ahead")
	pgbouncer := flag.Bool("pgbouncer", false, "every labelq process reaches PostgreSQL through a PgBouncer in transaction pooling mode (Debian's pgbouncer; LABELQ_DATABASE_DIRECT_URL for the relay's LISTEN, exec mode cache_describe)")
	redisTopo := flag.String("redis", "", "Redis topology: single (default; FLUSHALL and a restart), cluster (3 masters with a replica each; kill -9 of a master, twice) or sentinel (master, replica, 3 sentinels; kill -9 of the master, twice)")
	flag.Parse()

	cfg := chaos.Full()
	switch {
	case *load > 0:
		cfg = chaos.Load(*load)
	case *short:
		cfg = chaos.Short()
	}
	if *netns {
		cfg = chaos.WithNetns(cfg)
	}
	if *versions > 0 {
		cfg.Versions = *versions
	}
	if *workers > 0 {
		cfg.Workers = *workers
	}
	if *kills >= 0 {
		cfg.Kills = *kills
	}
	if *duration > 0 {
		cfg.Duration = *duration
	}
	if *syncObjects >= 0 {
		cfg.SyncObjects = *syncObjects
	}
	if *big >= 0 {
		cfg.BigVersions = *big
	}
	if *small >= 0 {
		cfg.SmallVersions = *small
	}
	if *admit != "" {
		cfg.ExtraEnv = append(cfg.ExtraEnv, "LABELQ_ADMIT_PER_ORG="+*admit)
	}
	cfg.Dir = *dir
	topo, err := chaos.ParseRedisTopology(*redisTopo)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	cfg.Redis = topo
	cfg.PgBouncer = *pgbouncer
	cfg.Log = os.Stdout

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// The limit is a ceiling, not an estimate: a chaos run stays well under it on a
	// 2-core machine (`time make chaos` measures one; settle_seconds and run_seconds
	// in its report say where the time went). A load run (`make load`) takes far
	// longer, so it gets a ceiling of its own.
	limit := 15 * time.Minute
	if *load > 0 {
		limit = 90 * time.Minute
	}
	if *netns { // the partitions come first and take minutes of their own
		limit += 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	rep, err := chaos.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	if err := rep.Print(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "chaos: print the report:", err)
		return 2
	}
	if !rep.OK() {
		return 1
	}
	return 0
}
