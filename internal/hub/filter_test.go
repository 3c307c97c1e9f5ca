package hub_test

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/errkind"
	"github.com/klingfan/klingfan/internal/hub"
)

func event(typ gatewayv1.EventType, job, webhook string, received time.Time) *gatewayv1.Event {
	return &gatewayv1.Event{Type: typ, WebhookId: webhook, Job: &gatewayv1.Job{JobId: job}, ReceivedAt: timestamppb.New(received)}
}

func TestFilterMatch(t *testing.T) {
	completed := gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED
	failed := gatewayv1.EventType_EVENT_TYPE_VIDEO_FAILED
	t0 := time.Unix(1781080794, 0)
	cases := []struct {
		name     string
		types    []gatewayv1.EventType
		jobs     []string
		webhooks []string
		since    time.Time
		ev       *gatewayv1.Event
		want     bool
	}{
		{name: "empty matches all", ev: event(failed, "j", "w", t0), want: true},
		{name: "type in set", types: []gatewayv1.EventType{completed, failed}, ev: event(failed, "j", "w", t0), want: true},
		{name: "type not in set", types: []gatewayv1.EventType{completed}, ev: event(failed, "j", "w", t0), want: false},
		{name: "job and type both match", types: []gatewayv1.EventType{completed}, jobs: []string{"a", "j"}, ev: event(completed, "j", "w", t0), want: true},
		{name: "job matches, type does not", types: []gatewayv1.EventType{completed}, jobs: []string{"j"}, ev: event(failed, "j", "w", t0), want: false},
		{name: "webhook not in set", webhooks: []string{"x"}, ev: event(failed, "j", "w", t0), want: false},
		{name: "event without job against job filter", jobs: []string{"j"}, ev: &gatewayv1.Event{}, want: false},
		{name: "received before since", since: t0.Add(time.Second), ev: event(failed, "j", "w", t0), want: false},
		{name: "received at since", since: t0, ev: event(failed, "j", "w", t0), want: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := hub.NewFilter(tc.types, tc.jobs, tc.webhooks)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.since.IsZero() {
				f = f.Since(tc.since)
			}
			if got := f.Match(tc.ev); got != tc.want {
				t.Errorf("Match = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestFilterInvalid(t *testing.T) {
	many := make([]string, hub.MaxJobIDs+1)
	for i := range many {
		many[i] = "j"
	}
	cases := []struct {
		name     string
		types    []gatewayv1.EventType
		jobs     []string
		webhooks []string
		field    string
	}{
		{name: "unknown type", types: []gatewayv1.EventType{42}, field: "event_types"},
		{name: "unspecified type", types: []gatewayv1.EventType{0}, field: "event_types"},
		{name: "empty job id", jobs: []string{""}, field: "job_ids"},
		{name: "too many job ids", jobs: many, field: "job_ids"},
		{name: "empty webhook id", webhooks: []string{""}, field: "webhook_ids"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := hub.NewFilter(tc.types, tc.jobs, tc.webhooks)
			var fe *errkind.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !errors.Is(err, hub.ErrInvalidFilter) {
				t.Fatalf("err = %v, want a FieldError on %s", err, tc.field)
			}
		})
	}
}

// FuzzFilter checks that any filter input is either refused with a
// FilterError or yields a filter that matches without panicking.
func FuzzFilter(f *testing.F) {
	f.Add(int32(3), "job-1", "default")
	f.Add(int32(0), "", "")
	f.Add(int32(99), "j", "w")
	f.Fuzz(func(t *testing.T, typ int32, job, webhook string) {
		flt, err := hub.NewFilter([]gatewayv1.EventType{gatewayv1.EventType(typ)}, []string{job}, []string{webhook})
		if err != nil {
			if !errors.Is(err, hub.ErrInvalidFilter) {
				t.Fatalf("unexpected error type: %v", err)
			}
			return
		}
		ev := event(gatewayv1.EventType(typ), job, webhook, time.Unix(0, 0))
		if !flt.Match(ev) {
			t.Fatalf("filter built from an event's own fields does not match it")
		}
	})
}
