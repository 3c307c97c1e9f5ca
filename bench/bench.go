// Package bench is klingfan's load harness (bench/cmd/klingbench). It runs the
// real server in-process (app.Run on loopback port 0, a fresh temporary
// data directory per scenario) and measures, in one run on one machine:
// ingest throughput and latency against a baseline HTTP handler,
// end-to-end latency at a fixed event rate, memory per idle stream,
// catch-up speed and start-up time on a large log. It writes the figures,
// each next to its baseline or target, as BENCHMARKS.md and a JSON file.
package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"time"
)

// Scenario names, as -phases takes them.
const (
	PhaseIngest  = "ingest"
	PhaseLatency = "latency"
	PhaseMemory  = "memory"
	PhaseStartup = "startup"
	PhaseCatchUp = "catchup"
	PhaseFilter  = "filter"
)

// AllPhases lists every scenario in the order Run performs them.
var AllPhases = []string{PhaseIngest, PhaseLatency, PhaseFilter, PhaseMemory, PhaseStartup, PhaseCatchUp, PhaseGroups}

// Config selects what Run measures and where it writes the report.
type Config struct {
	// Out and JSON are the report files; empty skips one.
	Out  string
	JSON string
	// Micro is a file of `go test -bench` output to include in the report.
	Micro string
	// Phases selects scenarios (AllPhases when empty).
	Phases []string

	Concurrency    []int         // ingest concurrencies
	IngestModes    []string      // ingest modes to run (all when empty)
	IngestDuration time.Duration // measured time of each ingest point
	Warmup         time.Duration // unmeasured lead-in of each load point

	Rate               float64       // end-to-end probe rate, events/s
	LatencySubscribers []int         // subscriber counts of the latency scenario
	LatencyDuration    time.Duration // measured time of each latency point
	// LatencyRounds is how many times the largest latency point, the bare
	// fan-out beside it and the filtered point are measured, alternated.
	LatencyRounds int

	// FilterSubscribers streams each carry Filter, a CEL expression every
	// probe matches, at Rate events/s: what evaluating a filter per event
	// per stream costs, next to the unfiltered latency point of the same
	// size.
	FilterSubscribers int
	Filter            string

	Streams       int // idle streams of the memory scenario
	CatchUpEvents int // how far back the catch-up subscriber resumes
	StartupEvents int // events stored before timing start-up
	Full          bool

	// CPUProfileDir, when set, receives a CPU profile per measured point
	// (<point>.pprof); the profile covers the whole process, load
	// generator and subscribers included.
	CPUProfileDir string
	// DebugAddr, when set (a loopback host:port), serves net/http/pprof
	// during the run, with block and mutex profiling switched on, to see
	// where a scenario waits rather than where it spends CPU.
	DebugAddr string
	// Progress receives a line per step; nil discards.
	Progress io.Writer
}

// DefaultConfig is what `make bench` runs: every scenario bounded so the
// whole run fits in a few minutes on a 2-core machine.
func DefaultConfig() Config {
	return Config{
		Out:                "BENCHMARKS.md",
		JSON:               "bench/results.json",
		Concurrency:        []int{16, 64},
		IngestDuration:     5 * time.Second,
		Warmup:             500 * time.Millisecond,
		Rate:               100,
		LatencySubscribers: []int{1, 100, 1000},
		LatencyDuration:    6 * time.Second,
		LatencyRounds:      3,
		FilterSubscribers:  1000,
		Filter:             DefaultFilter,
		Streams:            10_000,
		CatchUpEvents:      100_000,
		StartupEvents:      200_000,
	}
}

// DefaultFilter is a typical subscriber filter: a model and a kind, both
// of which every probe matches, so every event is evaluated and delivered.
const DefaultFilter = `event.job.model == "kling-v2-1-master" && event.job.kind == JOB_KIND_VIDEO`

// runner carries one run's configuration and progress output.
type runner struct {
	cfg Config
	log *slog.Logger
	out io.Writer
}

// Run performs the selected scenarios and writes the report. A scenario
// that fails is reported as missing; Run then returns the first error
// after writing what it has.
func Run(ctx context.Context, cfg Config) error {
	if len(cfg.Phases) == 0 {
		cfg.Phases = AllPhases
	}
	for _, p := range cfg.Phases {
		if !slices.Contains(AllPhases, p) {
			return fmt.Errorf("bench: unknown phase %q (want %v)", p, AllPhases)
		}
	}
	for _, m := range cfg.IngestModes {
		if !slices.Contains(IngestModes, m) {
			return fmt.Errorf("bench: unknown ingest mode %q (want %v)", m, IngestModes)
		}
	}
	if cfg.Full {
		cfg.StartupEvents = max(cfg.StartupEvents, 1_000_000)
	}
	if cfg.CPUProfileDir != "" {
		if err := os.MkdirAll(cfg.CPUProfileDir, 0o755); err != nil { //nolint:gosec // G301: profiles are for the developer who asked for them, as readable as the source
			return err
		}
	}
	out := cfg.Progress
	if out == nil {
		out = io.Discard
	}
	r := &runner{cfg: cfg, log: quietLogger(), out: out}
	if cfg.DebugAddr != "" {
		stop, err := serveDebug(cfg.DebugAddr)
		if err != nil {
			return err
		}
		defer stop()
		r.logf("klingbench: pprof on http://%s/debug/pprof/", cfg.DebugAddr)
	}
	res := &Results{Machine: machine(cfg)}
	if cfg.JSON != "" {
		res.previous = readPrevious(cfg.JSON)
	}
	began := time.Now()
	r.logf("klingbench: %d cores, %s, load average %s", res.Machine.Cores, res.Machine.GoVersion, res.Machine.LoadAverage)

	var errs []error
	fail := func(phase string, err error) {
		r.logf("%s: FAILED: %v", phase, err)
		res.Failures = append(res.Failures, fmt.Sprintf("%s: %v", phase, err))
		errs = append(errs, fmt.Errorf("%s: %w", phase, err))
	}
	has := func(p string) bool { return slices.Contains(cfg.Phases, p) }
	if has(PhaseIngest) {
		if v, err := r.runIngest(ctx); err != nil {
			fail(PhaseIngest, err)
		} else {
			res.Ingest = v
		}
	}
	if has(PhaseLatency) && ctx.Err() == nil {
		v, err := r.runLatency(ctx, has(PhaseFilter))
		if err != nil {
			fail(PhaseLatency, err)
		}
		res.Latency, res.BareFanout, res.Filtered, res.LatencyRounds = v.points, v.bare, v.filtered, v.rounds
	}
	if has(PhaseFilter) && !has(PhaseLatency) && ctx.Err() == nil {
		if v, err := r.latencyPointWith(ctx, cfg.FilterSubscribers, cfg.Filter); err != nil {
			fail(PhaseFilter, err)
		} else {
			res.Filtered = &v
		}
	}
	if has(PhaseMemory) && ctx.Err() == nil {
		if v, err := r.runMemory(ctx); err != nil {
			fail(PhaseMemory, err)
		} else {
			res.Memory = v
		}
	}
	if (has(PhaseStartup) || has(PhaseCatchUp)) && ctx.Err() == nil {
		st, cu, err := r.runStartupAndCatchUp(ctx, has(PhaseStartup), has(PhaseCatchUp))
		if err != nil {
			fail(PhaseStartup+"/"+PhaseCatchUp, err)
		}
		res.Startup, res.CatchUp = st, cu
	}
	if has(PhaseGroups) && ctx.Err() == nil {
		v, err := r.runGroups(ctx)
		if err != nil {
			fail(PhaseGroups, err)
		}
		res.Groups = v
	}
	if cfg.Micro != "" {
		micro, err := readMicro(cfg.Micro)
		if err != nil {
			fail("micro-benchmarks", err)
		}
		res.Micro = micro
	}
	res.Machine.Seconds = round2(time.Since(began).Seconds())
	res.Checks = checks(res, cfg)
	if err := res.write(cfg); err != nil {
		return err
	}
	r.logf("klingbench: done in %s; wrote %s %s", time.Since(began).Round(time.Second), cfg.Out, cfg.JSON)
	if len(errs) > 0 {
		return fmt.Errorf("bench: %d scenario(s) failed, first: %w", len(errs), errs[0])
	}
	return nil
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.out, format+"\n", args...)
}

// profile starts a CPU profile named for the point when profiling is on;
// the returned function stops it. Beside it, the allocation profile at the
// start and at the end (NAME.allocs-start.pprof, NAME.allocs.pprof): the
// point's own allocations are their difference,
// go tool pprof -sample_index=alloc_space -diff_base NAME.allocs-start.pprof NAME.allocs.pprof.
func (r *runner) profile(name string) func() {
	if r.cfg.CPUProfileDir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(r.cfg.CPUProfileDir, name+".pprof"))
	if err != nil {
		r.logf("  cpu profile %s: %v", name, err)
		return func() {}
	}
	r.writeAllocs(name + ".allocs-start")
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		r.logf("  cpu profile %s: %v", name, err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		r.writeAllocs(name + ".allocs")
	}
}

// writeAllocs writes the allocation profile so far as NAME.pprof in the
// profile directory.
func (r *runner) writeAllocs(name string) {
	f, err := os.Create(filepath.Join(r.cfg.CPUProfileDir, name+".pprof"))
	if err == nil {
		err = pprof.Lookup("allocs").WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		r.logf("  allocation profile %s: %v", name, err)
	}
}

// removeDir deletes a scenario's data directory.
func (r *runner) removeDir(dir string) {
	if err := os.RemoveAll(dir); err != nil {
		r.logf("  removing %s: %v", dir, err)
	}
}

// Machine describes where and how the figures were taken.
type Machine struct {
	Date        string  `json:"date"`
	Cores       int     `json:"cores"`
	CPU         string  `json:"cpu"`
	GoVersion   string  `json:"go_version"`
	OS          string  `json:"os"`
	LoadAverage string  `json:"load_average_at_start"`
	Full        bool    `json:"full"`
	Seconds     float64 `json:"harness_seconds"`
}

func machine(cfg Config) Machine {
	return Machine{
		Date:        time.Now().UTC().Format(time.RFC3339),
		Cores:       runtime.NumCPU(),
		CPU:         cpuModel(),
		GoVersion:   runtime.Version(),
		OS:          runtime.GOOS + "/" + runtime.GOARCH,
		LoadAverage: loadAverage(),
		Full:        cfg.Full,
	}
}
