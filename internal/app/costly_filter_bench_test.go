package app_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/config"
	"github.com/klingfan/klingfan/internal/verify"
)

// BenchmarkCostlyFilters measures what streams carrying the costliest CEL
// filter the server accepts do to a plain subscriber beside them: the
// end-to-end latency (start of the POST to the event read) of a plain
// stream, at 50 events/s, in one run without and one with five
// subscribe-token streams, each with a filter of its own (no shared
// verdicts). The events are Kling callbacks with 200 images, and the
// filter iterates over them in a nested loop, so every evaluation runs
// until the cost limit stops it: per unit of cost, comprehension steps
// are the slowest thing a filter can do. It reports both p99s and their
// ratio; run it once: go test -run '^$' -bench CostlyFilters -benchtime 1x
// ./internal/app.
func BenchmarkCostlyFilters(b *testing.B) {
	const (
		rate    = 50
		events  = 300
		streams = 5
	)
	for b.Loop() {
		base := costlyFilterRun(b, 0, rate, events)
		with := costlyFilterRun(b, streams, rate, events)
		b.ReportMetric(percentile(base, 50), "p50-ms-alone")
		b.ReportMetric(percentile(base, 99), "p99-ms-alone")
		b.ReportMetric(percentile(with, 50), "p50-ms-beside-costly")
		b.ReportMetric(percentile(with, 99), "p99-ms-beside-costly")
		b.ReportMetric(percentile(with, 99)/percentile(base, 99), "p99-ratio")
	}
}

// costlyFilterRun starts a server, opens costly streams with the costliest
// accepted filter and one plain stream, posts events at rate and returns
// the plain stream's latencies in milliseconds.
func costlyFilterRun(b *testing.B, costly, rate, events int) []float64 {
	b.Helper()
	const token = "subscribe-only-token-0123456789"
	tokens := filepath.Join(b.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("reader subscribe "+token+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	srv := apptest.Start(b, "", apptest.WithEnv("KLINGAI_WEBHOOK_SECRET", secret),
		apptest.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		apptest.WithConfig(func(c *config.Config) { c.TokensFile = tokens }))
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	reader := gatewayv1.NewEventServiceClient(srv.Dial(b, grpc.WithPerRPCCredentials(apptest.BearerCreds(token))))
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for i := range costly {
		// The prompt never matches (no "z" 21 characters on), so the
		// regex scans the whole prompt; the job id clause makes each
		// source distinct.
		s, err := reader.Subscribe(ctx, &gatewayv1.SubscribeRequest{Filter: fmt.Sprintf(`event.job.prompt.matches("(?s).{2}z") || event.job.job_id == "costly-%d"`, i)})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Header(); err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			for {
				if _, err := s.Recv(); err != nil {
					return
				}
			}
		})
	}
	plain, err := gatewayv1.NewEventServiceClient(srv.DialAdmin(b)).Subscribe(ctx, &gatewayv1.SubscribeRequest{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := plain.Header(); err != nil {
		b.Fatal(err)
	}
	sent := make([]time.Time, events)
	var mu sync.Mutex
	latencies := make([]float64, 0, events)
	received := make(chan struct{})
	wg.Go(func() {
		defer close(received)
		for len(latencies) < events {
			resp, err := plain.Recv()
			if err != nil {
				return
			}
			now := time.Now()
			i, err := strconv.Atoi(strings.TrimPrefix(resp.GetEvent().GetJob().GetJobId(), "p"))
			if err != nil {
				continue
			}
			mu.Lock()
			latencies = append(latencies, float64(now.Sub(sent[i]).Microseconds())/1000)
			mu.Unlock()
		}
	})
	client := &http.Client{Timeout: 30 * time.Second}
	start := time.Now()
	for i := range events {
		// Open loop: each POST at its time, whatever the last one took.
		time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))))
		body := manyImages(fmt.Sprint("p", i), 200)
		req, _ := http.NewRequest(http.MethodPost, srv.HTTPURL+"/webhooks/klingai", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(verify.HeaderKlingSignature, verify.SignKling([]byte(secret), body))
		mu.Lock()
		sent[i] = time.Now()
		mu.Unlock()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("post %d: status %d", i, resp.StatusCode)
		}
	}
	select {
	case <-received:
	case <-time.After(2 * time.Minute):
		b.Fatalf("the plain stream read %d of %d events", len(latencies), events)
	}
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(latencies)
}

// percentile returns the p-th percentile of xs.
func percentile(xs []float64, p float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, int(float64(len(s))*p/100))]
}
