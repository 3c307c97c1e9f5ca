package hub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/store"
)

// storedEvents opens a real embedded store holding n events, the even ones
// with a raw body and the odd ones (and so the last, n being even) without,
// and returns it with the events as appended.
func storedEvents(t *testing.T, n int) (*store.Store, []*gatewayv1.Event) {
	t.Helper()
	ctx := t.Context()
	st, err := store.Open(ctx, store.Config{DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	events := make([]*gatewayv1.Event, n)
	for i := range n {
		ev := &gatewayv1.Event{
			Id: fmt.Sprint("evt_", i), WebhookId: "w", DeliveryId: fmt.Sprint("d", i),
			Type: gatewayv1.EventType_EVENT_TYPE_VIDEO_PROCESSING, Job: &gatewayv1.Job{JobId: "j"},
			ReceivedAt: timestamppb.Now(),
		}
		if i%2 == 0 {
			ev.RawBody = []byte(`{"x":1}`)
		}
		seq, _, err := st.Append(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		ev.Sequence = seq
		events[i] = ev
	}
	return st, events
}

// expressionFilter is a filter with only the CEL expression src.
func expressionFilter(t *testing.T, src string) *Filter {
	t.Helper()
	f, err := NewFilter(nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f, err = f.WithExpression(src); err != nil {
		t.Fatal(err)
	}
	return f
}

// nextSequences returns the sequences s delivers up to and including last.
func nextSequences(t *testing.T, s *Subscription, last uint64) []uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var got []uint64
	for {
		it, err := s.Next(ctx)
		if err != nil {
			t.Fatalf("Next after %v: %v", got, err)
		}
		got = append(got, it.Sequence())
		if it.Sequence() >= last {
			return got
		}
	}
}

// A stream catching up from the log's stored bytes evaluates its CEL
// expression holding one of Hub.evaluating's slots, as Config.Evaluators
// promises: with every slot taken it waits, so that many streams with
// costly expressions replaying from the beginning cannot take every CPU.
// A Next that ends waiting loses nothing: the next call delivers the
// event it was deciding on.
func TestCatchUpFromStoredBytesEvaluatesHoldingASlot(t *testing.T) {
	st, events := storedEvents(t, 4)
	last := events[len(events)-1].GetSequence()
	h := New(Config{Log: st, Last: last, Recent: -1, Evaluators: 1})
	t.Cleanup(h.Close)
	if err := h.evaluating.Acquire(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	released := false
	release := func() {
		if !released {
			released = true
			h.evaluating.Release(1)
		}
	}
	defer release()
	s, err := h.Subscribe(t.Context(), expressionFilter(t, `event.job.job_id == "j"`), Start{Kind: StartBeginning}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if it, err := s.Next(ctx); err == nil {
		t.Fatalf("Next delivered sequence %d with every evaluation slot taken", it.Sequence())
	} else if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next with every evaluation slot taken: %v, want the caller's deadline", err)
	}

	release()
	got := nextSequences(t, s, last)
	want := []uint64{1, 2, 3, 4}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after the slot was freed the stream delivered %v, want %v", got, want)
	}
}

// A stream's expression sees the same event in catch-up from stored bytes
// as its group shows it live: without the raw body in the basic view. An
// expression reading event.raw_body would otherwise select different
// events depending on whether the stream happens to be live.
func TestCatchUpExpressionSeesTheStreamsView(t *testing.T) {
	const n = 6
	st, events := storedEvents(t, n)
	last := events[n-1].GetSequence()
	all := []uint64{1, 2, 3, 4, 5, 6}
	bodyless := []uint64{2, 4, 6}
	for _, tc := range []struct {
		name string
		full bool
		want []uint64
	}{
		{name: "basic view sees no body", want: all},
		{name: "full view sees the body", full: true, want: bodyless},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const src = `size(event.raw_body) == 0`
			// Catch-up: no recent events, so every event is read from
			// the log's stored bytes.
			h := New(Config{Log: st, Last: last, Recent: -1})
			t.Cleanup(h.Close)
			s, err := h.Subscribe(t.Context(), expressionFilter(t, src), Start{Kind: StartBeginning}, tc.full)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Close)
			if got := nextSequences(t, s, last); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("catch-up delivered %v, want %v", got, tc.want)
			}

			// Live: the same events published to a stream that starts
			// now, evaluated by the expression's group.
			live := New(Config{Log: st, Last: 0, Recent: -1})
			t.Cleanup(live.Close)
			ls, err := live.Subscribe(t.Context(), expressionFilter(t, src), Start{}, tc.full)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(ls.Close)
			for _, ev := range events {
				live.Publish(ev)
			}
			if got := nextSequences(t, ls, last); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("live delivered %v, want %v", got, tc.want)
			}
		})
	}
}
