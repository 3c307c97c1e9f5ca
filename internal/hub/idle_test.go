package hub_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/klingfan/klingfan/internal/hub"
)

// An idle subscription holds a small buffer; its first event gives it the
// configured one. Before that, a burst longer than the small buffer sends
// the stream to catch-up; after it, a burst of Config.Buffer events does
// not, and every event arrives once, in order, either way.
func TestIdleBufferGrowsWithTheFirstEvent(t *testing.T) {
	const buffer = 64
	for _, tc := range []struct {
		name string
		// warm delivers one event before the burst.
		warm     bool
		burst    int
		catchUps float64
	}{
		{name: "idle stream, burst over the idle buffer", burst: 9, catchUps: 1},
		{name: "idle stream, burst within the idle buffer", burst: 8, catchUps: 0},
		{name: "stream that received an event, burst of the full buffer", warm: true, burst: buffer, catchUps: 0},
		{name: "stream that received an event, burst over the full buffer", warm: true, burst: buffer + 1, catchUps: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			l := newLogHub(t, hub.Config{Buffer: buffer, Registerer: reg})
			f, err := hub.NewFilter(nil, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			sub, err := l.hub.Subscribe(context.Background(), f, hub.Start{}, false)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(sub.Close)
			var want []uint64
			ctx := context.Background()
			if tc.warm {
				want = append(want, l.append("j"))
				l.waitPublished(want[0])
				it, err := sub.Next(ctx)
				if err != nil || it.Sequence() != want[0] {
					t.Fatalf("first event: %v, %v", it, err)
				}
				want = want[:0]
			}
			for range tc.burst {
				want = append(want, l.append("j"))
			}
			l.waitPublished(want[len(want)-1])
			if got := gathered(t, reg, "klingfan_hub_catchups_total"); got != tc.catchUps {
				t.Errorf("catch-ups after a burst of %d = %v, want %v", tc.burst, got, tc.catchUps)
			}
			for _, seq := range want {
				it, err := sub.Next(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if it.Sequence() != seq {
					t.Fatalf("got sequence %d, want %d", it.Sequence(), seq)
				}
			}
		})
	}
}

// waitPublished waits until the hub has published seq.
func (l *logHub) waitPublished(seq uint64) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for l.hub.Last() < seq {
		select {
		case <-ctx.Done():
			l.t.Fatalf("the hub did not publish sequence %d", seq)
		case <-time.After(time.Millisecond):
		}
	}
}
