package outcome_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/outcome"
	"github.com/klingfan/klingfan/internal/store"
)

// BenchmarkTerminalAppend measures what the guard adds to a job's
// completion: each iteration logs submitted and processing for a new job
// through the store, then its terminal status through the guard (guarded)
// or the store (plain).
func BenchmarkTerminalAppend(b *testing.B) {
	for _, guarded := range []bool{false, true} {
		b.Run(fmt.Sprintf("guarded=%v", guarded), func(b *testing.B) {
			ctx := context.Background()
			st, err := store.Open(ctx, store.Config{DataDir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			g, err := outcome.New(ctx, outcome.Config{Log: st, Store: st})
			if err != nil {
				b.Fatal(err)
			}
			var terminal time.Duration
			for i := 0; b.Loop(); i++ {
				job := fmt.Sprintf("job%d", i)
				for j, s := range []gatewayv1.JobStatus{gatewayv1.JobStatus_JOB_STATUS_SUBMITTED, gatewayv1.JobStatus_JOB_STATUS_PROCESSING} {
					if _, _, err := st.Append(ctx, event(job, fmt.Sprintf("%s-%d", job, j), s)); err != nil {
						b.Fatal(err)
					}
				}
				ev := event(job, job+"-done", gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED)
				start := time.Now()
				if guarded {
					_, _, err = g.Append(ctx, ev)
				} else {
					_, _, err = st.Append(ctx, ev)
				}
				if err != nil {
					b.Fatal(err)
				}
				terminal += time.Since(start)
			}
			b.ReportMetric(float64(terminal.Microseconds())/float64(b.N), "µs/terminal")
		})
	}
}
