package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klingfan/klingfan/internal/store"
)

// ReplayResult is the physical limit a catch-up is compared with: a bare
// JetStream ordered consumer reading the same events of the same stream,
// through the same in-process connection klingfan's store uses, touching
// each message's bytes and sequence and nothing more.
type ReplayResult struct {
	Events    int     `json:"events"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"events_per_second"`
	// MiBPerSecond is the stored bytes read per second.
	MiBPerSecond float64 `json:"mib_per_second"`
	// CPUMicrosPerEvent is the process's CPU time (the embedded server and
	// the consumer) over the events; OtherCores is what the rest of the
	// machine used meanwhile.
	CPUMicrosPerEvent float64 `json:"cpu_us_per_event"`
	OtherCores        float64 `json:"other_cores"`
	// AllocBytesPerEvent and AllocsPerEvent are the process's heap
	// allocations over the events, GCCycles its collections meanwhile.
	AllocBytesPerEvent float64 `json:"alloc_bytes_per_event"`
	AllocsPerEvent     float64 `json:"allocs_per_event"`
	GCCycles           uint64  `json:"gc_cycles"`
}

// replayPullBatch is the raw consumer's pull batch: the size klingfan's
// own catch-up reads use at most.
const replayPullBatch = 2048

// rawReplay opens the log in dir (the server not running) and reads the n
// events after sequence after with one ordered consumer, as fast as
// JetStream hands them out. profile starts a CPU profile of the read and
// returns what stops it.
func rawReplay(ctx context.Context, dir string, after uint64, n int, profile func() func()) (*ReplayResult, error) {
	s, err := store.Open(ctx, store.Config{DataDir: dir, Logger: quietLogger()})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	stream, err := s.JetStream().Stream(ctx, store.StreamName)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	stopProfile := profile()
	defer stopProfile()
	cpu := startCPU()
	start := time.Now()
	cons, err := stream.OrderedConsumer(rctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   after + 1,
	})
	if err != nil {
		return nil, err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(replayPullBatch))
	if err != nil {
		return nil, err
	}
	defer it.Stop()
	stop := context.AfterFunc(rctx, it.Stop)
	defer stop()
	var bytes int64
	prev := after
	for prev < after+uint64(n) {
		msg, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("bench: raw replay after %d of %d events: %w", prev-after, n, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return nil, err
		}
		if md.Sequence.Stream != prev+1 {
			return nil, fmt.Errorf("bench: raw replay read sequence %d after %d", md.Sequence.Stream, prev)
		}
		prev = md.Sequence.Stream
		bytes += int64(len(msg.Data()))
	}
	took := time.Since(start)
	allocBytes, allocs, cycles := cpu.allocs(n)
	return &ReplayResult{
		AllocBytesPerEvent: allocBytes,
		AllocsPerEvent:     allocs,
		GCCycles:           cycles,
		Events:             n,
		Seconds:            round2(took.Seconds()),
		PerSecond:          float64(int64(float64(n) / took.Seconds())),
		MiBPerSecond:       round2(float64(bytes) / (1 << 20) / took.Seconds()),
		CPUMicrosPerEvent:  round2(cpu.used().Seconds() * 1e6 / float64(n)),
		OtherCores:         cpu.others(),
	}, nil
}

// catchUpCheck is the summary row of the catch-up: both the absolute rate
// and the share of the raw replay measured in the same run must hold.
func catchUpCheck(c *CatchUpResult) Check {
	ref := fmt.Sprintf("≥ %d events/s", targetCatchUpPerSec)
	ok := c.OutOfOrder == 0 && c.PerSecond >= targetCatchUpPerSec
	if c.RawPerSecond > 0 {
		ref = fmt.Sprintf("raw JetStream ordered replay %.0f events/s; target ≥ %.1f× and %s", c.RawPerSecond, targetCatchUpRatio, ref)
		ok = ok && c.Ratio >= targetCatchUpRatio
	}
	measured := fmt.Sprintf("%.0f events/s (%.2f s)", c.PerSecond, c.Seconds)
	if c.OutOfOrder > 0 {
		measured += fmt.Sprintf("; %d OUT OF ORDER", c.OutOfOrder)
	}
	return Check{
		Figure:    fmt.Sprintf("Catch-up, one subscriber resuming %d events back", c.Events),
		Measured:  measured,
		Reference: ref,
		Ratio:     c.Ratio,
		Holds:     holds(ok),
	}
}

// writeRawReplay adds the raw replay baseline to the report's catch-up
// section.
func writeRawReplay(p func(string, ...any), c *CatchUpResult) {
	if len(c.Raw) == 0 {
		return
	}
	p("- Baseline: a bare JetStream ordered consumer (pull batch %d, the store's own in-process connection, server not running) reading the same %d events, once before klingfan started and once after it stopped:", replayPullBatch, c.Events)
	for _, rr := range c.Raw {
		p(" %.0f events/s (%.0f MiB/s; per event %.0f heap bytes and %.1f allocations);", rr.PerSecond, rr.MiBPerSecond, rr.AllocBytesPerEvent, rr.AllocsPerEvent)
	}
	p(" mean %.0f events/s. Catch-up reaches %.2f× of it.", c.RawPerSecond, c.Ratio)
	if c.CPURatio > 0 {
		var cpu float64
		for _, rr := range c.Raw {
			cpu += rr.CPUMicrosPerEvent
		}
		p(" In CPU time per event (the figure a shared machine disturbs least): %.1f µs for the raw replay, %.1f µs for the catch-up, %.2f×.", cpu/float64(len(c.Raw)), c.CPUMicrosPerEvent, c.CPURatio)
	}
	p("\n")
}

// waitFolded waits until the server's job projection has folded the log up
// to last, polling its gauge.
func waitFolded(ctx context.Context, srv *server, last uint64) error {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		v, err := scrapeGauge(ctx, srv.httpURL, "klingfan_jobs_folded_sequence")
		if err == nil && uint64(v) >= last {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: job projection at %d of %d after 5m (last scrape: %w)", v, last, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond): // polling a gauge, not ordering events
		}
	}
}
