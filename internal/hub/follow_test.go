package hub_test

import (
	"context"
	"errors"
	"testing"
	"time"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/hub"
)

// TestFollow holds what the job projection relies on: every event after
// the start, in order and exactly once, whether it was logged before
// Follow began (caught up from the log), published live, or published
// while a slow reader was behind by more than its buffer; and a follower is
// not a stream, so it takes no place under MaxSubscriptions.
func TestFollow(t *testing.T) {
	l := newLogHub(t, hub.Config{Buffer: 4, MaxSubscriptions: 1, Recent: 16})
	for range 10 {
		l.append("before")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan uint64, 1000)
	slow := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- l.hub.Follow(ctx, 3, func(ev *gatewayv1.Event) {
			if ev.GetSequence() == 20 {
				<-slow // fall behind: the buffer overflows while this waits
			}
			got <- ev.GetSequence()
		})
	}()

	// The one stream MaxSubscriptions allows is still free.
	f, _ := hub.NewFilter(nil, nil, nil)
	sub, err := l.hub.Subscribe(ctx, f, hub.Start{Kind: hub.StartNow}, false)
	if err != nil {
		t.Fatalf("Subscribe beside a follower: %v", err)
	}
	sub.Close()

	for range 90 {
		l.append("live")
	}
	close(slow)
	want := uint64(4)
	deadline := time.After(20 * time.Second)
	for want <= 100 {
		select {
		case seq := <-got:
			if seq != want {
				t.Fatalf("followed sequence %d, want %d", seq, want)
			}
			want++
		case <-deadline:
			t.Fatalf("followed through %d of 100", want-1)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Follow after cancel: %v, want context.Canceled", err)
	}
}
