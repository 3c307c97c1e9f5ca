package hub_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/hub"
)

// BenchmarkFanoutFilter is the hub's part of klingbench's filter point: 1,000
// subscriptions, each drained by its own goroutine as Subscribe's are, and
// events published at a fixed rate. "none" is the unfiltered fan-out; "cel"
// gives every stream the same CEL filter, which every event matches (the
// klingbench filter); "narrow" the same number of streams with a CEL filter
// that matches 1% of events, so most of what they are handed is dropped.
// Latency runs from Publish to the stream's Next returning the event.
//
// Reported: p50 and p99 of that latency over every (event, stream) pair,
// µs of process CPU per published event, and catch-ups per event (streams
// that overflowed their buffer). Compare "cel" with "none" of the same run.
func BenchmarkFanoutFilter(b *testing.B) {
	const (
		subs  = 1000
		rate  = 1000 // events/s
		total = 2000
	)
	for _, c := range []struct{ name, filter string }{
		{"none", ""},
		{"cel", `event.job.model == "kling-v2-1-master" && event.job.kind == JOB_KIND_VIDEO`},
		{"narrow", `event.job.job_id == "job-07"`},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				fanoutFilterRun(b, subs, rate, total, c.filter)
			}
		})
	}
}

func fanoutFilterRun(b *testing.B, subs, rate, total int, filter string) {
	b.Helper()
	log := &benchLog{}
	reg := prometheus.NewRegistry()
	h := hub.New(hub.Config{Log: log, Registerer: reg})
	defer h.Close()
	f, err := hub.FilterOf(&gatewayv1.SubscribeRequest{Filter: filter})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sent := make([]atomic.Int64, total+1) // publish time by sequence
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		latencies []time.Duration
	)
	for range subs {
		sub, err := h.Subscribe(ctx, f, hub.Start{}, false)
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			defer sub.Close()
			var mine []time.Duration
			for {
				it, err := sub.Next(ctx)
				if err != nil {
					break
				}
				seq := it.Sequence()
				mine = append(mine, time.Duration(time.Now().UnixNano()-sent[seq].Load()))
				if seq == uint64(total) {
					break
				}
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			mu.Unlock()
		})
	}
	events := make([]*gatewayv1.Event, total+1)
	for seq := 1; seq <= total; seq++ {
		events[seq] = benchEvent(uint64(seq))
		// The last event reaches every stream, so every drainer ends.
		if seq == total {
			events[seq].Job = benchJobList[7]
		}
	}
	before := processCPU(b)
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for seq := 1; seq <= total; seq++ {
		if d := time.Until(start.Add(time.Duration(seq) * interval)); d > 0 {
			time.Sleep(d)
		}
		sent[seq].Store(time.Now().UnixNano())
		h.Publish(events[seq])
		log.published.Store(uint64(seq))
	}
	wg.Wait()
	used := processCPU(b) - before
	slices.Sort(latencies)
	at := func(p float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
	b.ReportMetric(float64(used.Microseconds())/float64(total), "cpu-µs/event")
	b.ReportMetric(counterValue(b, reg, "klingfan_hub_catchups_total")/float64(total), "catchups/event")
	b.ReportMetric(float64(len(latencies))/float64(total), "deliveries/event")
}

// processCPU is the process's user and system CPU time so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
