package bench

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/api"
)

// BareStreamsResult is the floor the idle-stream figure is compared with:
// what grpc-go itself holds for an idle server stream, measured as the
// klingfan run is (same client processes, connections and streams per
// connection), on a bare gRPC server whose Subscribe handler reads the
// request, sends the response headers and waits for the stream to end.
type BareStreamsResult struct {
	Streams        int     `json:"streams"`
	RSSPerStream   float64 `json:"rss_per_stream_bytes"`
	HeapPerStream  float64 `json:"heap_per_stream_bytes"`
	StackPerStream float64 `json:"stack_per_stream_bytes"`
	// ObjectsPerStream is the live heap objects per stream.
	ObjectsPerStream float64 `json:"objects_per_stream"`
}

// bareMaxStreamsPerConn is klingfan's MaxConcurrentStreams.
const bareMaxStreamsPerConn = 1000

// bareSubscribe is the least a gRPC streaming handler can do for a
// subscriber: take its request, tell it the stream is live, and park.
func bareSubscribe(_ any, ss grpc.ServerStream) error {
	var req gatewayv1.SubscribeRequest
	if err := ss.RecvMsg(&req); err != nil {
		return err
	}
	if err := ss.SendHeader(metadata.Pairs(api.HeadSequenceHeader, "0")); err != nil {
		return err
	}
	<-ss.Context().Done()
	return nil
}

// runBareStreams opens n idle streams on a bare gRPC server in this
// process and measures what the server holds for them.
func (r *runner) runBareStreams(ctx context.Context, n, conns int) (*BareStreamsResult, error) {
	r.logf("memory floor: %d idle streams on a bare grpc-go server", n)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	g := grpc.NewServer(grpc.MaxConcurrentStreams(bareMaxStreamsPerConn))
	g.RegisterService(&grpc.ServiceDesc{
		ServiceName: "kling.gateway.v1.EventService",
		HandlerType: (*any)(nil),
		Streams:     []grpc.StreamDesc{{StreamName: "Subscribe", Handler: bareSubscribe, ServerStreams: true}},
	}, nil)
	served := make(chan struct{})
	go func() {
		defer close(served)
		// Serve fails only if the listener does, which the streams
		// opened against it below would report.
		_ = g.Serve(ln)
	}()
	defer func() {
		g.Stop()
		<-served
	}()

	before, err := settledMemory()
	if err != nil {
		return nil, err
	}
	clients, err := startStreamClients(ctx, ln.Addr().String(), n, conns)
	defer clients.stop()
	if err != nil {
		return nil, err
	}
	after, err := settledMemory()
	if err != nil {
		return nil, err
	}
	r.heapProfile("memory-bare")
	per := func(a, b int64) float64 { return float64(int64(float64(b-a) / float64(n))) }
	res := &BareStreamsResult{
		Streams:          n,
		RSSPerStream:     per(before.rss, after.rss),
		HeapPerStream:    per(before.heap, after.heap),
		StackPerStream:   per(before.stacks, after.stacks),
		ObjectsPerStream: round2(float64(after.objects-before.objects) / float64(n)),
	}
	if got := after.goroutines - before.goroutines; got < int64(n) {
		return nil, fmt.Errorf("bench: bare server holds %d goroutines more, want at least %d", got, n)
	}
	r.logf("  bare grpc-go: %.1f KiB/stream (heap %.0f B in %.1f objects, stacks %.1f KiB)", res.RSSPerStream/1024, res.HeapPerStream, res.ObjectsPerStream, res.StackPerStream/1024)
	return res, nil
}

// memoryChecks are the summary rows of the idle streams: the resident
// target, with the bare grpc-go floor measured in the same run next to it,
// and the heap klingfan holds per stream above that floor.
func memoryChecks(m *MemoryResult) []Check {
	ref := fmt.Sprintf("≤ %d KiB at %s streams", targetBytesPerStream/1024, strconv.Itoa(targetStreams))
	if b := m.Bare; b != nil {
		ref += fmt.Sprintf("; bare grpc-go idle stream %.1f KiB (heap %.1f, stacks %.1f)", b.RSSPerStream/1024, b.HeapPerStream/1024, b.StackPerStream/1024)
	}
	out := []Check{{
		Figure: fmt.Sprintf("Server memory per idle stream, %d streams open", m.Streams),
		Measured: fmt.Sprintf("%.1f KiB RSS (heap %.1f KiB, stacks %.1f KiB)",
			m.RSSPerStream/1024, m.HeapPerStream/1024, m.StackPerStream/1024),
		Reference: ref,
		Holds:     holds(m.Streams >= targetStreams && m.RSSPerStream <= targetBytesPerStream),
	}}
	if b := m.Bare; b != nil && b.HeapPerStream > 0 {
		c := Check{
			Figure: fmt.Sprintf("Heap per idle stream above bare grpc-go, %d streams open", m.Streams),
			Measured: fmt.Sprintf("%.0f B (klingfan %.0f B in %.1f objects, bare %.0f B in %.1f objects)",
				m.HeapPerStream-b.HeapPerStream, m.HeapPerStream, m.ObjectsPerStream, b.HeapPerStream, b.ObjectsPerStream),
			Reference: fmt.Sprintf("≤ %.1f KiB above bare grpc-go at %s streams", float64(targetHeapAboveBare)/1024, strconv.Itoa(targetStreams)),
			Ratio:     round2(m.HeapPerStream / b.HeapPerStream),
		}
		if m.Streams >= targetStreams {
			c.Holds = holds(m.HeapPerStream-b.HeapPerStream <= targetHeapAboveBare)
		} else {
			c.Reference += " (per-stream heap does not depend on the count; `-streams 100000` checks it)"
		}
		out = append(out, c)
	}
	return out
}

// settle gives the server a moment after a run's streams closed, so the
// next measurement starts from a quiet process.
func settle() { time.Sleep(500 * time.Millisecond) } // not ordering events: lets closed streams' goroutines exit

// writeBareStreams adds the bare grpc-go floor to the report's memory
// section.
func writeBareStreams(p func(string, ...any), m *MemoryResult) {
	b := m.Bare
	if b == nil {
		return
	}
	p("\nThe floor, measured after klingfan in the same run: the same %d streams from the same client processes on a bare grpc-go server ", b.Streams)
	p("(MaxConcurrentStreams %d, a handler that reads the request, sends the response headers and waits) hold ", bareMaxStreamsPerConn)
	p("%.1f KiB each (heap %.1f KiB, goroutine stacks %.1f KiB); klingfan adds %.1f KiB. See [docs/performance.md](docs/performance.md).\n",
		b.RSSPerStream/1024, b.HeapPerStream/1024, b.StackPerStream/1024, (m.RSSPerStream-b.RSSPerStream)/1024)
}
