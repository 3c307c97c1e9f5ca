package hub_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/hub"
)

// A subscriber resuming from the log receives, for every filter and view,
// exactly the events Read returns and the filter matches in that view (a
// CEL expression sees no raw body in the basic view), encoded as
// decoding them would encode them, although catch-up forwards the stored
// bytes; an undecodable stored message is skipped, as Read skips it.
func TestCatchUpForwardsStoredBytes(t *testing.T) {
	ctx := context.Background()
	// No memory of recent events: every event comes from the log.
	l := newLogHub(t, hub.Config{Recent: -1, CatchUpBatch: 5})
	kinds := []gatewayv1.JobKind{gatewayv1.JobKind_JOB_KIND_VIDEO, gatewayv1.JobKind_JOB_KIND_IMAGE}
	types := []gatewayv1.EventType{gatewayv1.EventType_EVENT_TYPE_VIDEO_PROCESSING, gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED}
	const n = 40
	for i := range n {
		ev := &gatewayv1.Event{
			Id: fmt.Sprint("evt_", i), WebhookId: fmt.Sprint("w", i%2), DeliveryId: fmt.Sprint("d", i),
			Type:       types[i%2],
			Job:        &gatewayv1.Job{JobId: fmt.Sprint("job-", i%5), Kind: kinds[i%3%2], Model: fmt.Sprint("m", i%4)},
			ReceivedAt: timestamppb.New(time.Unix(1781080794+int64(i), 0)),
			RawBody:    []byte(fmt.Sprintf(`{"n":%d}`, i)),
		}
		if i%7 == 0 {
			ev.Job, ev.RawBody = nil, nil
		}
		if _, _, err := l.store.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
		if i == n/2 {
			if _, err := l.store.JetStream().Publish(ctx, "klingfan.events.w0.x.evt_bad", []byte{0xff, 0xff}); err != nil {
				t.Fatal(err)
			}
		}
	}
	stored, _, err := l.store.Read(ctx, 1, 1000, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != n {
		t.Fatalf("Read returned %d events, want %d", len(stored), n)
	}
	cases := []struct {
		name string
		sel  *gatewayv1.SubscribeRequest
		full bool
	}{
		{name: "everything, basic view", sel: &gatewayv1.SubscribeRequest{}},
		{name: "everything, full view", sel: &gatewayv1.SubscribeRequest{}, full: true},
		{name: "one type", sel: &gatewayv1.SubscribeRequest{EventTypes: types[1:]}},
		{name: "jobs pushed down to the log", sel: &gatewayv1.SubscribeRequest{JobIds: []string{"job-1", "job-3"}}, full: true},
		{name: "webhook pushed down to the log", sel: &gatewayv1.SubscribeRequest{WebhookIds: []string{"w1"}}},
		{name: "job kind", sel: &gatewayv1.SubscribeRequest{JobKinds: kinds[1:]}},
		// The basic view's expression sees no raw body, as it does live.
		{name: "CEL filter", sel: &gatewayv1.SubscribeRequest{Filter: `event.job.model == "m2" && event.raw_body.size() == 0`}},
		{name: "CEL filter with a type, full view", sel: &gatewayv1.SubscribeRequest{EventTypes: types[:1], Filter: `event.job.model != "m0" && event.raw_body.size() > 0`}, full: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := hub.FilterOf(tc.sel)
			if err != nil {
				t.Fatal(err)
			}
			var want []*gatewayv1.Event
			for _, ev := range stored {
				if !tc.full {
					ev = hub.WithoutBody(ev)
				}
				if f.Match(ev) {
					want = append(want, ev)
				}
			}
			filtered := !proto.Equal(tc.sel, &gatewayv1.SubscribeRequest{})
			if len(want) == 0 || filtered && len(want) == n {
				t.Fatalf("the filter selects %d of %d events: the case tests nothing", len(want), n)
			}
			sub, err := l.hub.Subscribe(ctx, f, hub.Start{Kind: hub.StartBeginning}, tc.full)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			for i, w := range want {
				nctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				it, err := sub.Next(nctx)
				cancel()
				if err != nil {
					t.Fatalf("event %d of %d: %v", i+1, len(want), err)
				}
				b, err := it.Encoded()
				if err != nil {
					t.Fatal(err)
				}
				var resp gatewayv1.SubscribeResponse
				if err := proto.Unmarshal(b, &resp); err != nil {
					t.Fatal(err)
				}
				if !proto.Equal(resp.GetEvent(), w) {
					t.Fatalf("event %d: sent %v, want %v", i+1, resp.GetEvent(), w)
				}
				if it.Sequence() != w.GetSequence() {
					t.Fatalf("event %d: item sequence %d, want %d", i+1, it.Sequence(), w.GetSequence())
				}
			}
			// Nothing more: the next call waits for a new event.
			nctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
			if it, err := sub.Next(nctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("after every matching event, Next = %v, %v; want it to wait", it, err)
			}
		})
	}
}
