package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// A loopWorker is one closed-loop client: prepare builds its i-th request
// (not timed; an error ends the worker and counts once), call sends it and
// is timed.
type loopWorker struct {
	prepare func(i int) error
	call    func() error
}

// closedLoop keeps conc workers (newWorker(w) for w in [0, conc)) each
// with one call in flight for warmup+dur and measures the calls started
// after the warm-up: their rate, latency, errors and the process's CPU.
// The ingest load and the log-alone limit are both measured with it, so
// their figures compare.
func closedLoop(ctx context.Context, conc int, warmup, dur time.Duration, newWorker func(w int) loopWorker) LoadResult {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		samples  [][]int64
		errs     atomic.Int64
		firstErr atomic.Value
		cpu      cpuMeter
		cpuOnce  sync.Once
	)
	fail := func(err error) {
		errs.Add(1)
		firstErr.CompareAndSwap(nil, err.Error())
	}
	measureFrom := time.Now().Add(warmup)
	stopAt := measureFrom.Add(dur)
	for w := range conc {
		wg.Go(func() {
			worker := newWorker(w)
			local := make([]int64, 0, 4096)
			defer func() {
				mu.Lock()
				samples = append(samples, local)
				mu.Unlock()
			}()
			for i := 0; ctx.Err() == nil; i++ {
				if err := worker.prepare(i); err != nil {
					fail(err)
					return
				}
				t0 := time.Now()
				if t0.After(stopAt) {
					return
				}
				if !t0.Before(measureFrom) {
					cpuOnce.Do(func() { cpu = startCPU() })
				}
				err := worker.call()
				took := time.Since(t0)
				if t0.Before(measureFrom) {
					continue
				}
				if err != nil {
					fail(err)
					continue
				}
				local = append(local, int64(took))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(measureFrom)
	var all []int64
	for _, s := range samples {
		all = append(all, s...)
	}
	r := LoadResult{
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
		r.FirstErr = s
	}
	return r
}
