package hub_test

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/hub"
)

// WithoutBody copies fields one by one; this fails when Event gains a
// field that the copy (and this test) do not carry yet.
func TestWithoutBodyKeepsEveryOtherField(t *testing.T) {
	ev := &gatewayv1.Event{
		Id: "evt_1", Sequence: 7, Type: gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED, RawType: "video.completed",
		WebhookId: "default", OccurredAt: timestamppb.Now(), ReceivedAt: timestamppb.Now(), DeliveryId: "d1",
		SourceFormat: gatewayv1.SourceFormat(1), Job: &gatewayv1.Job{JobId: "j1"}, RawBody: []byte(`{}`), Test: true,
		Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}
	fields := ev.ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		if fd := fields.Get(i); !ev.ProtoReflect().Has(fd) {
			t.Fatalf("the test event leaves %s unset: set it here and copy it in WithoutBody", fd.Name())
		}
	}
	want := proto.CloneOf(ev)
	want.RawBody = nil
	if got := hub.WithoutBody(ev); !proto.Equal(got, want) {
		t.Errorf("WithoutBody lost a field:\n got %v\nwant %v", got, want)
	}
}
