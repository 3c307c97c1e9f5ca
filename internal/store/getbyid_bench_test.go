package store_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/klingfan/klingfan/internal/store"
)

// BenchmarkGetByID measures GetEvent's lookup by id as the log grows, each
// event on its own job (the worst case for the wildcard lookup, whose
// subject has a wildcard in the job position): "index" through the id
// index, then "wildcard" with the index purged, which is the lookup
// GetByID made before the index existed (and still makes for ids the
// index lacks). KLINGFAN_BENCH_GETBYID_MAX adds a larger size (1000000
// takes a few minutes to fill):
//
//	KLINGFAN_BENCH_GETBYID_MAX=1000000 go test -run '^$' -bench GetByID -benchtime 200x ./internal/store/
func BenchmarkGetByID(b *testing.B) {
	sizes := []int{10_000, 100_000}
	if v := os.Getenv("KLINGFAN_BENCH_GETBYID_MAX"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatalf("KLINGFAN_BENCH_GETBYID_MAX=%q: %v", v, err)
		}
		if n > 100_000 {
			sizes = append(sizes, n)
		}
	}
	for _, total := range sizes {
		b.Run(fmt.Sprintf("events=%d", total), func(b *testing.B) {
			s := openStore(b, b.TempDir())
			fillJobs(b, s, total)
			waitIndexed(b, s, uint64(total))
			ctx := context.Background()
			lookups := func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					i++
					id := "wh_" + strconv.Itoa(1+(i*7919)%total)
					ev, err := s.GetByID(ctx, id)
					if err != nil {
						b.Fatal(err)
					}
					if ev.GetId() != id {
						b.Fatalf("GetByID(%s) = %s", id, ev.GetId())
					}
				}
			}
			b.Run("path=index", lookups)
			idx, err := s.JetStream().Stream(ctx, store.IDIndexStreamName)
			if err != nil {
				b.Fatal(err)
			}
			if err := idx.Purge(ctx); err != nil {
				b.Fatal(err)
			}
			b.Run("path=wildcard", lookups)
		})
	}
}

// fillJobs appends n events, event i on job "job<i>", from several
// goroutines.
func fillJobs(b *testing.B, s *store.Store, n int) {
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
				if _, _, err := s.Append(context.Background(), testEvent("wh", strconv.FormatInt(i, 10), "job"+strconv.FormatInt(i, 10))); err != nil {
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
