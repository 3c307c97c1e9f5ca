package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/klingfan/klingfan/internal/ingest"
	"github.com/klingfan/klingfan/internal/normalize"
	"github.com/klingfan/klingfan/internal/store"
)

// runLogOnly measures the physical limit under klingfan's ingest on this
// machine: conc goroutines appending distinct events (each normalized from
// the same kind of body the load sends, raw body included, as ingest
// stores them) straight to a fresh embedded store with store.Append, no
// HTTP and no signature check, for warmup+dur. klingfan's ingest cannot
// run faster than this; the HMAC-only baseline shows the HTTP side alone.
func (r *runner) runLogOnly(ctx context.Context, conc int) (LoadResult, error) {
	dir, err := newDataDir()
	if err != nil {
		return LoadResult{}, err
	}
	defer r.removeDir(dir)
	s, err := store.Open(ctx, store.Config{DataDir: dir, Logger: r.log})
	if err != nil {
		return LoadResult{}, err
	}
	defer s.Close()
	stop := r.profile(fmt.Sprintf("ingest-log-only-c%d", conc))
	defer stop()

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		samples  [][]int64
		errs     atomic.Int64
		firstErr atomic.Value
		cpu      cpuMeter
		cpuOnce  sync.Once
	)
	start := time.Now()
	measureFrom := start.Add(r.cfg.Warmup)
	stopAt := measureFrom.Add(r.cfg.IngestDuration)
	tag := fmt.Sprintf("log-c%d-%d", conc, start.UnixNano())
	for w := range conc {
		wg.Go(func() {
			local := make([]int64, 0, 4096)
			body := make([]byte, 0, 1024)
			for i := 0; ctx.Err() == nil; i++ {
				prompt := []byte("klingbench log " + tag + " " + strconv.Itoa(w) + " " + strconv.Itoa(i))
				body = appendBody(body[:0], hotJob(w+i), prompt)
				norm, err := normalize.Normalize(body)
				if err != nil {
					firstErr.CompareAndSwap(nil, err.Error())
					errs.Add(1)
					return
				}
				ev := norm.Event
				ev.WebhookId = "default"
				ev.DeliveryId = tag + "-" + strconv.Itoa(w) + "-" + strconv.Itoa(i)
				ev.Id = ingest.EventID(ev.WebhookId, ev.DeliveryId)
				ev.ReceivedAt = timestamppb.Now()
				ev.RawBody = body
				t0 := time.Now()
				if t0.After(stopAt) {
					break
				}
				if !t0.Before(measureFrom) {
					cpuOnce.Do(func() { cpu = startCPU() })
				}
				_, _, err = s.Append(ctx, ev)
				took := time.Since(t0)
				if t0.Before(measureFrom) {
					continue
				}
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				local = append(local, int64(took))
			}
			mu.Lock()
			samples = append(samples, local)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(measureFrom)
	var all []int64
	for _, s := range samples {
		all = append(all, s...)
	}
	lr := LoadResult{
		Concurrency: conc,
		Requests:    len(all),
		Errors:      int(errs.Load()),
		Seconds:     round2(elapsed.Seconds()),
		PerSecond:   float64(int64(float64(len(all)) / elapsed.Seconds())),
		Latency:     percentiles(all),
		Cores:       cpu.cores(),
		OtherCores:  cpu.others(),
	}
	if s, ok := firstErr.Load().(string); ok {
		lr.FirstErr = s
	}
	r.logf("  %-36s c=%-3d %8.0f/s  p50 %6.2f ms  p99 %6.2f ms  errors %d  cores %.2f (others %.2f)",
		"log only (store.Append, no HTTP)", conc, lr.PerSecond, lr.Latency.P50, lr.Latency.P99, lr.Errors, lr.Cores, lr.OtherCores)
	return lr, nil
}
