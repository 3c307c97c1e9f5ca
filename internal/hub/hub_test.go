package hub_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/errkind"
	"github.com/klingfan/klingfan/internal/hub"
	"github.com/klingfan/klingfan/internal/store"
)

// logHub is a hub fed by the tail of a real embedded log, as in the server.
type logHub struct {
	t     *testing.T
	store *store.Store
	hub   *hub.Hub
	n     int
}

func newLogHub(t *testing.T, cfg hub.Config) *logHub {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := store.Open(ctx, store.Config{DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Log = st
	h := hub.New(cfg)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = st.Tail(ctx, 0, h.Publish)
	}()
	t.Cleanup(func() {
		h.Close()
		cancel()
		<-done
		st.Close()
	})
	return &logHub{t: t, store: st, hub: h}
}

// append logs an event for job and returns its sequence.
func (l *logHub) append(job string) uint64 {
	l.t.Helper()
	seq, err := l.tryAppend(job)
	if err != nil {
		l.t.Fatal(err)
	}
	return seq
}

// tryAppend logs an event for job; safe from one goroutine at a time.
func (l *logHub) tryAppend(job string) (uint64, error) {
	l.n++
	ev := &gatewayv1.Event{
		Id: fmt.Sprintf("evt_%d", l.n), WebhookId: "w", DeliveryId: fmt.Sprint("d-", l.n),
		Type: gatewayv1.EventType_EVENT_TYPE_VIDEO_PROCESSING, Job: &gatewayv1.Job{JobId: job},
		ReceivedAt: timestamppb.Now(), RawBody: []byte(`{}`),
	}
	seq, _, err := l.store.Append(context.Background(), ev)
	return seq, err
}

// Subscribers with a one-event buffer that read in random bursts while
// events keep arriving switch between live delivery and catch-up many
// times, and still see every matching event exactly once, in order.
func TestHandOffHasNoGapsOrDuplicates(t *testing.T) {
	// Catch-up served from the log only, from a memory of recent events
	// too small to reach back far enough half the time, and from memory
	// alone.
	for _, tc := range []struct {
		name   string
		recent int
		seed   uint64
	}{{"log only", -1, 1}, {"tiny memory", 5, 2}, {"memory", 0, 3}, {"tiny memory again", 3, 4}} {
		seed := tc.seed
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			l := newLogHub(t, hub.Config{Buffer: 1, CatchUpBatch: 7, Recent: tc.recent, Registerer: reg})
			const n = 600
			// The readers with an expression receive live events through
			// their expression's group, two of them sharing one.
			readers := []struct {
				name string
				jobs []string
				expr string
				full bool
				keep func(i int) bool
			}{
				{name: "all", keep: func(int) bool { return true }},
				{name: "odd jobs", jobs: []string{"odd"}, full: true, keep: func(i int) bool { return i%2 == 1 }},
				{name: "every third", jobs: []string{"third"}, keep: func(i int) bool { return i%3 == 0 && i%2 == 0 }},
				{name: "expression: odd jobs", expr: `event.job.job_id == "odd"`, full: true, keep: func(i int) bool { return i%2 == 1 }},
				{name: "expression: not odd", expr: `event.job.job_id != "odd"`, keep: func(i int) bool { return i%2 == 0 }},
				{name: "expression: not odd, third jobs", jobs: []string{"third"}, expr: `event.job.job_id != "odd"`, keep: func(i int) bool { return i%3 == 0 && i%2 == 0 }},
			}
			subs := make([]*hub.Subscription, len(readers))
			for i, r := range readers {
				f, err := hub.NewFilter(nil, r.jobs, nil)
				if err == nil {
					f, err = f.WithExpression(r.expr)
				}
				if err != nil {
					t.Fatal(err)
				}
				if subs[i], err = l.hub.Subscribe(context.Background(), f, hub.Start{}, r.full); err != nil {
					t.Fatal(err)
				}
				defer subs[i].Close()
			}
			seqs := make([]uint64, n)
			appended := make(chan error, 1)
			go func() {
				rng := rand.New(rand.NewPCG(seed, 99))
				for i := range n {
					// Bursts with pauses between them: readers overflow
					// during a burst, catch up, rejoin, and overflow again.
					if rng.IntN(8) == 0 {
						for range rng.IntN(100000) {
							runtime.Gosched()
						}
					}
					job := "even"
					switch {
					case i%2 == 1:
						job = "odd"
					case i%3 == 0:
						job = "third"
					}
					seq, err := l.tryAppend(job)
					if err != nil {
						appended <- err
						return
					}
					seqs[i] = seq
				}
				appended <- nil
			}()
			type result struct {
				got []uint64
				err error
			}
			results := make([]chan result, len(readers))
			for ri, r := range readers {
				results[ri] = make(chan result, 1)
				want := 0
				for i := range n {
					if r.keep(i) {
						want++
					}
				}
				go func(sub *hub.Subscription, rng *rand.Rand, full bool) {
					var got []uint64
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					for len(got) < want {
						// Pause at random so the one-event buffer overflows.
						for range rng.IntN(300) {
							runtime.Gosched()
						}
						it, err := sub.Next(ctx)
						if err != nil {
							results[ri] <- result{got, err}
							return
						}
						// What the stream sends: items from the log forward
						// the stored bytes and carry no decoded event.
						b, err := it.Encoded()
						var resp gatewayv1.SubscribeResponse
						if err == nil {
							err = proto.Unmarshal(b, &resp)
						}
						if err != nil {
							results[ri] <- result{got, fmt.Errorf("encoding: %w", err)}
							return
						}
						ev := resp.GetEvent()
						if full != (len(ev.GetRawBody()) != 0) {
							results[ri] <- result{got, fmt.Errorf("view full=%v but raw body %q", full, ev.GetRawBody())}
							return
						}
						if ev.GetSequence() != it.Sequence() || ev.GetId() == "" {
							results[ri] <- result{got, fmt.Errorf("item %d encodes event %q at sequence %d", it.Sequence(), ev.GetId(), ev.GetSequence())}
							return
						}
						got = append(got, ev.GetSequence())
					}
					results[ri] <- result{got, nil}
				}(subs[ri], rand.New(rand.NewPCG(seed, uint64(ri))), r.full)
			}
			if err := <-appended; err != nil {
				t.Fatal(err)
			}
			for ri, r := range readers {
				res := <-results[ri]
				if res.err != nil {
					t.Fatalf("%s: after %d events: %v", r.name, len(res.got), res.err)
				}
				var want []uint64
				for i, seq := range seqs {
					if r.keep(i) {
						want = append(want, seq)
					}
				}
				if !slices.Equal(res.got, want) {
					t.Errorf("%s: got %d events %v, want %d %v", r.name, len(res.got), res.got, len(want), want)
				}
			}
			// The point of the test is the hand-off: it must have happened.
			catchUps := gathered(t, reg, "klingfan_hub_catchups_total")
			fromLog := gathered(t, reg, "klingfan_hub_replayed_events_total")
			fromMemory := gathered(t, reg, "klingfan_hub_replayed_recent_events_total")
			t.Logf("catch-ups: %v, replayed from the log: %v, from memory: %v", catchUps, fromLog, fromMemory)
			if catchUps < 5 {
				t.Errorf("only %v catch-ups: the test did not exercise the hand-off", catchUps)
			}
			if tc.recent < 0 && fromMemory != 0 || tc.recent >= 0 && fromMemory == 0 {
				t.Errorf("memory served %v events with Recent %d", fromMemory, tc.recent)
			}
		})
	}
}

func TestSubscribeLimitsAndClose(t *testing.T) {
	l := newLogHub(t, hub.Config{MaxSubscriptions: 2})
	f, _ := hub.NewFilter(nil, nil, nil)
	a, err := l.hub.Subscribe(context.Background(), f, hub.Start{}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.hub.Subscribe(context.Background(), f, hub.Start{}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := l.hub.Subscribe(context.Background(), f, hub.Start{}, false); !errors.Is(err, hub.ErrTooManyStreams) {
		t.Fatalf("third subscription: err = %v, want ErrTooManyStreams", err)
	}
	a.Close()
	b, err := l.hub.Subscribe(context.Background(), f, hub.Start{}, false)
	if err != nil {
		t.Fatalf("after a Close there is room again: %v", err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := b.Next(context.Background())
		errc <- err
	}()
	l.hub.Close()
	if err := <-errc; !errors.Is(err, hub.ErrClosed) {
		t.Fatalf("Next after Close: %v, want ErrClosed", err)
	}
}

func TestSubscribeStartOutOfRange(t *testing.T) {
	l := newLogHub(t, hub.Config{})
	l.append("j")
	f, _ := hub.NewFilter(nil, nil, nil)
	_, err := l.hub.Subscribe(context.Background(), f, hub.Start{Kind: hub.StartAfter, After: 5}, false)
	var re *errkind.RangeError
	if !errors.As(err, &re) || re.First != 1 || re.Last != 1 {
		t.Fatalf("err = %v, want a RangeError naming 1..1", err)
	}
}

// gathered returns the value of an unlabelled counter or gauge.
func gathered(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			return m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}
