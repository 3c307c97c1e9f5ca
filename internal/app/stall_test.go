package app_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/config"
)

// expectStalledStreamEnded: a full-view stream from the beginning whose
// client never reads is ended by the server once a Send has waited
// --send-deadline, which frees its subscription (and the catch-up memory
// it held); the client, when it reads at last, finds everything sent
// before and then UNAVAILABLE telling it to resume.
func expectStalledStreamEnded(t *testing.T) {
	f := startFanout(t, apptest.WithConfig(func(c *config.Config) {
		c.SendDeadline = 300 * time.Millisecond
		c.MaxBodyBytes = 1 << 20
	}))
	prompt := strings.Repeat("p", 100<<10)
	for i := range 8 {
		body := fmt.Sprintf(`{"event":"video.completed","timestamp":"2026-11-26T12:00:00Z","data":{"job_id":"stall-%d","prompt":%q}}`, i, prompt)
		if status, out := f.srv.Post(t, "/webhooks/klingai", signed([]byte(body)), []byte(body)); status != http.StatusOK {
			t.Fatalf("post: %d %s", status, out)
		}
	}
	// A fixed 64 KiB window: the client's transport takes no more than
	// that for a stream its application does not read.
	conn := f.srv.Dial(t, grpc.WithPerRPCCredentials(apptest.BearerCreds(apptest.AdminToken)),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := gatewayv1.NewEventServiceClient(conn).Subscribe(ctx, &gatewayv1.SubscribeRequest{
		Start: &gatewayv1.SubscribeRequest_FromBeginning{FromBeginning: true},
		View:  gatewayv1.EventView_EVENT_VIEW_FULL,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Header(); err != nil {
		t.Fatal(err)
	}
	apptest.Eventually(t, 15*time.Second, "the server ends the stalled stream", func() bool {
		return scrape(t, f.srv, "klingfan_hub_subscribers") == 0
	})
	var got int
	for {
		_, err = stream.Recv()
		if err != nil {
			break
		}
		got++
	}
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "send deadline") {
		t.Fatalf("after %d events: %v, want UNAVAILABLE naming the send deadline", got, err)
	}
	if got == 0 || got >= 8 {
		t.Fatalf("received %d events before the end, want some but not all 8", got)
	}
}
