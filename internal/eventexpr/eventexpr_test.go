package eventexpr_test

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/eventexpr"
)

func sampleEvent() *gatewayv1.Event {
	return &gatewayv1.Event{
		Type:       gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED,
		WebhookId:  "default",
		ReceivedAt: timestamppb.Now(),
		Job: &gatewayv1.Job{
			JobId:   "j1",
			Model:   "kling-v2-master",
			Kind:    gatewayv1.JobKind_JOB_KIND_AUDIO,
			Audios:  []*gatewayv1.Audio{{Mp3Url: "https://cdn.example/a.mp3"}},
			Billing: []*gatewayv1.Charge{{ChargeType: "cash", Amount: "0.5", Currency: "USD"}},
		},
	}
}

func TestMatch(t *testing.T) {
	cases := []struct {
		name, src string
		want      bool
	}{
		{"model and kind", `event.job.model == "kling-v2-master" && event.job.kind == JOB_KIND_AUDIO`, true},
		{"other kind", `event.job.kind == JOB_KIND_VIDEO`, false},
		{"qualified enum", `event.job.kind == JobKind.JOB_KIND_AUDIO`, true},
		{"event type", `event.type == EVENT_TYPE_VIDEO_COMPLETED`, true},
		{"outputs", `event.job.audios.exists(a, a.mp3_url.endsWith(".mp3"))`, true},
		{"billing", `event.job.billing.exists(c, c.currency == "USD" && double(c.amount) > 0.1)`, true},
		{"unset message field", `has(event.job.parent_video)`, false},
		{"timestamp", `event.received_at > timestamp("2020-01-01T00:00:00Z")`, true},
		{"runtime error is no match", `event.job.billing[5].amount == "1"`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := eventexpr.Compile(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			if got := e.Match(sampleEvent()); got != tc.want {
				t.Errorf("Match = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCompileRefuses(t *testing.T) {
	cases := []struct {
		name, src string
		line, col int
		mention   string
	}{
		{"syntax", `event.job.model ==`, 1, 19, "Syntax error"},
		{"unknown field", `event.job.modle == "x"`, 1, 10, "modle"},
		{"unknown variable", "event.type == EVENT_TYPE_VIDEO_COMPLETED &&\n  evnt.job.kind == 1", 2, 3, "evnt"},
		{"not boolean", `event.job.model`, 0, 0, "boolean"},
		{"too costly", `event.job.images.all(a, event.job.images.all(b, event.job.images.all(c, a.url + b.url == c.url)))`, 0, 0, "too costly"},
		{"empty", `  `, 0, 0, "empty"},
		{"too long", strings.Repeat("true && ", 600) + "true", 0, 0, "longer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := eventexpr.Compile(tc.src)
			var ee *eventexpr.Error
			if !errors.As(err, &ee) || !errors.Is(err, eventexpr.ErrInvalid) {
				t.Fatalf("err = %v, want an *eventexpr.Error", err)
			}
			if ee.Line != tc.line || ee.Column != tc.col || !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("err = %q (line %d, column %d), want line %d, column %d, mentioning %q", err, ee.Line, ee.Column, tc.line, tc.col, tc.mention)
			}
		})
	}
}

// TestSharedVerdict: streams with the same expression share one compiled
// Expr, which answers again for the same event without re-evaluating and
// evaluates afresh for a different event.
func TestSharedVerdict(t *testing.T) {
	src := `event.job.job_id == "j1"`
	a, err := eventexpr.Compile(src)
	if err != nil {
		t.Fatal(err)
	}
	b, err := eventexpr.Compile(src)
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Error("the same source compiled twice into different Exprs")
	}
	ev, other := sampleEvent(), sampleEvent()
	other.Job.JobId = "j2"
	for i, tc := range []struct {
		ev   *gatewayv1.Event
		want bool
	}{{ev, true}, {ev, true}, {other, false}, {ev, true}} {
		if got := b.Match(tc.ev); got != tc.want {
			t.Errorf("step %d: Match = %v, want %v", i, got, tc.want)
		}
	}
}

// TestVerdictsOfInterleavedEvents: streams at different positions ask
// about different recent events in turn; each gets its own event's
// verdict, whatever the others asked in between.
func TestVerdictsOfInterleavedEvents(t *testing.T) {
	e, err := eventexpr.Compile(`event.job.job_id == "even"`)
	if err != nil {
		t.Fatal(err)
	}
	events := make([]*gatewayv1.Event, 200)
	for i := range events {
		events[i] = sampleEvent()
		events[i].Sequence = uint64(i + 1)
		events[i].Job.JobId = map[bool]string{true: "even", false: "odd"}[i%2 == 0]
	}
	for round := range 3 {
		for stream := range 10 {
			for i := stream * 7; i < len(events); i += 13 {
				if got, want := e.Match(events[i]), i%2 == 0; got != want {
					t.Fatalf("round %d, stream %d, event %d: Match = %v, want %v", round, stream, i, got, want)
				}
			}
		}
	}
}

// BenchmarkMatchStreamsApart is 100 streams with the same filter, spread
// over the last 64 events (as they are under load), asking in turn about
// their next event: with the verdicts remembered per recent event, one
// evaluation per event serves them all (ns/op is per stream per event).
func BenchmarkMatchStreamsApart(b *testing.B) {
	e, err := eventexpr.Compile(`event.job.model == "kling-v2-master" && event.job.kind == JOB_KIND_AUDIO`)
	if err != nil {
		b.Fatal(err)
	}
	const streams, spread = 100, 64
	events := make([]*gatewayv1.Event, 4096)
	for i := range events {
		events[i] = sampleEvent()
		events[i].Sequence = uint64(i + 1)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s, head := i%streams, i/streams
		if !e.Match(events[(head+spread-(s*7)%spread)%len(events)]) {
			b.Fatal("no match")
		}
		i++
	}
}

// BenchmarkMatch measures the per-event cost of a typical filter, which
// every filtered stream pays for every published event.
func BenchmarkMatch(b *testing.B) {
	e, err := eventexpr.Compile(`event.job.model == "kling-v2-master" && event.job.kind == JOB_KIND_AUDIO`)
	if err != nil {
		b.Fatal(err)
	}
	// A fresh event each time, so the remembered verdict never answers:
	// this is the cost of one evaluation.
	events := make([]*gatewayv1.Event, 1024)
	for i := range events {
		events[i] = sampleEvent()
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if !e.Match(events[i%len(events)]) {
			b.Fatal("no match")
		}
		i++
	}
}
