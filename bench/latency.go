package bench

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// LatencyResult is the end-to-end latency at a fixed event rate with n
// subscribers, each receiving every event.
type LatencyResult struct {
	Subscribers int     `json:"subscribers"`
	Connections int     `json:"connections"`
	Rate        float64 `json:"events_per_second"`
	Events      int     `json:"events"`
	// Latency is from the start of the POST (the probe's embedded send
	// time) to the subscriber reading the event, over every (event,
	// subscriber) pair sent after the warm-up.
	Latency Percentiles `json:"latency"`
	// Post is the ingest answer time of the same POSTs.
	Post Percentiles `json:"post"`
	// DeliveriesPerSecond is events × subscribers received per second
	// over the measured window.
	DeliveriesPerSecond float64 `json:"deliveries_per_second"`
	Missing             int64   `json:"missing"`
	// OutOfOrder counts deliveries whose sequence was not above the
	// subscriber's previous one; Duplicates probes read twice.
	OutOfOrder int64 `json:"out_of_order"`
	Duplicates int64 `json:"duplicates"`
	// Resumes counts streams that ended with an error and were resumed
	// with after_sequence; StreamError is the first such error.
	Resumes     int64   `json:"resumes,omitempty"`
	StreamError string  `json:"stream_error,omitempty"`
	Cores       float64 `json:"cores"`
	// ServerMicrosPerDelivery is this process's CPU time (server and
	// pacer; the subscribers are in the child) over every delivery the
	// child read, in microseconds: a cost that, unlike the latency,
	// hardly depends on what else the machine runs.
	ServerMicrosPerDelivery float64 `json:"server_us_per_delivery"`
	// ClientCores is what the subscribers' child process used.
	ClientCores float64 `json:"client_cores"`
	OtherCores  float64 `json:"other_cores"`
	// Bare marks the bare gRPC fan-out (runBareFanout), not klingfan.
	Bare bool `json:"bare,omitempty"`
	// Filter is the CEL filter every stream carried, if any.
	Filter string `json:"filter,omitempty"`
}

// streamsPerConn is how many subscriber streams share one gRPC
// connection in the latency scenario.
const streamsPerConn = 50

// runLatency measures each subscriber count on a fresh server, then the
// bare gRPC fan-out at the largest count: the limit the largest point is
// held against.
func (r *runner) runLatency(ctx context.Context) ([]LatencyResult, *LatencyResult, error) {
	var out []LatencyResult
	for _, n := range r.cfg.LatencySubscribers {
		lr, err := r.latencyPoint(ctx, n)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, lr)
	}
	bare, err := r.runBareFanout(ctx, slices.Max(r.cfg.LatencySubscribers))
	if err != nil {
		return out, nil, fmt.Errorf("bare gRPC fan-out: %w", err)
	}
	return out, &bare, nil
}

func (r *runner) latencyPoint(ctx context.Context, n int) (LatencyResult, error) {
	return r.latencyPointWith(ctx, n, "")
}

// latencyPointWith measures n subscribers whose streams each carry the CEL
// filter (none when empty).
func (r *runner) latencyPointWith(ctx context.Context, n int, filter string) (LatencyResult, error) {
	with := ""
	if filter != "" {
		with = " with filter " + filter
	}
	r.logf("latency: %d subscriber(s) at %.0f events/s for %s%s", n, r.cfg.Rate, r.cfg.LatencyDuration, with)
	dir, err := newDataDir()
	if err != nil {
		return LatencyResult{}, err
	}
	defer r.removeDir(dir)
	srv, err := startServer(ctx, dir, r.log, nil)
	if err != nil {
		return LatencyResult{}, err
	}
	defer srv.stopLogged()

	warm := int(r.cfg.Rate * r.cfg.Warmup.Seconds())
	total := warm + int(r.cfg.Rate*r.cfg.LatencyDuration.Seconds())
	// The subscribers run in a child process, so that this process's CPU
	// (and the profile) is the server's and the pacer's only.
	child, err := startLatencyChild(ctx, srv.grpcAddr, n, total, warm, filter)
	if err != nil {
		return LatencyResult{}, err
	}
	defer child.close()

	tag := fmt.Sprintf("latency-%d", n)
	if filter != "" {
		tag += "-filter"
	}
	if err := child.say("go"); err != nil {
		return LatencyResult{}, err
	}
	stop := r.profile(tag)
	cpu := startCPU()
	cpuAt := cpuTime()
	posts, firstSend, err := r.pace(ctx, srv.httpURL+"/webhooks/klingai", total, warm)
	if err != nil {
		stop()
		return LatencyResult{}, err
	}
	res, err := r.measured(child, cpu, cpuAt, stop, n, total, warm, firstSend)
	if err != nil {
		return LatencyResult{}, err
	}
	res.Post = percentiles(posts)
	res.Filter = filter
	r.logf("  %5d subs: p50 %6.2f ms  p99 %6.2f ms  p99.9 %6.2f ms  max %6.2f ms  %8.0f deliveries/s  missing %d  out of order %d  duplicates %d  resumed %d  cores %.2f (subscribers %.2f, others %.2f)  %.2f µs/delivery %s",
		n, res.Latency.P50, res.Latency.P99, res.Latency.P999, res.Latency.Max, res.DeliveriesPerSecond, res.Missing, res.OutOfOrder, res.Duplicates, res.Resumes, res.Cores, res.ClientCores, res.OtherCores, res.ServerMicrosPerDelivery, res.StreamError)
	return res, nil
}

// pace POSTs total probes at r.cfg.Rate on an open-loop schedule (a slow
// answer does not delay the next send), each carrying its send time and
// index; the first warm are warm-up. It returns the answer times of the
// measured POSTs and when the first measured probe was sent.
func (r *runner) pace(ctx context.Context, url string, total, warm int) ([]int64, int64, error) {
	const senders = 16
	client := newHTTPClient(senders)
	defer client.CloseIdleConnections()
	jobs := make(chan int)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		posts    []int64
		firstErr error
		first    atomic.Int64
	)
	for range senders {
		wg.Go(func() {
			body := make([]byte, 0, 1024)
			prompt := make([]byte, 0, 64)
			for i := range jobs {
				t0 := time.Now()
				if i == warm {
					first.Store(t0.UnixNano())
				}
				prompt = appendTimePrompt(prompt[:0], t0.UnixNano(), i)
				body = appendBody(body[:0], "kb-e2e-"+strconv.Itoa(i), prompt)
				err := post(ctx, client, url, body)
				took := time.Since(t0)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("bench: probe %d: %w", i, err)
				}
				if i >= warm {
					posts = append(posts, int64(took))
				}
				mu.Unlock()
			}
		})
	}
	interval := time.Duration(float64(time.Second) / r.cfg.Rate)
	start := time.Now()
	for i := range total {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		select {
		case jobs <- i:
		case <-ctx.Done():
			close(jobs)
			wg.Wait()
			return nil, 0, ctx.Err()
		}
	}
	close(jobs)
	wg.Wait()
	return posts, first.Load(), firstErr
}

// perDelivery is used CPU time per delivery, in microseconds.
func perDelivery(used time.Duration, deliveries int64) float64 {
	if deliveries <= 0 {
		return 0
	}
	return round2(float64(used.Microseconds()) / float64(deliveries))
}
