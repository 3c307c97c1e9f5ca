package store_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klingfan/klingfan/internal/store"
)

func BenchmarkAppend(b *testing.B) {
	b.Run("sequential", func(b *testing.B) {
		s := openStore(b, b.TempDir())
		ctx := context.Background()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			if _, _, err := s.Append(ctx, testEvent("wh", fmt.Sprint(i), "job")); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		s := openStore(b, b.TempDir())
		ctx := context.Background()
		var n atomic.Int64
		b.ReportAllocs()
		// Many concurrent webhook deliveries, as under real ingest load.
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := n.Add(1)
				if _, _, err := s.Append(ctx, testEvent("wh", fmt.Sprint(i), "job")); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkRead measures sequential catch-up: reading a 100k-event log from
// the start in pages, the way a lagging subscriber does.
func BenchmarkRead(b *testing.B) {
	const total = 100_000
	s := openStore(b, b.TempDir())
	fill(b, s, total)

	for _, limit := range []int{1000, 10_000} {
		b.Run(fmt.Sprintf("limit=%d", limit), func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				read := 0
				for from := uint64(1); ; {
					evs, next, err := s.Read(ctx, from, limit, nil, nil)
					if err != nil {
						b.Fatal(err)
					}
					if len(evs) == 0 {
						break
					}
					read += len(evs)
					from = next
				}
				if read != total {
					b.Fatalf("read %d events, want %d", read, total)
				}
			}
			b.ReportMetric(float64(total*b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}

// fill appends n events from several goroutines, which is much faster than
// one synchronous publisher.
func fill(b *testing.B, s *store.Store, n int) {
	b.Helper()
	const workers = 64
	var (
		wg   sync.WaitGroup
		next atomic.Int64
		fail atomic.Value
	)
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				if _, _, err := s.Append(context.Background(), testEvent("wh", fmt.Sprint(i), fmt.Sprint("job", i%100))); err != nil {
					fail.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, ok := fail.Load().(error); ok {
		b.Fatalf("fill: %v", err)
	}
}

// BenchmarkAppendSync compares the two fsync policies under 16 concurrent
// appends, as under ingest load: sync=always (each append waits for an
// fsync, concurrent ones share it) against sync=interval. Run the pair
// together and compare their ns/op: the machine is shared.
func BenchmarkAppendSync(b *testing.B) {
	for _, always := range []bool{false, true} {
		name := map[bool]string{false: "sync=interval", true: "sync=always"}[always]
		b.Run(name, func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			s, err := store.Open(ctx, store.Config{DataDir: b.TempDir(), SyncAlways: always, Logger: discard})
			cancel()
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close() })
			var n atomic.Int64
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					if _, _, err := s.Append(context.Background(), testEvent("wh", fmt.Sprint(i), "job")); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
