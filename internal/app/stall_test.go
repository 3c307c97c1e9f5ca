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

	"google.golang.org/protobuf/types/known/emptypb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/config"
)

// expectStalledStreamEnded: a full-view Subscribe stream from the
// beginning, or a Consume stream of a group that starts there, whose
// client never reads is ended by the server once a Send has waited
// --send-deadline, which frees what it held (the subscription and its
// catch-up memory; the group member and its place); the client, when it
// reads at last, finds what was sent before and then UNAVAILABLE telling
// it to resume.
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
	groups := gatewayv1.NewConsumerGroupServiceClient(conn)
	if _, err := groups.CreateConsumerGroup(context.Background(), &gatewayv1.CreateConsumerGroupRequest{
		ConsumerGroupId: "stalled",
		ConsumerGroup:   &gatewayv1.ConsumerGroup{Start: &gatewayv1.ConsumerGroup_FromBeginning{FromBeginning: true}},
	}); err != nil {
		t.Fatal(err)
	}
	members := func() int32 {
		resp, err := groups.GetConsumerGroup(context.Background(), &gatewayv1.GetConsumerGroupRequest{Id: "stalled"})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetConsumerGroup().GetMembers()
	}
	tests := []struct {
		name string
		// open starts the stream that is never read.
		open func(ctx context.Context) (grpc.ClientStream, error)
		// released reports whether the server let go of what it held.
		released func() bool
	}{
		{"subscribe", func(ctx context.Context) (grpc.ClientStream, error) {
			return gatewayv1.NewEventServiceClient(conn).Subscribe(ctx, &gatewayv1.SubscribeRequest{
				Start: &gatewayv1.SubscribeRequest_FromBeginning{FromBeginning: true},
				View:  gatewayv1.EventView_EVENT_VIEW_FULL,
			})
		}, func() bool { return scrape(t, f.srv, "klingfan_hub_subscribers") == 0 }},
		{"consume", func(ctx context.Context) (grpc.ClientStream, error) {
			return groups.Consume(ctx, &gatewayv1.ConsumeRequest{ConsumerGroupId: "stalled", MaxInFlight: 8, View: gatewayv1.EventView_EVENT_VIEW_FULL})
		}, func() bool { return members() == 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stream, err := tt.open(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// Headers come once the stream is live (subscribed, or the
			// member attached).
			if _, err := stream.Header(); err != nil {
				t.Fatal(err)
			}
			apptest.Eventually(t, 15*time.Second, "the server ends the stalled stream", tt.released)
			var got int
			for {
				if err = stream.RecvMsg(new(emptypb.Empty)); err != nil {
					break
				}
				got++
			}
			if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "send deadline") {
				t.Fatalf("after %d messages: %v, want UNAVAILABLE naming the send deadline", got, err)
			}
			if got == 0 || got >= 8 {
				t.Fatalf("received %d messages before the end, want some but not all 8", got)
			}
		})
	}
}
