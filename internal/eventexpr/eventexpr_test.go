package eventexpr_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"weak"

	"golang.org/x/sync/semaphore"
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

// sequences numbers events no earlier test run has judged: expressions
// and their verdicts are shared across runs (-count).
var sequences atomic.Uint64

func freshSequence() uint64 { return 1_000_000 + sequences.Add(1) }

// countingSlots is one evaluation slot that counts how often it was asked
// for and tells asked each time.
type countingSlots struct {
	*semaphore.Weighted
	acquired atomic.Int32
	asked    chan struct{}
}

func newCountingSlots() *countingSlots {
	return &countingSlots{Weighted: semaphore.NewWeighted(1), asked: make(chan struct{}, 16)}
}

func (c *countingSlots) Acquire(ctx context.Context, n int64) error {
	c.acquired.Add(1)
	c.asked <- struct{}{}
	return c.Weighted.Acquire(ctx, n)
}

// TestDecideEvaluatesOnceForEveryone: many streams with one filter asking
// about one event at once take one evaluation slot between them; the
// others wait for that evaluation's verdict rather than queueing for a
// slot each.
func TestDecideEvaluatesOnceForEveryone(t *testing.T) {
	e, err := eventexpr.Compile(`event.job.job_id == "decide-once"`)
	if err != nil {
		t.Fatal(err)
	}
	ev := sampleEvent()
	ev.Sequence, ev.Job.JobId = freshSequence(), "decide-once"
	ev.Id = fmt.Sprint("evt_", ev.Sequence)
	slots := newCountingSlots()
	if err := slots.Weighted.Acquire(t.Context(), 1); err != nil { // hold the evaluation back
		t.Fatal(err)
	}
	const streams = 100
	verdicts := make(chan error, streams)
	ask := func() {
		match, err := e.Decide(t.Context(), ev, slots)
		if err == nil && !match {
			err = errors.New("no match")
		}
		verdicts <- err
	}
	go ask()
	<-slots.asked // the first stream is evaluating
	for range streams - 1 {
		go ask()
	}
	slots.Release(1)
	for range streams {
		if err := <-verdicts; err != nil {
			t.Fatal(err)
		}
	}
	if n := slots.acquired.Load(); n != 1 {
		t.Errorf("%d streams asking about one event took %d evaluation slots, want 1", streams, n)
	}
	if match, ok := e.Remembered(ev); !ok || !match {
		t.Errorf("Remembered = %v, %v after Decide, want true, true", match, ok)
	}
}

// TestDecideTakesOverFromAnEndedStream: a stream whose context ends while
// it waits for a slot to evaluate for others gets its context's error,
// and a stream waiting for its verdict evaluates instead.
func TestDecideTakesOverFromAnEndedStream(t *testing.T) {
	e, err := eventexpr.Compile(`event.job.job_id == "decide-takeover"`)
	if err != nil {
		t.Fatal(err)
	}
	ev := sampleEvent()
	ev.Sequence, ev.Job.JobId = freshSequence(), "decide-takeover"
	ev.Id = fmt.Sprint("evt_", ev.Sequence)
	slots := newCountingSlots()
	if err := slots.Weighted.Acquire(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	first := make(chan error, 1)
	go func() {
		_, err := e.Decide(ctx, ev, slots)
		first <- err
	}()
	<-slots.asked
	second := make(chan error, 1)
	go func() {
		match, err := e.Decide(t.Context(), ev, slots)
		if err == nil && !match {
			err = errors.New("no match")
		}
		second <- err
	}()
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("the ended stream's Decide = %v, want context.Canceled", err)
	}
	<-slots.asked // the second stream took over
	slots.Release(1)
	if err := <-second; err != nil {
		t.Fatalf("the stream that took over: %v", err)
	}
	if n := slots.acquired.Load(); n != 2 {
		t.Errorf("evaluation slots asked for: %d, want 2", n)
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

// TestRegexChargedByCompiledSize: a regex is charged by the size of its
// compiled program, not the length of its source, so a short pattern
// with large repeat counts (thousands of instructions, tens of
// milliseconds per event on a 4 KiB prompt) is refused at compile time,
// naming the clause, and so is a pattern the filter cannot know in
// advance; a modest one passes.
func TestRegexChargedByCompiledSize(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		line, col int
		mention   string
	}{
		{"large repeat counts", `event.type == EVENT_TYPE_VIDEO_COMPLETED && event.job.prompt.matches("(?s).{999}.{999}z")`, 1, 45, `event.job.prompt.matches("(?s).{999}.{999}z")`},
		{"global form", "event.type == EVENT_TYPE_VIDEO_COMPLETED &&\n  matches(event.job.prompt, \"(?s).{99}z\")", 2, 3, `matches(event.job.prompt, "(?s).{99}z")`},
		{"over a prompt", `event.job.prompt.matches("(?i)dragon")`, 1, 1, `event.job.prompt.matches("(?i)dragon") is too costly`},
		{"many small clauses", strings.Repeat(`event.job.model.matches("(?s)a.{9}z") || `, 30) + "false", 0, 0, "too costly"},
		{"pattern from the event", `event.job.prompt.matches(event.job.model)`, 1, 1, "constant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := eventexpr.Compile(tc.src)
			var ee *eventexpr.Error
			if !errors.As(err, &ee) {
				t.Fatalf("err = %v, want an *eventexpr.Error", err)
			}
			if ee.Line != tc.line || ee.Column != tc.col || !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("err = %q (line %d, column %d), want line %d, column %d, mentioning %q", err, ee.Line, ee.Column, tc.line, tc.col, tc.mention)
			}
		})
	}
	for _, src := range []string{
		`event.job.model.matches("^kling-v2(-1)?-(master|pro)$")`, // a short field is charged as short
		`event.webhook_id.matches("^team-[a-z]+$") && event.job.videos.exists(v, v.url.endsWith(".mp4"))`,
	} {
		if _, err := eventexpr.Compile(src); err != nil {
			t.Errorf("a modest regex is refused: %v", err)
		}
	}
}

// TestRuntimeBudget: the compile-time estimate assumes a model name of at
// most 256 bytes, but a signed sender may send far more. A regex call
// whose input would take it over the per-evaluation budget (charged by
// the compiled program's size, not the pattern's length) is not run at
// all, and the filter does not match: a filter that cannot say yes does
// not pass the event. The same filter matches a name of the assumed
// size.
func TestRuntimeBudget(t *testing.T) {
	e, err := eventexpr.Compile(`event.job.model.matches("(?s)a.{20}z")`)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		model string
		want  bool
	}{
		{"22 bytes", "a" + strings.Repeat("x", 20) + "z", true},
		{"40 KiB", "a" + strings.Repeat("x", 20) + "z" + strings.Repeat("x", 40<<10), false},
		{"1 MiB", "a" + strings.Repeat("x", 20) + "z" + strings.Repeat("x", 1<<20), false},
	} {
		ev := sampleEvent()
		ev.Job.Model = tc.model
		if got := e.Match(ev); got != tc.want {
			t.Errorf("%s: Match = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestVerdictsHoldNoEvents: the remembered verdicts name events by
// sequence, so an event that nothing else holds is collected although
// many filters have judged it (ListEvents decodes events of up to a
// megabyte from the log for one call). The heap after GC is logged for
// the report; what the test asserts is that every event was collected.
func TestVerdictsHoldNoEvents(t *testing.T) {
	const filters, events = 8, 256
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var held []weak.Pointer[gatewayv1.Event]
	for f := range filters {
		e, err := eventexpr.Compile(fmt.Sprintf(`event.job.job_id != "f%d"`, f))
		if err != nil {
			t.Fatal(err)
		}
		for i := range events {
			ev := sampleEvent()
			ev.Sequence = uint64(i + 1)
			ev.Id = fmt.Sprintf("evt_%d_%d", f, i)
			ev.RawBody = make([]byte, 64<<10)
			if !e.Match(ev) {
				t.Fatal("no match")
			}
			held = append(held, weak.Make(ev))
		}
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	t.Logf("live heap after GC: %.1f MiB -> %.1f MiB, after %d filters judged %d events of 64 KiB each",
		float64(before.HeapAlloc)/(1<<20), float64(after.HeapAlloc)/(1<<20), filters, events)
	alive := 0
	for _, w := range held {
		if w.Value() != nil {
			alive++
		}
	}
	if alive > 0 {
		t.Fatalf("%d of %d judged events are still reachable after GC: the verdicts keep them", alive, len(held))
	}
}

// TestSharedExpressionsBounded: the table of shared expressions keeps the
// most recently used ones: a source used often stays shared however many
// others pass through, and the table does not grow without end.
func TestSharedExpressionsBounded(t *testing.T) {
	hot := `event.job.job_id == "hot"`
	a, err := eventexpr.Compile(hot)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3000 {
		if _, err := eventexpr.Compile(fmt.Sprintf(`event.job.job_id == "cold-%d"`, i)); err != nil {
			t.Fatal(err)
		}
		if i%500 == 0 {
			if b, _ := eventexpr.Compile(hot); b != a {
				t.Fatalf("after %d other sources, the hot one is no longer shared", i)
			}
		}
	}
	latest := `event.job.job_id == "cold-2999"`
	x, _ := eventexpr.Compile(latest)
	y, _ := eventexpr.Compile(latest)
	if x != y {
		t.Error("the latest source is not shared: the table stopped taking new ones")
	}
	first := `event.job.job_id == "cold-0"`
	if p, _ := eventexpr.Compile(first); p == nil {
		t.Fatal("nil Expr")
	}
}
