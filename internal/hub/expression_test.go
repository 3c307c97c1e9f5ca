package hub

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/eventexpr"
)

// stuckExpression is a filter expression that does not answer until
// released: the costliest evaluation there could be.
type stuckExpression struct {
	asked   chan struct{}
	release chan struct{}
}

func (s *stuckExpression) Decide(ctx context.Context, ev *gatewayv1.Event, slots eventexpr.Slots) (bool, error) {
	if err := slots.Acquire(ctx, 1); err != nil {
		return false, err
	}
	defer slots.Release(1)
	return s.Match(ev), nil
}

func (s *stuckExpression) Match(*gatewayv1.Event) bool {
	select {
	case s.asked <- struct{}{}:
	default:
	}
	<-s.release
	return true
}

// nowhere is a Log for a hub whose subscriptions start now and never fall
// behind.
type nowhere struct{}

func (nowhere) Read(context.Context, uint64, int, []string, []string) ([]*gatewayv1.Event, uint64, error) {
	return nil, 0, nil
}
func (nowhere) Bounds(context.Context) (uint64, uint64, error)   { return 1, 0, nil }
func (nowhere) SeqAt(context.Context, time.Time) (uint64, error) { return 1, nil }

// TestPublishDoesNotEvaluateExpressions: a stream's CEL expression runs on
// its group's goroutine, never under the hub's lock, so however long one
// takes, Publish returns and the other streams get their events.
func TestPublishDoesNotEvaluateExpressions(t *testing.T) {
	h := New(Config{Log: nowhere{}})
	t.Cleanup(h.Close)
	ctx := t.Context()
	stuck := &stuckExpression{asked: make(chan struct{}, 1), release: make(chan struct{})}
	costly, err := h.Subscribe(ctx, &Filter{expr: stuck}, Start{}, false)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer costly.Close()
		for {
			if _, err := costly.Next(ctx); err != nil {
				return
			}
		}
	}()
	plain, err := h.Subscribe(ctx, &Filter{}, Start{}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	// Before plain.Close, which takes the hub's lock: a Publish stuck in
	// the expression would hold it.
	defer close(stuck.release)

	published := make(chan struct{})
	go func() {
		defer close(published)
		for seq := uint64(1); seq <= 3; seq++ {
			h.Publish(&gatewayv1.Event{Id: "e", Sequence: seq, ReceivedAt: timestamppb.Now()})
		}
	}()
	select {
	case <-stuck.asked: // the costly stream is evaluating the first event
	case <-time.After(10 * time.Second):
		t.Fatal("the costly stream's expression was never asked")
	}
	select {
	case <-published:
	case <-time.After(10 * time.Second):
		t.Fatal("Publish waits for a stream's expression")
	}
	for want := uint64(1); want <= 3; want++ {
		nctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		it, err := plain.Next(nctx)
		cancel()
		if err != nil {
			t.Fatalf("the plain stream, waiting for event %d: %v", want, err)
		}
		if it.Sequence() != want {
			t.Fatalf("the plain stream got %d, want %d", it.Sequence(), want)
		}
	}
}

// askedExpression is a real expression that also reports each event it is
// asked about.
type askedExpression struct {
	*eventexpr.Expr
	asked chan uint64
}

func (a askedExpression) Decide(ctx context.Context, ev *gatewayv1.Event, slots eventexpr.Slots) (bool, error) {
	a.asked <- ev.GetSequence()
	return a.Expr.Decide(ctx, ev, slots)
}

// TestNarrowExpressionBuffersOnlyMatches: a stream whose expression drops
// most events holds in its buffer only the events it will send, however
// many it dropped, so it neither wakes for the others nor overflows and
// falls into catch-up because of them; two streams with the same
// expression have it evaluated once per event.
func TestNarrowExpressionBuffersOnlyMatches(t *testing.T) {
	h := New(Config{Log: nowhere{}, Buffer: 256})
	t.Cleanup(h.Close)
	expr, err := eventexpr.Compile(`event.job.job_id == "wanted"`)
	if err != nil {
		t.Fatal(err)
	}
	asked := askedExpression{Expr: expr, asked: make(chan uint64, 1000)}
	var subs []*Subscription
	for range 2 {
		s, err := h.Subscribe(t.Context(), &Filter{expr: asked}, Start{}, false)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		subs = append(subs, s)
	}
	// More events than the idle buffer holds, few of them wanted; the
	// last is not, so once the expression is asked about it every wanted
	// one has been handed on.
	const events = 201
	var want []uint64
	for seq := uint64(1); seq <= events; seq++ {
		job := "other"
		if seq%50 == 0 {
			job = "wanted"
			want = append(want, seq)
		}
		h.Publish(&gatewayv1.Event{Id: fmt.Sprint("e", seq), Sequence: seq, Job: &gatewayv1.Job{JobId: job}, ReceivedAt: timestamppb.Now()})
	}
	for seq := uint64(1); seq <= events; seq++ {
		select {
		case got := <-asked.asked:
			if got != seq {
				t.Fatalf("the expression was asked about event %d, want %d (each event once, in order)", got, seq)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("the expression was never asked about event %d", seq)
		}
	}
	for i, s := range subs {
		h.mu.Lock() // the group hands an event on under the lock
		buffered, lagging := len(s.ch), s.lagging.Load()
		h.mu.Unlock()
		if buffered != len(want) || lagging {
			t.Errorf("stream %d: %d events buffered (lagging %v) after %d published, want the %d it sends", i, buffered, lagging, events, len(want))
		}
		for _, seq := range want {
			it, err := s.Next(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if it.Sequence() != seq {
				t.Fatalf("stream %d: got event %d, want %d", i, it.Sequence(), seq)
			}
		}
	}
	select {
	case seq := <-asked.asked:
		t.Errorf("the expression was asked about event %d again", seq)
	default:
	}
}
