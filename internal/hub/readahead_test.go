package hub

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/store"
)

// A stream that ends while the batch after the one it is sending is being
// read ahead gives that batch's catch-up budget back, and a stream that
// reads to the head leaves none held either: the budget bounds streams
// that stalled, so a reservation lost with a stream would shrink it for
// good.
func TestReadAheadGivesItsBudgetBack(t *testing.T) {
	cases := []struct {
		name string
		// read is how many events the stream takes before it ends.
		read int
	}{
		{name: "ends during the first batch", read: 1},
		{name: "ends in a later batch", read: 6},
		{name: "reads every event", read: 12},
	}
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var last uint64
	for i := range 12 {
		ev := &gatewayv1.Event{Id: fmt.Sprint("evt_", i), WebhookId: "w", DeliveryId: fmt.Sprint("d", i), Job: &gatewayv1.Job{JobId: "j"}}
		if last, _, err = st.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Batches of 4 stored events (storedBatchFactor × 1), memory
			// of recent events off, room for two reservations.
			h := New(Config{Log: st, Last: last, Recent: -1, CatchUpBatch: 1, CatchUpBytes: 2 * readReserve})
			defer h.Close()
			all, err := NewFilter(nil, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			s, err := h.Subscribe(ctx, all, Start{Kind: StartBeginning}, true)
			if err != nil {
				t.Fatal(err)
			}
			for want := uint64(1); want <= uint64(tc.read); want++ {
				nctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				it, err := s.Next(nctx)
				cancel()
				if err != nil || it.Sequence() != want {
					t.Fatalf("Next = %v, %v; want sequence %d", it, err, want)
				}
				if want == 1 && s.ahead == nil {
					t.Fatal("no batch is read ahead while the first is sent")
				}
			}
			s.Close()
			if !h.budget.sem.TryAcquire(2 * readReserve) {
				t.Fatal("the closed stream still holds catch-up budget")
			}
		})
	}
}
