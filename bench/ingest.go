package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/klingfan/klingfan/internal/config"
)

// IngestRun is klingfan's ingest in one configuration at one concurrency,
// next to the baseline handler measured just before it: the machine is
// shared, so each ratio compares two runs taken under the same
// conditions.
type IngestRun struct {
	Mode        string `json:"mode"`
	Concurrency int    `json:"concurrency"`
	Subscribers int    `json:"subscribers"`
	// Filtered subscribers each match 1% of events (one job id of the
	// hundred the load cycles through); otherwise each receives every
	// event.
	Filtered   bool       `json:"filtered"`
	SyncAlways bool       `json:"sync_always"`
	Klingfan   LoadResult `json:"klingfan"`
	Baseline   LoadResult `json:"baseline"`
	// Ratio is klingfan's deliveries per second over the baseline's.
	Ratio float64 `json:"ratio"`
	// LogOnly, measured next to the runs without subscribers and those
	// whose subscribers receive every event, is the store's append rate
	// alone in the point's sync mode (runLogOnly): the physical limit
	// under ingest. LogRatio is klingfan's rate over it.
	LogOnly  *LoadResult `json:"log_only,omitempty"`
	LogRatio float64     `json:"log_ratio,omitempty"`
	// FanoutOnly, measured next to the runs whose subscribers receive
	// every event, is the bare gRPC fan-out to as many subscribers of this
	// process alone (runFanoutAlone): what those rows' sends cost at least.
	FanoutOnly *LoadResult `json:"fanout_only,omitempty"`
	// Ceiling is the ratio to the baseline that the CPU per delivery of
	// the baseline, the log alone and (with subscribers) the fan-out alone
	// allow together (cpuCeiling); OfCeiling is Ratio over it.
	Ceiling   float64 `json:"ceiling,omitempty"`
	OfCeiling float64 `json:"of_ceiling,omitempty"`
	// ProjectionLag is how many accepted events the job projection had
	// not folded yet when the point's load stopped. Work it defers past
	// the measured window would flatter the rate, so each point then waits
	// for it to catch up before the next one starts.
	ProjectionLag int64 `json:"projection_lag"`
}

// Ingest modes.
const (
	ModeDurable       = "durable"          // --sync interval, subscribers receive every event
	ModeFiltered      = "durable-filtered" // --sync interval, subscribers match 1% each
	ModeSyncAlways    = "sync-always"      // --sync always (the default), subscribers receive every event
	ModeNoSubscribers = "no-subscribers"   // --sync interval, nobody subscribed
	// --sync always (the default), nobody subscribed.
	ModeNoSubscribersAlways = "no-subscribers-sync-always"
)

// IngestModes lists the ingest modes in the order runIngest measures them.
var IngestModes = []string{ModeDurable, ModeFiltered, ModeSyncAlways, ModeNoSubscribers, ModeNoSubscribersAlways}

// ingestSubscribers is how many live subscribers drain during durable
// ingest, as the issue asks.
const ingestSubscribers = 100

// runIngest measures each mode on a fresh server and data directory, each
// point paired with a baseline run.
func (r *runner) runIngest(ctx context.Context) ([]IngestRun, error) {
	base, err := startBaseline()
	if err != nil {
		return nil, err
	}
	defer base.stop()
	var out []IngestRun
	for _, m := range []IngestRun{
		{Mode: ModeDurable, Subscribers: ingestSubscribers},
		{Mode: ModeFiltered, Subscribers: ingestSubscribers, Filtered: true},
		{Mode: ModeSyncAlways, Subscribers: ingestSubscribers, SyncAlways: true},
		{Mode: ModeNoSubscribers},
		{Mode: ModeNoSubscribersAlways, SyncAlways: true},
	} {
		if len(r.cfg.IngestModes) > 0 && !slices.Contains(r.cfg.IngestModes, m.Mode) {
			continue
		}
		runs, err := r.ingestMode(ctx, base, m)
		if err != nil {
			return out, fmt.Errorf("%s: %w", m.Mode, err)
		}
		out = append(out, runs...)
	}
	return out, nil
}

func (r *runner) ingestMode(ctx context.Context, base *baseline, m IngestRun) ([]IngestRun, error) {
	mode, subs := m.Mode, m.Subscribers
	r.logf("ingest: klingfan %s, %d live subscribers", mode, subs)
	dir, err := newDataDir()
	if err != nil {
		return nil, err
	}
	defer r.removeDir(dir)
	srv, err := startServer(ctx, dir, r.log, func(c *config.Config) { c.SyncAlways = m.SyncAlways })
	if err != nil {
		return nil, err
	}
	defer srv.stopLogged()
	var sub *subscribers
	perEvent := int64(subs) // deliveries each accepted event makes
	if subs > 0 {
		req := everyEvent
		if m.Filtered {
			req, perEvent = oneJob, int64(subs/hotJobs)
		}
		sub, err = startSubscribers(ctx, srv.grpcAddr, subs, 25, req, nil)
		if err != nil {
			return nil, err
		}
		defer sub.close()
	}
	var (
		out        []IngestRun
		wantPerSub int64
		appended   int64 // events in the log: every accepted delivery so far
	)
	for _, c := range r.cfg.Concurrency {
		run := m
		run.Concurrency = c
		run.Baseline = r.load(ctx, fmt.Sprintf("ingest-baseline-for-%s-c%d", mode, c), base.url+"/webhooks/klingai", c, "base")
		run.Klingfan = r.load(ctx, fmt.Sprintf("ingest-%s-c%d", mode, c), srv.httpURL+"/webhooks/klingai", c, mode)
		run.Ratio = ratio(run.Klingfan.PerSecond, run.Baseline.PerSecond)
		appended += run.Klingfan.accepted
		folded, err := scrapeGauge(ctx, srv.httpURL, "klingfan_jobs_folded_sequence")
		if err != nil {
			return out, err
		}
		run.ProjectionLag = max(0, appended-folded)
		r.logf("  job projection %d events behind when the load stopped", run.ProjectionLag)
		if err := waitFolded(ctx, srv, uint64(appended)); err != nil {
			return out, err
		}
		if sub != nil {
			// Every accepted event must reach every subscriber; wait for
			// the fan-out to finish before the next point starts.
			wantPerSub += run.Klingfan.accepted
			want := wantPerSub * perEvent
			t0 := time.Now()
			_ = waitFor(ctx, 60*time.Second, func() bool { return sub.received.Load() >= want })
			k := &run.Klingfan
			k.Subscribers = subs
			k.DrainSeconds = round2(time.Since(t0).Seconds())
			k.Missing = max(0, want-sub.received.Load())
			k.Resumes = sub.resumes.Swap(0)
			k.StreamError = sub.streamErr()
			r.logf("  %d subscribers drained %.2fs after the last answer; missing %d, resumed streams %d %s",
				subs, k.DrainSeconds, k.Missing, k.Resumes, k.StreamError)
			if err := sub.err(); err != nil {
				return out, err
			}
		}
		// The limits under the point, measured once its events are
		// delivered: the log alone (in the point's sync mode) and, when
		// every subscriber receives every event, the bare fan-out to as
		// many subscribers.
		if subs == 0 || !m.Filtered {
			lo, err := r.runLogOnly(ctx, c, m.SyncAlways)
			if err != nil {
				return out, err
			}
			run.LogOnly, run.LogRatio = &lo, ratio(run.Klingfan.PerSecond, lo.PerSecond)
			parts := []LoadResult{lo}
			if subs > 0 {
				fo, err := r.runFanoutAlone(ctx, subs)
				if err != nil {
					return out, err
				}
				run.FanoutOnly = &fo
				parts = append(parts, fo)
			}
			if run.Ceiling = cpuCeiling(run.Baseline, parts...); run.Ceiling > 0 {
				run.OfCeiling = round2(run.Ratio / run.Ceiling)
			}
		}
		if run.Ceiling > 0 {
			r.logf("  ratio %.2f; the parts' CPU allows %.2f: klingfan at %.2f of it", run.Ratio, run.Ceiling, run.OfCeiling)
		} else {
			r.logf("  ratio %.2f", run.Ratio)
		}
		out = append(out, run)
	}
	return out, nil
}

// ceiling is Ceiling, or for a results file written before it was
// recorded, the ceiling of the baseline and the log alone.
func (ir IngestRun) ceiling() float64 {
	if ir.Ceiling > 0 || ir.LogOnly == nil {
		return ir.Ceiling
	}
	return cpuCeiling(ir.Baseline, *ir.LogOnly)
}

// load runs one load point, with a CPU profile when asked for.
func (r *runner) load(ctx context.Context, name, url string, conc int, tag string) LoadResult {
	stop := r.profile(name)
	lr := runLoad(ctx, url, conc, r.cfg.Warmup, r.cfg.IngestDuration, fmt.Sprintf("%s-c%d-%d", tag, conc, time.Now().UnixNano()))
	stop()
	r.logf("  %-36s c=%-3d %8.0f/s  p50 %6.2f ms  p99 %6.2f ms  errors %d  cores %.2f (others %.2f)",
		name, conc, lr.PerSecond, lr.Latency.P50, lr.Latency.P99, lr.Errors, lr.Cores, lr.OtherCores)
	return lr
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return round2(a / b)
}
