package hub

import (
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// wireEvents are stored events of every shape the wire shortcut must read
// as Filter.Match reads the decoded event.
func wireEvents() map[string]*gatewayv1.Event {
	t0 := time.Unix(1781080794, 120)
	full := &gatewayv1.Event{
		Id: "evt_a", Type: gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED, RawType: "task.succeed", WebhookId: "w1",
		OccurredAt: timestamppb.New(t0.Add(-time.Second)), ReceivedAt: timestamppb.New(t0), DeliveryId: "d1",
		SourceFormat: gatewayv1.SourceFormat_SOURCE_FORMAT_KLING_EVENT,
		Job: &gatewayv1.Job{JobId: "job-1", Kind: gatewayv1.JobKind_JOB_KIND_IMAGE, Prompt: "a corgi", Model: "kling-v2-1-master",
			Videos: []*gatewayv1.Video{{Url: "https://x/v.mp4"}}},
		RawBody: []byte(`{"task_id":"job-1"}`), Test: true, Traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
	}
	return map[string]*gatewayv1.Event{
		"every field":           full,
		"no raw body":           {Id: "evt_b", Type: gatewayv1.EventType_EVENT_TYPE_VIDEO_FAILED, WebhookId: "w2", DeliveryId: "d2", Job: &gatewayv1.Job{JobId: "job-2"}, ReceivedAt: timestamppb.New(t0.Add(time.Hour))},
		"no job":                {Id: "evt_c", Type: gatewayv1.EventType_EVENT_TYPE_VIDEO_PROCESSING, WebhookId: "w1", DeliveryId: "d3", RawBody: []byte("{}")},
		"no received_at":        {Id: "evt_d", WebhookId: "w1", DeliveryId: "d4", Job: &gatewayv1.Job{JobId: "job-1"}},
		"received before epoch": {Id: "evt_e", WebhookId: "w1", DeliveryId: "d5", ReceivedAt: &timestamppb.Timestamp{Seconds: -5, Nanos: 7}},
		"empty":                 {},
	}
}

func wireFilters(t *testing.T) map[string]*Filter {
	t.Helper()
	t0 := time.Unix(1781080794, 120)
	mk := func(types []gatewayv1.EventType, jobs, webhooks []string) *Filter {
		f, err := NewFilter(types, jobs, webhooks)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	kinds, err := mk(nil, nil, nil).WithJobKinds([]gatewayv1.JobKind{gatewayv1.JobKind_JOB_KIND_IMAGE})
	if err != nil {
		t.Fatal(err)
	}
	unspecified, err := mk(nil, nil, nil).WithJobKinds([]gatewayv1.JobKind{gatewayv1.JobKind_JOB_KIND_UNSPECIFIED})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*Filter{
		"none":               mk(nil, nil, nil),
		"types":              mk([]gatewayv1.EventType{gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED, gatewayv1.EventType_EVENT_TYPE_VIDEO_FAILED}, nil, nil),
		"jobs":               mk(nil, []string{"job-1", "zzz"}, nil),
		"webhooks":           mk(nil, nil, []string{"w2"}),
		"kinds":              kinds,
		"unspecified kind":   unspecified,
		"since":              mk(nil, nil, nil).Since(t0),
		"since a bit later":  mk(nil, nil, nil).Since(t0.Add(time.Nanosecond)),
		"since before epoch": mk(nil, nil, nil).Since(time.Unix(-10, 0)),
		"all at once":        mk([]gatewayv1.EventType{gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED}, []string{"job-1"}, []string{"w1"}).Since(t0),
	}
}

// Reading the filter fields from the stored bytes decides as Match does on
// the decoded event, for every filter field and every event shape, and the
// forwarded response decodes to the event Read + WithoutBody would send.
func TestWireMatchesDecoded(t *testing.T) {
	filters := wireFilters(t)
	for name, ev := range wireEvents() {
		t.Run(name, func(t *testing.T) {
			stored, err := proto.MarshalOptions{Deterministic: true}.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			w, ok := readWire(stored)
			if !ok {
				t.Fatal("readWire refused a stored event")
			}
			for fname, f := range filters {
				if got, want := f.matchWire(&w), f.Match(ev); got != want {
					t.Errorf("filter %s: matchWire = %v, Match = %v", fname, got, want)
				}
			}
			for _, full := range []bool{false, true} {
				const seq = 1 << 40
				b := w.appendResponse(nil, stored, seq, full)
				if len(b) != w.responseSize(stored, seq, full) {
					t.Errorf("full=%v: responseSize %d, wrote %d", full, w.responseSize(stored, seq, full), len(b))
				}
				var resp gatewayv1.SubscribeResponse
				if err := proto.Unmarshal(b, &resp); err != nil {
					t.Fatal(err)
				}
				want := proto.CloneOf(ev)
				want.Sequence = seq
				if !full {
					want = WithoutBody(want)
				}
				if !proto.Equal(resp.GetEvent(), want) {
					t.Errorf("full=%v: forwarded %v, want %v", full, resp.GetEvent(), want)
				}
			}
		})
	}
}

// Bytes the shortcut cannot read as Match would are refused, so that the
// caller decodes them instead: repeated fields that proto merges or
// overrides, a sequence already set, a wrong wire type, truncation.
func TestWireRefusesUnusualBytes(t *testing.T) {
	base, err := proto.Marshal(&gatewayv1.Event{Id: "evt_a", WebhookId: "w", Job: &gatewayv1.Job{JobId: "j"}})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"webhook id twice": protowire.AppendString(protowire.AppendTag(base, fieldEventWebhookID, protowire.BytesType), "x"),
		"job twice":        protowire.AppendBytes(protowire.AppendTag(base, fieldEventJob, protowire.BytesType), nil),
		"sequence set":     protowire.AppendVarint(protowire.AppendTag(base, fieldEventSequence, protowire.VarintType), 9),
		"type as bytes":    protowire.AppendString(protowire.AppendTag(base, fieldEventType, protowire.BytesType), "x"),
		"job id twice": protowire.AppendBytes(protowire.AppendTag(nil, fieldEventJob, protowire.BytesType),
			protowire.AppendString(protowire.AppendTag(protowire.AppendString(protowire.AppendTag(nil, fieldJobID, protowire.BytesType), "a"), fieldJobID, protowire.BytesType), "b")),
		"truncated": base[:len(base)-1],
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			if _, ok := readWire(b); ok {
				t.Errorf("readWire accepted %x", b)
			}
		})
	}
}
