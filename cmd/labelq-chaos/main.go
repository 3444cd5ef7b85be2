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

func main() {
	cfg := chaos.Full()
	short := flag.Bool("short", false, "the short variant that runs inside make test")
	load := flag.Int("load", 0, "a load run instead: this many versions through the whole pipeline, no faults")
	flag.IntVar(&cfg.Versions, "versions", cfg.Versions, "uploads through the API")
	flag.IntVar(&cfg.Workers, "workers", cfg.Workers, "worker processes")
	flag.IntVar(&cfg.Kills, "kills", cfg.Kills, "kill -9 of a worker over the run")
	flag.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long uploads and faults are spread over")
	flag.StringVar(&cfg.Dir, "dir", "", "keep logs and data here (default: a temporary directory, removed)")
	flag.Parse()
	if *short {
		cfg = chaos.Short()
	}
	if *load > 0 {
		cfg = chaos.Load(*load)
	}
	cfg.Log = os.Stdout
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	rep, err := chaos.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	}
	rep.Print(os.Stdout)
	if !rep.OK() {
		os.Exit(1)
	}
}
