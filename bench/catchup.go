package bench

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/ingest"
	"github.com/klingfan/klingfan/internal/normalize"
	"github.com/klingfan/klingfan/internal/registry"
	"github.com/klingfan/klingfan/internal/store"
)

// StartupResult is how long klingfan takes to become ready on a full log.
type StartupResult struct {
	Events       int     `json:"events"`
	DiskBytes    int64   `json:"disk_bytes"`
	FillSeconds  float64 `json:"fill_seconds"`
	FillPerSec   float64 `json:"fill_per_second"`
	ReadySeconds float64 `json:"ready_seconds"`
	// ReadyOutsideWindowSeconds is the same start-up once no stored event
	// is inside the dedup window any more (see startOutsideWindow).
	ReadyOutsideWindowSeconds float64 `json:"ready_outside_window_seconds,omitempty"`
	// DedupWindow is the server's default --dedup-window.
	DedupWindow string `json:"dedup_window,omitempty"`
}

// CatchUpResult is one subscriber resuming far behind the head.
type CatchUpResult struct {
	Events            int     `json:"events"`
	Seconds           float64 `json:"seconds"`
	FirstEventSeconds float64 `json:"first_event_seconds"`
	PerSecond         float64 `json:"events_per_second"`
	// OutOfOrder counts events that did not follow their predecessor's
	// sequence (gaps or duplicates); must be 0.
	OutOfOrder int     `json:"out_of_order"`
	Cores      float64 `json:"cores"`
	OtherCores float64 `json:"other_cores"`
	// CPUMicrosPerEvent is the process's CPU time (server and subscriber)
	// over the events: on a shared machine it moves less than the rate.
	CPUMicrosPerEvent float64 `json:"cpu_us_per_event"`
	// AllocBytesPerEvent and AllocsPerEvent are the process's heap
	// allocations over the events, GCCycles its collections meanwhile.
	AllocBytesPerEvent float64 `json:"alloc_bytes_per_event"`
	AllocsPerEvent     float64 `json:"allocs_per_event"`
	GCCycles           uint64  `json:"gc_cycles"`
	// Raw is a bare JetStream ordered consumer reading the same events,
	// before the server started and after it stopped; RawPerSecond is
	// their mean and Ratio the catch-up's rate against it.
	Raw          []ReplayResult `json:"raw_replay,omitempty"`
	RawPerSecond float64        `json:"raw_replay_events_per_second,omitempty"`
	Ratio        float64        `json:"ratio_to_raw_replay,omitempty"`
	// CPURatio is the raw replay's CPU per event over the catch-up's: the
	// same comparison as Ratio, in the figure a shared machine disturbs least.
	CPURatio float64 `json:"cpu_ratio_to_raw_replay,omitempty"`
}

// fillWorkers is how many goroutines append concurrently while filling a
// log: JetStream acknowledges each append, so throughput comes from
// having many in flight.
const fillWorkers = 256

// runStartupAndCatchUp fills a fresh log with r.cfg.StartupEvents events
// through store.Append (the server is not running), times app.Run until
// /readyz answers 200, then resumes one subscriber CatchUpEvents back.
func (r *runner) runStartupAndCatchUp(ctx context.Context, doStartup, doCatchUp bool) (*StartupResult, *CatchUpResult, error) {
	events := r.cfg.StartupEvents
	if !doStartup {
		events = r.cfg.CatchUpEvents
	}
	events = max(events, r.cfg.CatchUpEvents)
	dir, err := newDataDir()
	if err != nil {
		return nil, nil, err
	}
	defer r.removeDir(dir)

	r.logf("start-up: filling a fresh log with %d events", events)
	fillTook, err := fillLog(ctx, dir, events)
	if err != nil {
		return nil, nil, err
	}
	st := &StartupResult{
		Events:      events,
		DiskBytes:   dirSize(dir),
		FillSeconds: round2(fillTook.Seconds()),
		FillPerSec:  float64(int64(float64(events) / fillTook.Seconds())),
	}
	r.logf("  filled in %.1fs (%.0f events/s, %.0f MiB on disk)", st.FillSeconds, st.FillPerSec, float64(st.DiskBytes)/(1<<20))

	var raw []ReplayResult
	if doCatchUp {
		rr, err := r.rawReplay(ctx, dir, uint64(events), r.cfg.CatchUpEvents, "raw-replay-before")
		if err != nil {
			return nil, nil, err
		}
		raw = append(raw, *rr)
	}

	stop := r.profile("startup")
	srv, err := startServer(ctx, dir, r.log, nil)
	stop()
	if err != nil {
		return nil, nil, err
	}
	defer srv.stopLogged()
	st.ReadySeconds = round2(srv.ready.Seconds())
	r.logf("  ready in %.2fs with %d stored events", st.ReadySeconds, events)
	var cu *CatchUpResult
	if doCatchUp {
		if cu, err = r.catchUp(ctx, srv, uint64(events), r.cfg.CatchUpEvents); err != nil {
			return nil, nil, err
		}
	}
	if err := srv.stop(); err != nil {
		return nil, nil, err
	}
	if doCatchUp {
		rr, err := r.rawReplay(ctx, dir, uint64(events), r.cfg.CatchUpEvents, "raw-replay-after")
		if err != nil {
			return nil, nil, err
		}
		cu.setRaw(append(raw, *rr))
		r.logf("  raw JetStream replay %.0f events/s (mean of before and after); catch-up is %.2f× that, %.2f× in CPU per event", cu.RawPerSecond, cu.Ratio, cu.CPURatio)
	}
	if !doStartup {
		return nil, cu, nil
	}
	if err := r.startOutsideWindow(ctx, dir, st); err != nil {
		return nil, cu, err
	}
	return st, cu, nil
}

// rawReplay measures the bare JetStream replay of the n events before
// last, profiled as name.
func (r *runner) rawReplay(ctx context.Context, dir string, last uint64, n int, name string) (*ReplayResult, error) {
	rr, err := rawReplay(ctx, dir, last-uint64(n), n, func() func() { return r.profile(name) })
	if err != nil {
		return nil, err
	}
	r.logf("  raw JetStream ordered replay: %d events in %.2fs = %.0f events/s (%.0f MiB/s, others %.2f cores, %.1f µs CPU, %.0f B and %.1f allocations per event, %d GCs)",
		n, rr.Seconds, rr.PerSecond, rr.MiBPerSecond, rr.OtherCores, rr.CPUMicrosPerEvent, rr.AllocBytesPerEvent, rr.AllocsPerEvent, rr.GCCycles)
	return rr, nil
}

// setRaw records the raw replays and the catch-up's ratio to their mean.
func (c *CatchUpResult) setRaw(raw []ReplayResult) {
	c.Raw = raw
	var sum float64
	for _, rr := range raw {
		sum += rr.PerSecond
	}
	c.RawPerSecond = float64(int64(sum / float64(len(raw))))
	if c.RawPerSecond > 0 {
		c.Ratio = round2(c.PerSecond / c.RawPerSecond)
	}
	var cpu float64
	for _, rr := range raw {
		cpu += rr.CPUMicrosPerEvent
	}
	if c.CPUMicrosPerEvent > 0 {
		c.CPURatio = round2(cpu / float64(len(raw)) / c.CPUMicrosPerEvent)
	}
}

// catchUp resumes one subscriber n events behind last and times the
// replay until it has received last.
func (r *runner) catchUp(ctx context.Context, srv *server, last uint64, n int) (*CatchUpResult, error) {
	r.logf("catch-up: one subscriber resuming %d events back", n)
	// The job projection folds the whole log after a start; time the
	// resume once it is done, as a resume long after start-up would run.
	if err := waitFolded(ctx, srv, last); err != nil {
		return nil, err
	}
	conns, err := dialConns(ctx, srv.grpcAddr, 1)
	if err != nil {
		return nil, err
	}
	defer closeConns(conns)
	after := last - uint64(n)
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()

	stop := r.profile("catch-up")
	defer stop()
	cpu := startCPU()
	start := time.Now()
	st, _, err := openStream(sctx, conns[0], &gatewayv1.SubscribeRequest{Start: &gatewayv1.SubscribeRequest_AfterSequence{AfterSequence: after}})
	if err != nil {
		return nil, err
	}
	res := &CatchUpResult{Events: n}
	prev := after
	var m rawMsg
	for prev < last {
		if err := st.RecvMsg(&m); err != nil {
			return nil, fmt.Errorf("bench: catch-up stream after %d of %d events: %w", prev-after, n, err)
		}
		f := parseFrame(m.b)
		if prev == after {
			res.FirstEventSeconds = round2(time.Since(start).Seconds())
		}
		if f.seq != prev+1 {
			res.OutOfOrder++
		}
		prev = max(prev, f.seq)
	}
	took := time.Since(start)
	res.Cores, res.OtherCores = cpu.cores(), cpu.others()
	res.CPUMicrosPerEvent = round2(cpu.used().Seconds() * 1e6 / float64(n))
	res.AllocBytesPerEvent, res.AllocsPerEvent, res.GCCycles = cpu.allocs(n)
	res.Seconds = round2(took.Seconds())
	res.PerSecond = float64(int64(float64(n) / took.Seconds()))
	r.logf("  %d events in %.2fs = %.0f events/s (first after %.2fs, out of order %d, cores %.2f, others %.2f, %.1f µs CPU, %.0f B and %.1f allocations per event, %d GCs)",
		n, res.Seconds, res.PerSecond, res.FirstEventSeconds, res.OutOfOrder, res.Cores, res.OtherCores, res.CPUMicrosPerEvent, res.AllocBytesPerEvent, res.AllocsPerEvent, res.GCCycles)
	return res, nil
}

// fillLog appends n realistic events to a log in dir, with the server not
// running, and closes it.
func fillLog(ctx context.Context, dir string, n int) (time.Duration, error) {
	s, err := store.Open(ctx, store.Config{DataDir: dir, Logger: quietLogger()})
	if err != nil {
		return 0, err
	}
	defer s.Close()

	// A few hundred distinct jobs, parsed once like ingest would; events
	// share them, as the hub shares event contents.
	const jobs = 512
	type template struct {
		job  *gatewayv1.Job
		body []byte
		ev   *gatewayv1.Event
	}
	tmpl := make([]template, jobs)
	for i := range tmpl {
		body := appendBody(nil, "kb-fill-"+strconv.Itoa(i), []byte("A corgi surfing a turquoise wave at golden hour, cinematic, slow motion"))
		ev, err := normalize.Parse(body)
		if err != nil {
			return 0, err
		}
		tmpl[i] = template{job: ev.GetJob(), body: body, ev: ev}
	}
	received := timestamppb.Now()

	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		firstErr atomic.Pointer[error]
	)
	start := time.Now()
	for range fillWorkers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(n) || firstErr.Load() != nil || ctx.Err() != nil {
					return
				}
				t := tmpl[i%jobs]
				delivery := "fill-" + strconv.FormatInt(i, 10)
				ev := &gatewayv1.Event{
					Id:           ingest.EventID(registry.DefaultID, delivery),
					Type:         t.ev.GetType(),
					RawType:      t.ev.GetRawType(),
					WebhookId:    registry.DefaultID,
					OccurredAt:   t.ev.GetOccurredAt(),
					ReceivedAt:   received,
					DeliveryId:   delivery,
					SourceFormat: t.ev.GetSourceFormat(),
					Job:          t.job,
					RawBody:      t.body,
				}
				if err := appendRetrying(ctx, s, ev); err != nil {
					err = fmt.Errorf("bench: fill event %d: %w", i, err)
					firstErr.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if p := firstErr.Load(); p != nil {
		return 0, *p
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := s.Close(); err != nil {
		return 0, err
	}
	return took, nil
}

// appendRetrying appends ev, retrying a few times when the log is
// unavailable (an acknowledgement timeout on a machine shared with other
// work): a retry of the same event is recognised as a duplicate, so the
// log still holds every event once.
func appendRetrying(ctx context.Context, s *store.Store, ev *gatewayv1.Event) error {
	var err error
	for range 5 {
		if _, _, err = s.Append(ctx, ev); err == nil || !errors.Is(err, store.ErrUnavailable) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// dirSize sums the sizes of the regular files under dir.
func dirSize(dir string) int64 {
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total
}
