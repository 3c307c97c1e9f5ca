package app_test

import (
	"context"
	"testing"
	"time"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// A server with nothing to do for longer than any internal read timeout
// keeps its log tail alive: a later delivery still reaches a subscriber.
// (Regression: the tail once gave up after 5 idle seconds and took the
// server down with it.) Idleness is the condition under test, so this test
// waits on the clock.
func TestIdleServerKeepsDelivering(t *testing.T) {
	t.Parallel()
	f := startFanout(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream := f.subscribe(ctx, &gatewayv1.SubscribeRequest{})
	idle := time.NewTimer(7 * time.Second)
	defer idle.Stop()
	<-idle.C
	p := f.post("job-after-idle", gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED)
	if got := receive(t, stream, 1); got[0] != p.seq {
		t.Fatalf("got %v, want [%d]", got, p.seq)
	}
}
