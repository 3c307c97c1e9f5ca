package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Targets from the benchmarks issue, for a 2-core machine.
const (
	targetIngestRatio = 0.5
	// Issue 18: ingest without subscribers, and with 100 subscribers
	// matching 1% of events each.
	targetIngestAloneRatio = 0.70
	targetFilteredRatio    = 0.60
	targetP99With100       = 10.0 // ms
	targetP99With1000      = 25.0 // ms
	// Issue 34: the 1,000-subscriber p99 against the bare gRPC fan-out,
	// and the CEL-filtered point against the unfiltered one, in one run.
	targetP99OverBare       = 1.25
	targetFilteredOverPlain = 1.2
	targetBytesPerStream    = 10 * 1024
	targetStreams           = 100_000
	// Issue 34: the heap an idle stream holds above bare grpc-go's.
	targetHeapAboveBare = 1331 // 1.3 KiB
	targetCatchUpPerSec = 100_000
	targetCatchUpRatio  = 0.8 // of the raw JetStream replay (issue 34)
	// Issue 28: the default --sync always against --sync interval.
	targetSyncAlwaysRatio = 0.6
	// Issue 34: ingest without subscribers against the ceiling the
	// baseline's and the log's CPU per delivery allow, in both sync modes.
	targetOfCeiling = 0.9
)

// Results is everything one run measured; it is the JSON file's schema.
type Results struct {
	Machine  Machine         `json:"machine"`
	Checks   []Check         `json:"checks"`
	Ingest   []IngestRun     `json:"ingest,omitempty"`
	Latency  []LatencyResult `json:"latency,omitempty"`
	Filtered *LatencyResult  `json:"filtered,omitempty"`
	// BareFanout is the bare gRPC fan-out at the largest latency point.
	BareFanout *LatencyResult `json:"bare_fanout,omitempty"`
	// LatencyRounds are the alternated rounds of the largest latency
	// point; Latency's last entry, BareFanout and Filtered are each the
	// round of median p99 among them.
	LatencyRounds []LatencyRound `json:"latency_rounds,omitempty"`
	Memory        *MemoryResult  `json:"memory,omitempty"`
	Startup       *StartupResult `json:"startup,omitempty"`
	CatchUp       *CatchUpResult `json:"catch_up,omitempty"`
	Groups        *GroupsResult  `json:"groups,omitempty"`
	Micro         []MicroResult  `json:"micro_benchmarks,omitempty"`
	Failures      []string       `json:"failures,omitempty"`

	// previous holds the ingest points of the JSON file this run replaces,
	// so the report shows a change's figure beside the one before it.
	previous []IngestRun
}

// readPrevious returns the ingest points of the results file at path,
// or nil when there is none that parses.
func readPrevious(path string) []IngestRun {
	data, err := os.ReadFile(path) //nolint:gosec // G304: the harness's own results file, named on its command line
	if err != nil {
		return nil
	}
	var prev Results
	if json.Unmarshal(data, &prev) != nil {
		return nil
	}
	return prev.Ingest
}

// Check is one row of the summary table: a figure next to its baseline or
// target. Holds is nil for figures reported without a target.
type Check struct {
	Figure    string  `json:"figure"`
	Measured  string  `json:"measured"`
	Reference string  `json:"reference"`
	Ratio     float64 `json:"ratio,omitempty"`
	Holds     *bool   `json:"holds,omitempty"`
}

func holds(b bool) *bool { return &b }

func checks(res *Results, cfg Config) []Check {
	var out []Check
	for _, ir := range res.Ingest {
		c := Check{
			Measured:  loadSummary(ir.Klingfan),
			Reference: "baseline " + loadSummary(ir.Baseline),
			Ratio:     ir.Ratio,
		}
		switch ir.Mode {
		case ModeDurable:
			c.Figure = fmt.Sprintf("Durable ingest with --sync interval, concurrency %d, %d live subscribers receiving every event", ir.Concurrency, ir.Subscribers)
			c.Reference += fmt.Sprintf("; target ≥ %.1f×", targetIngestRatio)
			c.Reference += floorNote(ir)
			c.Holds = holds(ir.Klingfan.Errors == 0 && ir.Klingfan.Missing == 0 && ir.Ratio >= targetIngestRatio)
		case ModeFiltered:
			c.Figure = fmt.Sprintf("Durable ingest, concurrency %d, %d live subscribers matching 1%% each", ir.Concurrency, ir.Subscribers)
			c.Reference += fmt.Sprintf("; target ≥ %.2f×", targetFilteredRatio)
			c.Holds = holds(ir.Klingfan.Errors == 0 && ir.Klingfan.Missing == 0 && ir.Ratio >= targetFilteredRatio)
		case ModeSyncAlways:
			c.Figure = fmt.Sprintf("Durable ingest with --sync always (the default: fsynced before the 2xx, one fsync per group of concurrent appends), concurrency %d, %d live subscribers receiving every event", ir.Concurrency, ir.Subscribers)
			c.Reference += fmt.Sprintf("; target ≥ %.1f× the --sync interval run (issue 28)", targetSyncAlwaysRatio)
			c.Reference += floorNote(ir)
			for _, d := range res.Ingest {
				if d.Mode == ModeDurable && d.Concurrency == ir.Concurrency && d.Klingfan.PerSecond > 0 {
					r := ir.Klingfan.PerSecond / d.Klingfan.PerSecond
					c.Measured += fmt.Sprintf("; always ÷ interval = %.2f×", r)
					c.Holds = holds(ir.Klingfan.Errors == 0 && ir.Klingfan.Missing == 0 && r >= targetSyncAlwaysRatio)
				}
			}
		case ModeNoSubscribers, ModeNoSubscribersAlways:
			c.Figure = fmt.Sprintf("Durable ingest without subscribers, %s, concurrency %d", syncName(ir.SyncAlways), ir.Concurrency)
			c.Measured += fmt.Sprintf("; job projection %d events behind when the load stopped", ir.ProjectionLag)
			c.Reference += fmt.Sprintf("; target ≥ %.2f×", targetIngestAloneRatio)
			c.Holds = holds(ir.Klingfan.Errors == 0 && ir.Ratio >= targetIngestAloneRatio)
			if lo := ir.LogOnly; lo != nil {
				c.Reference += fmt.Sprintf("; limit: the log alone (store.Append, no HTTP) %.0f/s = %.2f× the baseline, klingfan %.2f× of it",
					lo.PerSecond, ratio(lo.PerSecond, ir.Baseline.PerSecond), ir.LogRatio)
				if ir.Ceiling > 0 {
					c.Reference += fmt.Sprintf("; the baseline's CPU plus the log's per delivery allow at most %.2f×", ir.Ceiling)
				}
			}
		}
		out = append(out, c)
		if (ir.Mode == ModeNoSubscribers || ir.Mode == ModeNoSubscribersAlways) && ir.Ceiling > 0 {
			out = append(out, Check{
				Figure:   fmt.Sprintf("Durable ingest without subscribers against its ceiling, %s, concurrency %d", syncName(ir.SyncAlways), ir.Concurrency),
				Measured: fmt.Sprintf("%.2f× the baseline = %.2f of the ceiling", ir.Ratio, ir.OfCeiling),
				Reference: fmt.Sprintf("ceiling %.2f× the baseline (the baseline's CPU plus the log's per delivery, same run); target ≥ %.1f of it (issue 34)",
					ir.Ceiling, targetOfCeiling),
				Ratio: ir.OfCeiling,
				Holds: holds(ir.Klingfan.Errors == 0 && ir.OfCeiling >= targetOfCeiling),
			})
		}
	}
	for _, lr := range res.Latency {
		c := Check{
			Figure: fmt.Sprintf("End-to-end latency, %d subscriber(s) × %.0f events/s", lr.Subscribers, lr.Rate),
			Measured: fmt.Sprintf("p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms; %.0f deliveries/s (of %.0f)",
				lr.Latency.P50, lr.Latency.P99, lr.Latency.P999, lr.DeliveriesPerSecond, lr.Rate*float64(lr.Subscribers)),
			Reference: "no target",
		}
		var target float64
		switch lr.Subscribers {
		case 100:
			target = targetP99With100
		case 1000:
			target = targetP99With1000
		}
		if target > 0 {
			c.Reference = fmt.Sprintf("p99 ≤ %.0f ms", target)
			if b := res.BareFanout; b != nil && b.Subscribers == lr.Subscribers {
				c.Reference += fmt.Sprintf("; limit: bare gRPC fan-out in the same run p50 %.2f ms, p99 %.2f ms, %.2f µs of CPU per delivery (klingfan %.2f µs)",
					b.Latency.P50, b.Latency.P99, b.ServerMicrosPerDelivery, lr.ServerMicrosPerDelivery)
			}
			c.Holds = holds(lr.Missing == 0 && lr.OutOfOrder == 0 && lr.Duplicates == 0 && lr.Latency.P99 <= target)
		}
		if lr.Missing > 0 {
			c.Measured += fmt.Sprintf("; %d deliveries MISSING", lr.Missing)
		}
		if lr.OutOfOrder > 0 || lr.Duplicates > 0 {
			c.Measured += fmt.Sprintf("; %d OUT OF ORDER, %d DUPLICATED", lr.OutOfOrder, lr.Duplicates)
		}
		out = append(out, c)
	}
	out = append(out, roundChecks(res.LatencyRounds, res.BareFanout)...)
	if m := res.Memory; m != nil {
		out = append(out, memoryChecks(m)...)
	}
	if c := res.CatchUp; c != nil {
		out = append(out, catchUpCheck(c))
	}
	if s := res.Startup; s != nil {
		out = append(out, startupChecks(s, cfg.Full)...)
	}
	out = append(out, groupChecks(res.Groups)...)
	return out
}

// floorNote describes the floor under a point whose subscribers receive
// every event, when it was measured.
func floorNote(ir IngestRun) string {
	if ir.Ceiling <= 0 || ir.FanoutOnly == nil {
		return ""
	}
	return fmt.Sprintf("; floor: the baseline's, the log's and the bare fan-out's CPU per delivery (%d sends each) allow at most %.2f×, klingfan at %.2f of it",
		ir.FanoutOnly.Subscribers, ir.Ceiling, ir.OfCeiling)
}

// syncName names a point's sync mode as the flag sets it.
func syncName(always bool) string {
	if always {
		return "--sync always (default)"
	}
	return "--sync interval"
}

func loadSummary(l LoadResult) string {
	s := fmt.Sprintf("%.0f/s, p50 %.2f ms, p99 %.2f ms", l.PerSecond, l.Latency.P50, l.Latency.P99)
	if l.Errors > 0 {
		s += fmt.Sprintf(", %d errors (%s)", l.Errors, l.FirstErr)
	}
	return s
}

// write produces the JSON file and BENCHMARKS.md.
func (res *Results) write(cfg Config) error {
	if cfg.JSON != "" {
		data, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		if err := writeFile(cfg.JSON, append(data, '\n')); err != nil {
			return err
		}
	}
	if cfg.Out != "" {
		if err := writeFile(cfg.Out, res.markdown(cfg)); err != nil {
			return err
		}
		return WritePlots(res, filepath.Dir(cfg.Out))
	}
	return nil
}

func writeFile(path string, data []byte) error {
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil { //nolint:gosec // G301: the report is committed with the source
			return err
		}
	}
	return os.WriteFile(path, data, 0o644) //nolint:gosec // G306: BENCHMARKS.md and bench/results.json are committed, not secret
}

func (res *Results) markdown(cfg Config) []byte {
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	m := res.Machine
	p("# klingfan benchmarks\n\n")
	p("Generated by `make bench` (bench/cmd/klingbench); do not edit by hand. Raw figures: `%s`.\n\n", cfg.JSON)
	p("| machine | |\n|---|---|\n")
	p("| date | %s |\n| cores | %d (%s) |\n| Go | %s %s |\n| load average at start | %s |\n| harness run time | %.0f s |\n\n",
		m.Date, m.Cores, m.CPU, m.GoVersion, m.OS, m.LoadAverage, m.Seconds)
	p("The server runs in the harness process (app.Run, embedded JetStream, a fresh data directory per scenario) on loopback; ")
	p("load generator and subscribers share the same %d cores, so absolute figures are a floor and ratios against the ", m.Cores)
	p("baseline measured in the same run are what to compare across machines. The machine may be shared: the \"other processes' ")
	p("cores\" columns say how much CPU the rest of the machine used during each point.\n\n")
	p("Servers run with default flags except `--max-streams %d`, `--ingest-rate 0` and `--max-streams-per-token 0` ", maxStreams)
	p("(the harness measures capacity; the default per-registration limit of 500 deliveries/s would otherwise answer 429), ")
	p("the admin token and `KLINGAI_WEBHOOK_SECRET` set.\n\n")

	p("## Summary\n\n| figure | measured | baseline / target | ratio | holds |\n|---|---|---|---|---|\n")
	for _, c := range res.Checks {
		ratio, ok := "", "—"
		if c.Ratio != 0 {
			ratio = fmt.Sprintf("%.2f", c.Ratio)
		}
		if c.Holds != nil {
			ok = map[bool]string{true: "yes", false: "**no**"}[*c.Holds]
		}
		p("| %s | %s | %s | %s | %s |\n", c.Figure, c.Measured, c.Reference, ratio, ok)
	}
	p("\nWhere a row says **no**, [docs/performance.md](docs/performance.md) gives the floor measured on this machine and the ")
	p("profile behind it: [Targets and the limits that remain](docs/performance.md#targets-and-the-limits-that-remain) (ingest ")
	p("against the HMAC-only baseline, the absolute p99s, memory per stream), [Ingest against its ceiling](docs/performance.md#ingest-against-its-ceiling-issue-34), ")
	p("[Catch-up](docs/performance.md#catch-up-issue-34) and [CEL-filtered fan-out](docs/performance.md#cel-filtered-fan-out-1000-streams-with-one-filter-issue-34).\n")
	for _, f := range res.Failures {
		p("\n**Scenario failed:** %s\n", f)
	}

	if len(res.Ingest) > 0 {
		p("\n## Ingest\n\nClosed loop: each of *c* keep-alive HTTP/1.1 clients POSTs distinct signed `video.completed` deliveries ")
		p("(about 600 bytes, `X-Kling-Signature`) to `/webhooks/klingai` for %s after a %s warm-up. ", cfg.IngestDuration, cfg.Warmup)
		p("Latency runs from sending the request to reading the answer. The baseline is a net/http handler in the harness ")
		p("that reads the body, checks the HMAC with `verify.KlingSignature` and answers 200. klingfan answers only after ")
		p("JetStream acknowledged the append; %d live subscribers drain every event over gRPC (the harness checks that each ", ingestSubscribers)
		p("received every accepted event). \"µs CPU per delivery\" is the harness process's CPU (server, load generator and ")
		p("subscribers) over the deliveries: it depends far less on what else the machine runs than the rate does. ")
		p("Right after each point without subscribers, and each point whose subscribers receive every event, the harness ")
		p("measures the limits under it: the log alone (`store.Append` from *c* goroutines in the point's sync mode, no HTTP) ")
		p("and, with subscribers, the fan-out alone (a bare gRPC server sending each event to as many subscribers of this ")
		p("process, as fast as they take them, no log, no HTTP). The bold row is the ratio to the baseline that the ")
		p("baseline's CPU per delivery plus theirs allows: the ceiling (floor, with subscribers) of what klingfan can reach here.\n\n")
		p("![Ingest rate per mode against the HMAC-only baseline and the ceiling](%s)\n\n", IngestPlotFile)
		p("| run | c | deliveries/s | p50 ms | p99 ms | errors | ratio | cores used | µs CPU per delivery | other processes' cores | subscribers: drained after, resumed streams |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
		row := func(name string, l LoadResult, ratio string) {
			drain := "—"
			if l.Subscribers > 0 {
				drain = fmt.Sprintf("%.2f s, %d", l.DrainSeconds, l.Resumes)
				if l.Missing > 0 {
					drain += fmt.Sprintf(", **%d missing**", l.Missing)
				}
				if l.StreamError != "" {
					drain += " (" + l.StreamError + ")"
				}
			}
			perDelivery := 0.0
			if l.PerSecond > 0 {
				perDelivery = l.Cores / l.PerSecond * 1e6
			}
			p("| %s | %d | %.0f | %.2f | %.2f | %d | %s | %.2f | %.0f | %.2f | %s |\n", name, l.Concurrency, l.PerSecond, l.Latency.P50, l.Latency.P99, l.Errors, ratio, l.Cores, perDelivery, l.OtherCores, drain)
		}
		for _, ir := range res.Ingest {
			row("baseline (HMAC only), before the next row", ir.Baseline, "1.00")
			name := map[string]string{
				ModeDurable:             fmt.Sprintf("klingfan, sync interval, %d subscribers × every event", ir.Subscribers),
				ModeFiltered:            fmt.Sprintf("klingfan, sync interval, %d subscribers × 1%% of events", ir.Subscribers),
				ModeSyncAlways:          fmt.Sprintf("klingfan, --sync always (default), %d subscribers × every event", ir.Subscribers),
				ModeNoSubscribers:       "klingfan, sync interval, no subscribers",
				ModeNoSubscribersAlways: "klingfan, --sync always (default), no subscribers",
			}[ir.Mode]
			row(name, ir.Klingfan, fmt.Sprintf("%.2f", ir.Ratio))
			for _, pr := range res.previous {
				if pr.Mode == ir.Mode && pr.Concurrency == ir.Concurrency {
					row("the same point in the previous run (the results file this run replaced)", pr.Klingfan, fmt.Sprintf("%.2f", pr.Ratio))
				}
			}
			if lo := ir.LogOnly; lo != nil {
				name := "log alone: store.Append from c goroutines, no HTTP (the limit under ingest)"
				if ir.SyncAlways {
					name = "log alone, --sync always: store.Append from c goroutines, fsynced, no HTTP (the limit under ingest)"
				}
				row(name, *lo, fmt.Sprintf("%.2f", ratio(lo.PerSecond, ir.Baseline.PerSecond)))
			}
			if fo := ir.FanoutOnly; fo != nil {
				row(fmt.Sprintf("fan-out alone: a bare gRPC server sending each event to the same %d subscribers, no log, no HTTP (events/s)", fo.Subscribers),
					*fo, "—")
			}
			if ir.Ceiling > 0 {
				parts, used := "baseline + log alone", ir.Baseline.Cores/ir.Baseline.PerSecond+ir.LogOnly.Cores/ir.LogOnly.PerSecond
				if fo := ir.FanoutOnly; fo != nil {
					parts += " + fan-out alone"
					used += fo.Cores / fo.PerSecond
				}
				p("| **%s: the CPU per delivery of %s** (klingfan at %.2f of it) | %d | %.0f | | | | %.2f | | %.0f | | |\n",
					map[bool]string{false: "ceiling", true: "floor"}[ir.FanoutOnly != nil], parts, ir.OfCeiling,
					ir.Concurrency, ir.Ceiling*ir.Baseline.PerSecond, ir.Ceiling, used*1e6)
			}
		}
	}

	if len(res.Latency) > 0 {
		p("\n## End-to-end latency\n\nOpen loop at %.0f events/s for %s (after %s of warm-up): each POST carries its send time in ", cfg.Rate, cfg.LatencyDuration, cfg.Warmup)
		p("`data.prompt`; each subscriber (a gRPC `Subscribe` stream from now, basic view, %d streams per connection) ", streamsPerConn)
		p("records the time from the start of the POST to reading the event. Subscribers read only the sequence and the prompt ")
		p("from the wire bytes (protowire) rather than decoding whole events. The subscribers run in a child process (klingbench ")
		p("re-executes itself), so \"server cores\" is the server and the pacer only; the child checks that every subscriber read ")
		p("every probe once and in sequence order (missing, out of order and duplicate columns). The last row is the physical ")
		p("limit measured in the same run: a bare gRPC server in the harness that only fans pre-encoded events out, one ")
		p("goroutine per stream (no log, no HTTP, no authentication, no metrics), to the same child.\n\n")
		p("![Latency percentiles per subscriber count against the bare gRPC fan-out](%s)\n\n", LatencyPlotFile)
		p("| subscribers | connections | events | p50 ms | p99 ms | p99.9 ms | max ms | POST p99 ms | deliveries/s | missing | out of order | duplicates | resumed streams | server cores | server µs CPU per delivery | subscribers' cores | other processes' cores |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		rows := res.Latency
		if res.BareFanout != nil {
			rows = append(slices.Clone(rows), *res.BareFanout)
		}
		for _, lr := range rows {
			resumed := strconv.FormatInt(lr.Resumes, 10)
			if lr.StreamError != "" {
				resumed += " (" + lr.StreamError + ")"
			}
			subs := strconv.Itoa(lr.Subscribers)
			if lr.Bare {
				subs += ", bare gRPC fan-out (no klingfan: the limit)"
			}
			p("| %s | %d | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %.0f | %d | %d | %d | %s | %.2f | %.2f | %.2f | %.2f |\n", subs, lr.Connections, lr.Events,
				lr.Latency.P50, lr.Latency.P99, lr.Latency.P999, lr.Latency.Max, lr.Post.P99, lr.DeliveriesPerSecond, lr.Missing, lr.OutOfOrder, lr.Duplicates,
				resumed, lr.Cores, lr.ServerMicrosPerDelivery, lr.ClientCores, lr.OtherCores)
		}
		if rs := res.LatencyRounds; len(rs) > 1 {
			p("\nThe largest point, its bare fan-out and its filtered point (below) were measured in %d alternated rounds; each table row is the round of median p99, ", len(rs))
			p("and the summary holds the median of the ratios taken within each round.\n\n")
			p("| round | klingfan p99 ms | bare p99 ms | ÷ bare | filtered p99 ms | filtered ÷ klingfan | server µs CPU per delivery: klingfan, bare, filtered |\n|---|---|---|---|---|---|---|\n")
			for i, rd := range rs {
				p("| %d | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f, %.2f, %.2f |\n", i+1, rd.P99, rd.BareP99, rd.BareRatio(), rd.FilteredP99, rd.FilterRatio(), rd.Micros, rd.BareMicros, rd.FilteredMicros)
			}
		}
	}

	if fr := res.Filtered; fr != nil {
		p("\n## CEL filters\n\nThe end-to-end scenario with %d subscribers, each stream carrying the CEL filter `%s` (which every probe ", fr.Subscribers, fr.Filter)
		p("matches, so every event is evaluated and delivered on every stream).\n\n")
		p("| subscribers | p50 ms | p99 ms | deliveries/s | missing | cores used | other processes' cores |\n|---|---|---|---|---|---|---|\n")
		p("| %d | %.2f | %.2f | %.0f | %d | %.2f | %.2f |\n", fr.Subscribers, fr.Latency.P50, fr.Latency.P99, fr.DeliveriesPerSecond, fr.Missing, fr.Cores, fr.OtherCores)
		for _, lr := range res.Latency {
			if lr.Subscribers == fr.Subscribers && fr.DeliveriesPerSecond > 0 {
				perEval := (fr.Cores - lr.Cores) / fr.DeliveriesPerSecond * 1e9
				p("\nAgainst the unfiltered point of the same size (%.2f cores), the filter costs about %.0f ns of CPU per event per stream ", lr.Cores, perEval)
				p("(the difference in cores over the deliveries per second; noisy on a shared machine: see BenchmarkMatch below for the isolated figure).\n")
			}
		}
	}

	if mr := res.Memory; mr != nil {
		p("\n## Memory per idle stream\n\n%d `Subscribe` streams over %d gRPC connections (HTTP/2 multiplexing, %d streams per ", mr.Streams, mr.Connections, streamsPerMemoryConn)
		p("connection: the server advertises MaxConcurrentStreams 1,000; `--max-streams` is %d here). The clients run in %d child process(es) ", max(maxStreams, mr.Streams+1000), mr.ClientProcesses)
		p("(klingbench re-executes itself, at most %d streams each), so the harness process holds only the server's side; figures are deltas of the ", streamsPerClientProcess)
		p("harness's VmRSS and Go runtime metrics after `runtime.GC` + `debug.FreeOSMemory`, before and after the streams opened. ")
		p("The server counted %d open subscriptions.\n\n", mr.ServerSubscribers)
		p("| | total | per stream |\n|---|---|---|\n")
		p("| resident set (VmRSS) | %.1f → %.1f MiB | %.1f KiB |\n", float64(mr.RSSBefore)/(1<<20), float64(mr.RSSAfter)/(1<<20), mr.RSSPerStream/1024)
		p("| live heap | | %.1f KiB (%.1f objects) |\n| goroutine stacks | | %.1f KiB |\n| goroutines | | %.2f |\n", mr.HeapPerStream/1024, mr.ObjectsPerStream, mr.StackPerStream/1024, mr.GoroutinesPerStream)
		p("| client process RSS (not the server's) | %.0f MiB | |\n| time to open all streams | %.1f s | |\n", float64(mr.ClientRSS)/(1<<20), mr.OpenSeconds)
		writeBareStreams(p, mr)
	}

	if res.Startup != nil || res.CatchUp != nil {
		p("\n## Start-up and catch-up\n\nOne fresh log is filled through `store.Append` (%d goroutines, the server not running), ", fillWorkers)
		p("then klingfan is started on it and timed from `app.Run` until `/readyz` answers 200; ")
		p("then one subscriber resumes with `after_sequence` and is timed until it has read the head.\n\n")
		if s := res.Startup; s != nil {
			p("- Log: %d events, %.0f MiB on disk, filled in %.1f s (%.0f appends/s).\n", s.Events, float64(s.DiskBytes)/(1<<20), s.FillSeconds, s.FillPerSec)
			p("- Start-up until ready: %.2f s with every event inside the dedup window (default %s, the start-up right after filling); ", s.ReadySeconds, s.DedupWindow)
			p("%.2f s with none inside it (started again with `--dedup-window %s` once the fill was older than that, the state any restart reaches once the default window has passed).", s.ReadyOutsideWindowSeconds, outsideWindow)
			if !cfg.Full && s.Events < 1_000_000 {
				p(" `make bench BENCHFLAGS=-full` measures 1,000,000 events (fill takes longer than the default run allows).")
			}
			p("\n")
		}
		if c := res.CatchUp; c != nil {
			p("- Catch-up: %d events in %.2f s = %.0f events/s; first event after %.2f s; %d out of order; %.2f cores used (other processes %.2f); per event %.1f µs of CPU, %.0f heap bytes and %.1f allocations (server and the subscriber's client, one process).\n",
				c.Events, c.Seconds, c.PerSecond, c.FirstEventSeconds, c.OutOfOrder, c.Cores, c.OtherCores, c.CPUMicrosPerEvent, c.AllocBytesPerEvent, c.AllocsPerEvent)
			writeRawReplay(p, c)
		}
	}

	if len(res.Micro) > 0 {
		p("\n## Micro-benchmarks\n\n`go test -run '^$' -bench ... -benchmem` (short benchtime; see the Makefile's `bench` target).\n\n")
		p("| package | benchmark | ns/op | B/op | allocs/op | other |\n|---|---|---|---|---|---|\n")
		for _, mr := range res.Micro {
			var other []string
			for _, v := range mr.Metrics {
				switch v.Unit {
				case "ns/op", "B/op", "allocs/op":
				default:
					other = append(other, fmt.Sprintf("%s %s", fmtNum(v.Value), v.Unit))
				}
			}
			p("| %s | %s | %s | %s | %s | %s |\n", mr.Package, mr.Name, fmtNum(mr.metric("ns/op")), fmtNum(mr.metric("B/op")), fmtNum(mr.metric("allocs/op")), strings.Join(other, ", "))
		}
		res.fanoutFilter(p)
		res.encodeOnce(p)
	}
	return b.Bytes()
}

// fanoutFilter summarises BenchmarkFanoutFilter: what a CEL filter on every
// one of 1,000 streams costs the hub, against no filter in the same run.
func (res *Results) fanoutFilter(p func(string, ...any)) {
	find := func(name string) *MicroResult {
		for i := range res.Micro {
			if res.Micro[i].Name == "BenchmarkFanoutFilter/"+name {
				return &res.Micro[i]
			}
		}
		return nil
	}
	none, shared, narrow := find("none"), find("cel"), find("narrow")
	if none == nil || shared == nil || narrow == nil || none.metric("cpu-µs/event") == 0 || none.metric("p99-ms") == 0 {
		return
	}
	cpu, p99 := none.metric("cpu-µs/event"), none.metric("p99-ms")
	p("\n**Filters in the hub.** 1,000 subscriptions at 1,000 events/s (BenchmarkFanoutFilter): with one CEL filter on every stream ")
	p("the hub used %.0f µs of CPU per event and reached p99 %.2f ms, against %.0f µs and %.2f ms without (%.2f× and %.2f×); ", shared.metric("cpu-µs/event"), shared.metric("p99-ms"), cpu, p99, shared.metric("cpu-µs/event")/cpu, shared.metric("p99-ms")/p99)
	p("with a filter that matches 1%% of events, %.0f µs (%.2f×): each expression is evaluated once per event by its group, ", narrow.metric("cpu-µs/event"), narrow.metric("cpu-µs/event")/cpu)
	p("and a stream is handed only the events it sends (see docs/performance.md).\n")
}

// encodeOnce summarises the encode-once experiment for the lead.
func (res *Results) encodeOnce(p func(string, ...any)) {
	find := func(name string) float64 {
		for _, m := range res.Micro {
			if m.Name == name {
				return m.metric("ns/op")
			}
		}
		return 0
	}
	const prefix = "BenchmarkEncodeSubscribeResponse/view=basic/subs=1000/"
	per, once := find(prefix+"per_subscriber"), find(prefix+"once")
	if per == 0 || once == 0 {
		return
	}
	p("\n**Encode once.** Fanning one basic-view event out to 1,000 streams costs %.0f µs of `proto.Marshal` when every stream ", per/1e3)
	p("encodes its own copy and %.1f µs when it is encoded once and the bytes shared ", once/1e3)
	p("(%.0f× less). At 100 events/s × 1,000 subscribers that is %.1f%% of one core against %.2f%%, ", per/once, per*100/1e7, once*100/1e7)
	p("which is why the hub encodes each event once per view and Subscribe sends the shared bytes through a server codec ")
	p("that passes pre-encoded messages through (internal/api/codec.go). ")
	p("The limits that remain are written down in [docs/performance.md](docs/performance.md).\n")
}

func fmtNum(f float64) string {
	switch {
	case f == 0:
		return "0"
	case f >= 100:
		return strconv.FormatFloat(f, 'f', 0, 64)
	case f >= 1:
		return strconv.FormatFloat(f, 'f', 1, 64)
	default:
		return strconv.FormatFloat(f, 'g', 3, 64)
	}
}

// MicroResult is one line of `go test -bench` output.
type MicroResult struct {
	Package    string        `json:"package"`
	Name       string        `json:"name"`
	Iterations int64         `json:"iterations"`
	Metrics    []MicroMetric `json:"metrics"`
}

// MicroMetric is one value/unit pair of a benchmark line.
type MicroMetric struct {
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

func (m MicroResult) metric(unit string) float64 {
	for _, v := range m.Metrics {
		if v.Unit == unit {
			return v.Value
		}
	}
	return 0
}

// readMicro parses `go test -bench` output.
func readMicro(path string) ([]MicroResult, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var (
		out []MicroResult
		pkg string
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimPrefix(rest, "github.com/klingfan/klingfan/")
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		iters, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i] // the GOMAXPROCS suffix
			}
		}
		mr := MicroResult{Package: pkg, Name: name, Iterations: iters}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			mr.Metrics = append(mr.Metrics, MicroMetric{Value: v, Unit: f[i+1]})
		}
		out = append(out, mr)
	}
	return out, sc.Err()
}

// cpuCeiling is the ratio to the baseline a server doing exactly the
// baseline's work (HTTP, signature, load generator) plus that of each
// part (the log's append, the fan-out's sends) could reach when the cores
// are the limit: the baseline's CPU per delivery over the sum of all of
// them. Zero when any is unmeasured.
func cpuCeiling(base LoadResult, parts ...LoadResult) float64 {
	if base.PerSecond <= 0 || base.Cores <= 0 || len(parts) == 0 {
		return 0
	}
	b := base.Cores / base.PerSecond
	sum := b
	for _, p := range parts {
		if p.PerSecond <= 0 || p.Cores <= 0 {
			return 0
		}
		sum += p.Cores / p.PerSecond
	}
	return round2(b / sum)
}

// roundChecks holds the largest latency point against the bare fan-out,
// and the filtered point against the unfiltered one, by the median of the
// ratios taken within each alternated round.
func roundChecks(rounds []LatencyRound, bare *LatencyResult) []Check {
	if len(rounds) == 0 || bare == nil {
		return nil
	}
	var over, filt []string
	var overs, filts []float64
	for _, rd := range rounds {
		overs = append(overs, rd.BareRatio())
		over = append(over, fmt.Sprintf("%.2f÷%.2f ms", rd.P99, rd.BareP99))
		if rd.FilteredP99 > 0 {
			filts = append(filts, rd.FilterRatio())
			filt = append(filt, fmt.Sprintf("%.2f÷%.2f ms", rd.FilteredP99, rd.P99))
		}
	}
	m := median(overs)
	out := []Check{{
		Figure:    fmt.Sprintf("End-to-end p99, %d subscribers, against the bare gRPC fan-out (median of %d alternated rounds)", bare.Subscribers, len(rounds)),
		Measured:  fmt.Sprintf("per round %s = %s; median %.2f×", strings.Join(over, ", "), joinRatios(overs), m),
		Reference: fmt.Sprintf("target ≤ %.2f× the bare fan-out of the same round (issue 34)", targetP99OverBare),
		Ratio:     round2(m),
		Holds:     holds(m <= targetP99OverBare),
	}}
	if len(filts) > 0 {
		m := median(filts)
		out = append(out, Check{
			Figure:    fmt.Sprintf("End-to-end p99, %d subscribers each with a CEL filter, against the unfiltered point (median of %d alternated rounds)", bare.Subscribers, len(filts)),
			Measured:  fmt.Sprintf("per round %s = %s; median %.2f×", strings.Join(filt, ", "), joinRatios(filts), m),
			Reference: fmt.Sprintf("target ≤ %.2f× the unfiltered point of the same round (issue 34)", targetFilteredOverPlain),
			Ratio:     round2(m),
			Holds:     holds(m <= targetFilteredOverPlain),
		})
	}
	return out
}

func joinRatios(fs []float64) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = fmt.Sprintf("%.2f×", f)
	}
	return strings.Join(s, ", ")
}
