package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/api"
)

// rawCodec marshals requests as protobuf but hands responses over as raw
// bytes: the harness subscribers share the machine with the server, so
// they read only the two fields they need (parseFrame) instead of
// decoding every event. A real subscriber's decode happens on its own
// machine.
type rawCodec struct{}

// rawMsg receives one undecoded response.
type rawMsg struct{ b []byte }

func (rawCodec) Marshal(v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("bench: cannot marshal %T", v)
	}
	return proto.Marshal(m)
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(*rawMsg)
	if !ok {
		return fmt.Errorf("bench: cannot unmarshal into %T", v)
	}
	m.b = data // grpc-go hands a v1 codec a freshly materialized slice
	return nil
}

func (rawCodec) Name() string { return "proto" }

const subscribeMethod = "/kling.gateway.v1.EventService/Subscribe"

// dialConns opens n plaintext gRPC connections to addr and makes sure each
// is connected.
func dialConns(ctx context.Context, addr string, n int) ([]*grpc.ClientConn, error) {
	conns := make([]*grpc.ClientConn, 0, n)
	for range n {
		c, err := grpc.NewClient(addr,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})),
		)
		if err != nil {
			closeConns(conns)
			return nil, err
		}
		c.Connect()
		conns = append(conns, c)
	}
	return conns, nil
}

func closeConns(conns []*grpc.ClientConn) {
	for _, c := range conns {
		_ = c.Close()
	}
}

// authContext carries the bearer token every harness call sends.
func authContext(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+benchToken)
}

// openStream starts a Subscribe stream on conn and returns once it is live
// (its response headers arrived), with the head sequence the server
// announced in them.
func openStream(ctx context.Context, conn *grpc.ClientConn, req *gatewayv1.SubscribeRequest) (grpc.ClientStream, uint64, error) {
	st, err := conn.NewStream(authContext(ctx), &gatewayv1.EventService_ServiceDesc.Streams[0], subscribeMethod)
	if err != nil {
		return nil, 0, err
	}
	if err := st.SendMsg(req); err != nil {
		return nil, 0, err
	}
	if err := st.CloseSend(); err != nil {
		return nil, 0, err
	}
	md, err := st.Header()
	if err != nil {
		return nil, 0, err
	}
	var head uint64
	if v := md.Get(api.HeadSequenceHeader); len(v) > 0 {
		head, _ = strconv.ParseUint(v[0], 10, 64)
	}
	return st, head, nil
}

// openStreams opens n streams spread round-robin over conns, with a few
// openers in parallel, and returns them once every one is live.
func openStreams(ctx context.Context, conns []*grpc.ClientConn, n int, req func(i int) *gatewayv1.SubscribeRequest) ([]grpc.ClientStream, []uint64, error) {
	streams := make([]grpc.ClientStream, n)
	heads := make([]uint64, n)
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		firstErr atomic.Pointer[error]
	)
	for range min(n, 32) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || firstErr.Load() != nil {
					return
				}
				st, head, err := openStream(ctx, conns[i%len(conns)], req(i))
				if err != nil {
					err = fmt.Errorf("bench: open stream %d of %d: %w", i+1, n, err)
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				streams[i], heads[i] = st, head
			}
		})
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return nil, nil, *p
	}
	return streams, heads, nil
}

// maxResumes bounds how often one harness subscriber reconnects.
const maxResumes = 20

// subscribers is a set of live Subscribe streams, each drained by its own
// goroutine. Like a real client, a subscriber whose stream ends with an
// error resumes after the last sequence it received; resumes counts
// that, and errors past maxResumes are recorded.
type subscribers struct {
	closeOnce sync.Once
	conns     []*grpc.ClientConn
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	received  atomic.Int64
	resumes   atomic.Int64
	// errs counts subscribers that gave up.
	errs     atomic.Int64
	firstErr atomic.Pointer[string]
	lastErr  atomic.Pointer[string]
}

// everyEvent subscribes to everything from now.
func everyEvent(int) *gatewayv1.SubscribeRequest { return &gatewayv1.SubscribeRequest{} }

// oneJob subscribes subscriber i to one of the hotJobs job ids, so each
// event, whose job cycles through them, matches 1 in hotJobs subscribers.
func oneJob(i int) *gatewayv1.SubscribeRequest {
	return &gatewayv1.SubscribeRequest{JobIds: []string{hotJob(i)}}
}

// startSubscribers opens n streams from now (req(i) is subscriber i's
// request) over ceil(n/perConn) connections and drains each with
// onFrame(index, frame, arrival) (nil: count only). They run until close.
func startSubscribers(ctx context.Context, addr string, n, perConn int, req func(i int) *gatewayv1.SubscribeRequest, onFrame func(i int, f frame, at int64)) (*subscribers, error) {
	ctx, cancel := context.WithCancel(ctx)
	conns, err := dialConns(ctx, addr, (n+perConn-1)/perConn)
	if err != nil {
		cancel()
		return nil, err
	}
	s := &subscribers{conns: conns, cancel: cancel}
	streams, heads, err := openStreams(ctx, conns, n, req)
	if err != nil {
		cancel()
		closeConns(conns)
		return nil, err
	}
	for i, st := range streams {
		s.wg.Go(func() {
			s.drain(ctx, i, st, heads[i], conns[i%len(conns)], req(i), onFrame)
		})
	}
	return s, nil
}

func (s *subscribers) drain(ctx context.Context, i int, st grpc.ClientStream, cursor uint64, conn *grpc.ClientConn, req *gatewayv1.SubscribeRequest, onFrame func(int, frame, int64)) {
	var m rawMsg
	for resumes := 0; ; {
		err := st.RecvMsg(&m)
		if err == nil {
			f := parseFrame(m.b)
			cursor = f.seq
			if onFrame != nil {
				onFrame(i, f, time.Now().UnixNano())
			}
			s.received.Add(1)
			continue
		}
		if ctx.Err() != nil {
			return
		}
		msg := err.Error()
		s.firstErr.CompareAndSwap(nil, &msg)
		s.lastErr.Store(&msg)
		for {
			if resumes++; resumes > maxResumes {
				s.errs.Add(1)
				return
			}
			s.resumes.Add(1)
			resume := proto.CloneOf(req)
			resume.Start = &gatewayv1.SubscribeRequest_AfterSequence{AfterSequence: cursor}
			st, _, err = openStream(ctx, conn, resume)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			time.Sleep(100 * time.Millisecond) // back off before resuming again
		}
	}
}

// close ends every stream and waits for the drainers; safe to call
// more than once.
func (s *subscribers) close() {
	s.closeOnce.Do(func() {
		s.cancel()
		s.wg.Wait()
		closeConns(s.conns)
	})
}

// err reports subscribers that gave up after maxResumes.
func (s *subscribers) err() error {
	if n := s.errs.Load(); n > 0 {
		return fmt.Errorf("bench: %d subscriber(s) gave up after %d resumes; last error: %s", n, maxResumes, *s.lastErr.Load())
	}
	return nil
}

// streamErr is the first error that ended a stream since the last call,
// if any.
func (s *subscribers) streamErr() string {
	if p := s.firstErr.Swap(nil); p != nil {
		return *p
	}
	return ""
}

// waitFor polls cond every 5ms until it holds or d passes.
func waitFor(ctx context.Context, d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("bench: timed out")
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(5 * time.Millisecond) // polling a counter, not ordering events
	}
	return nil
}
