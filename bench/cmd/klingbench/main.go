// Command klingbench is klingfan's load harness: it runs the real server
// in-process on loopback and writes BENCHMARKS.md and bench/results.json.
// `make bench` runs it after the Go micro-benchmarks.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/klingfan/klingfan/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "klingbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	// The memory and latency scenarios re-execute this binary to hold
	// their client streams in a separate process.
	if len(args) > 0 && args[0] == bench.StreamClientsCommand {
		return bench.RunStreamClients(ctx, args[1:], os.Stdin, os.Stdout)
	}
	if len(args) > 0 && args[0] == bench.LatencyClientsCommand {
		return bench.RunLatencyClients(ctx, args[1:], os.Stdin, os.Stdout)
	}
	cfg := bench.DefaultConfig()
	fs := flag.NewFlagSet("klingbench", flag.ContinueOnError)
	fs.StringVar(&cfg.Out, "out", cfg.Out, "Markdown report to write")
	fs.StringVar(&cfg.JSON, "json", cfg.JSON, "JSON results to write")
	fs.StringVar(&cfg.Micro, "micro", "", "file of `go test -bench` output to include in the report")
	phases := fs.String("phases", strings.Join(bench.AllPhases, ","), "scenarios to run")
	conc := fs.String("concurrency", "16,64", "ingest concurrencies")
	modes := fs.String("ingest-modes", "", "ingest modes to run: "+strings.Join(bench.IngestModes, ", ")+" (default all)")
	fs.DurationVar(&cfg.IngestDuration, "duration", cfg.IngestDuration, "measured time of each ingest point")
	fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "unmeasured lead-in of each point")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "end-to-end latency probe rate, events/s")
	subs := fs.String("latency-subscribers", "1,100,1000", "subscriber counts of the latency scenario")
	fs.DurationVar(&cfg.LatencyDuration, "latency-duration", cfg.LatencyDuration, "measured time of each latency point")
	fs.IntVar(&cfg.LatencyRounds, "latency-rounds", cfg.LatencyRounds, "alternated rounds of the largest latency point, its bare fan-out and its filtered point")
	fs.IntVar(&cfg.FilterSubscribers, "filter-subscribers", cfg.FilterSubscribers, "streams of the filter scenario, each with -filter")
	fs.StringVar(&cfg.Filter, "filter", cfg.Filter, "CEL filter of the filter scenario's streams")
	fs.IntVar(&cfg.Streams, "streams", cfg.Streams, "idle streams of the memory scenario")
	fs.IntVar(&cfg.CatchUpEvents, "catchup-events", cfg.CatchUpEvents, "how far back the catch-up subscriber resumes")
	fs.IntVar(&cfg.StartupEvents, "startup-events", cfg.StartupEvents, "events stored before timing start-up")
	fs.BoolVar(&cfg.Full, "full", false, "measure start-up with 1,000,000 stored events")
	fs.StringVar(&cfg.CPUProfileDir, "cpuprofile", "", "directory for a CPU profile per measured point")
	fs.StringVar(&cfg.DebugAddr, "debug-addr", "", "serve net/http/pprof (with block and mutex profiling on) on this loopback address while running")
	plotsFrom := fs.String("plots-from", "", "only draw the plots of this results file (bench/results.json) beside -out, without running anything")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *plotsFrom != "" {
		return bench.WritePlotsFrom(*plotsFrom, filepath.Dir(cfg.Out))
	}
	var err error
	if cfg.Concurrency, err = ints(*conc); err != nil {
		return fmt.Errorf("-concurrency: %w", err)
	}
	if cfg.LatencySubscribers, err = ints(*subs); err != nil {
		return fmt.Errorf("-latency-subscribers: %w", err)
	}
	cfg.Phases = strings.Split(*phases, ",")
	if *modes != "" {
		cfg.IngestModes = strings.Split(*modes, ",")
	}
	cfg.Progress = os.Stderr
	return bench.Run(ctx, cfg)
}

func ints(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}
