package hub

import (
	"context"
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
// that stream's goroutine, never under the hub's lock, so however long
// one takes, Publish returns and the other streams get their events.
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
