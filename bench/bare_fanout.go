package bench

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/api"
	"github.com/klingfan/klingfan/internal/hub"
	"github.com/klingfan/klingfan/internal/normalize"
)

// bareFanout is the physical limit under the end-to-end scenario: a gRPC
// server that does nothing but fan events out. Subscribe registers a
// buffered channel and sends what arrives on it, one goroutine per stream
// and the event encoded once for all, as klingfan's hub does; no log, no
// HTTP, no filters, no authentication, no metrics. The same child process
// subscribes to it and checks order and completeness.
type bareFanout struct {
	gatewayv1.UnimplementedEventServiceServer
	mu   sync.Mutex
	subs map[chan *hub.Item]struct{}
}

// bareBuffer is each bare stream's channel capacity: far above what 100
// events/s can queue, so nothing is dropped unless a stream stalls.
const bareBuffer = 4096

func (b *bareFanout) Subscribe(_ *gatewayv1.SubscribeRequest, st grpc.ServerStreamingServer[gatewayv1.SubscribeResponse]) error {
	ch := make(chan *hub.Item, bareBuffer)
	b.mu.Lock()
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.subs, ch)
		b.mu.Unlock()
	}()
	if err := st.SendHeader(metadata.Pairs(api.HeadSequenceHeader, "0")); err != nil {
		return err
	}
	for {
		select {
		case it := <-ch:
			if err := st.SendMsg(it); err != nil {
				return err
			}
		case <-st.Context().Done():
			return nil
		}
	}
}

func (b *bareFanout) publish(it *hub.Item) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- it:
		default: // a stalled stream: the child reports the event missing
		}
	}
}

// startBareFanout serves a bareFanout on a loopback port; stop ends it.
func startBareFanout() (b *bareFanout, addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", nil, err
	}
	b = &bareFanout{subs: make(map[chan *hub.Item]struct{})}
	srv := grpc.NewServer(grpc.ForceServerCodecV2(api.ServerCodec()), grpc.MaxConcurrentStreams(1000))
	gatewayv1.RegisterEventServiceServer(srv, b)
	go func() { _ = srv.Serve(ln) }()
	return b, ln.Addr().String(), srv.Stop, nil
}

// runBareFanout measures bareFanout with n subscribers in the child
// process at r.cfg.Rate events/s: each event is a probe normalized from
// the same body the end-to-end scenario posts (basic view: no raw body),
// its send time taken just before it is handed to the streams.
func (r *runner) runBareFanout(ctx context.Context, n int) (LatencyResult, error) {
	r.logf("latency: bare gRPC fan-out (no klingfan), %d subscriber(s) at %.0f events/s for %s", n, r.cfg.Rate, r.cfg.LatencyDuration)
	b, addr, stopServer, err := startBareFanout()
	if err != nil {
		return LatencyResult{}, err
	}
	defer stopServer()

	warm := int(r.cfg.Rate * r.cfg.Warmup.Seconds())
	total := warm + int(r.cfg.Rate*r.cfg.LatencyDuration.Seconds())
	child, err := startLatencyChild(ctx, addr, n, total, warm, "")
	if err != nil {
		return LatencyResult{}, err
	}
	defer child.close()
	if err := child.say("go"); err != nil {
		return LatencyResult{}, err
	}
	stop := r.profile(fmt.Sprintf("latency-bare-%d", n))
	cpu := startCPU()
	cpuAt := cpuTime()
	interval := time.Duration(float64(time.Second) / r.cfg.Rate)
	start := time.Now()
	var firstSend int64
	body := make([]byte, 0, 1024)
	prompt := make([]byte, 0, 64)
	for i := range total {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		if ctx.Err() != nil {
			stop()
			return LatencyResult{}, ctx.Err()
		}
		t0 := time.Now()
		if i == warm {
			firstSend = t0.UnixNano()
		}
		prompt = appendTimePrompt(prompt[:0], t0.UnixNano(), i)
		body = appendBody(body[:0], "kb-bare-"+fmt.Sprint(i), prompt)
		norm, err := normalize.Normalize(body)
		if err != nil {
			stop()
			return LatencyResult{}, err
		}
		norm.Event.Sequence = uint64(i + 1)
		b.publish(&hub.Item{Event: norm.Event})
	}
	res, err := r.measured(child, cpu, cpuAt, stop, n, total, warm, firstSend)
	if err != nil {
		return LatencyResult{}, err
	}
	res.Bare = true
	r.logf("  %5d subs (bare gRPC): p50 %6.2f ms  p99 %6.2f ms  p99.9 %6.2f ms  max %6.2f ms  %8.0f deliveries/s  missing %d  out of order %d  cores %.2f (subscribers %.2f, others %.2f)  %.2f µs/delivery",
		n, res.Latency.P50, res.Latency.P99, res.Latency.P999, res.Latency.Max, res.DeliveriesPerSecond, res.Missing, res.OutOfOrder, res.Cores, res.ClientCores, res.OtherCores, res.ServerMicrosPerDelivery)
	return res, nil
}
