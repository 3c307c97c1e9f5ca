package bench

import (
	"cmp"
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

// LatencyRound is one round of the largest latency point: klingfan, the
// bare gRPC fan-out and (with the filter phase) klingfan with a CEL filter
// on every stream, measured one after the other. A single p99 on a shared
// 2-core machine moves by half from one run to the next; ratios taken
// within a round, then their median over rounds, do not.
type LatencyRound struct {
	P99         float64 `json:"p99_ms"`
	BareP99     float64 `json:"bare_p99_ms"`
	FilteredP99 float64 `json:"filtered_p99_ms,omitempty"`
	// The server's CPU per delivery of each, in microseconds.
	Micros         float64 `json:"server_us_per_delivery"`
	BareMicros     float64 `json:"bare_server_us_per_delivery"`
	FilteredMicros float64 `json:"filtered_server_us_per_delivery,omitempty"`
}

// BareRatio is the round's klingfan p99 over the bare fan-out's.
func (lr LatencyRound) BareRatio() float64 { return lr.P99 / lr.BareP99 }

// FilterRatio is the round's filtered p99 over the unfiltered one.
func (lr LatencyRound) FilterRatio() float64 { return lr.FilteredP99 / lr.P99 }

// latencyRun is what the latency phase measured.
type latencyRun struct {
	points   []LatencyResult // one per subscriber count
	bare     *LatencyResult  // the bare fan-out at the largest count
	filtered *LatencyResult  // klingfan with the filter at the largest count
	rounds   []LatencyRound
}

// runLatency measures each subscriber count but the largest once on a
// fresh server; the largest it measures in cfg.LatencyRounds rounds, each
// klingfan, then the bare gRPC fan-out (the limit the point is held
// against), then, with filter set, klingfan with the CEL filter on every
// stream. Each kind reports its round of median p99, so the tables show
// one real run of each.
func (r *runner) runLatency(ctx context.Context, filter bool) (latencyRun, error) {
	var out latencyRun
	largest := slices.Max(r.cfg.LatencySubscribers)
	for _, n := range r.cfg.LatencySubscribers {
		if n == largest {
			continue
		}
		lr, err := r.latencyPoint(ctx, n)
		if err != nil {
			return out, err
		}
		out.points = append(out.points, lr)
	}
	var plain, bare, filtered []LatencyResult
	for round := range max(1, r.cfg.LatencyRounds) {
		r.logf("latency: round %d of %d at %d subscribers", round+1, max(1, r.cfg.LatencyRounds), largest)
		lr, err := r.latencyPoint(ctx, largest)
		if err != nil {
			return out, err
		}
		b, err := r.runBareFanout(ctx, largest)
		if err != nil {
			return out, fmt.Errorf("bare gRPC fan-out: %w", err)
		}
		rd := LatencyRound{P99: lr.Latency.P99, BareP99: b.Latency.P99, Micros: lr.ServerMicrosPerDelivery, BareMicros: b.ServerMicrosPerDelivery}
		plain, bare = append(plain, lr), append(bare, b)
		if filter {
			f, err := r.latencyPointWith(ctx, r.cfg.FilterSubscribers, r.cfg.Filter)
			if err != nil {
				return out, fmt.Errorf("%s: %w", PhaseFilter, err)
			}
			filtered = append(filtered, f)
			rd.FilteredP99, rd.FilteredMicros = f.Latency.P99, f.ServerMicrosPerDelivery
		}
		out.rounds = append(out.rounds, rd)
	}
	out.points = append(out.points, medianP99(plain))
	m := medianP99(bare)
	out.bare = &m
	if filter {
		f := medianP99(filtered)
		out.filtered = &f
	}
	return out, nil
}

// medianP99 returns the result of median p99 (the lower one of an even
// count).
func medianP99(rs []LatencyResult) LatencyResult {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b LatencyResult) int { return cmp.Compare(a.Latency.P99, b.Latency.P99) })
	return s[(len(s)-1)/2]
}

// median returns the median of fs (the mean of the middle two of an even
// count), or 0 for none.
func median(fs []float64) float64 {
	if len(fs) == 0 {
		return 0
	}
	s := slices.Clone(fs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
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
