package hub_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/klingfan/klingfan/internal/hub"
)

// TestCatchUpBudgetMakesReadersWait: with a budget that fits one batch,
// a second subscription catching up from the log waits (within its
// context) while the first holds an unsent batch, and reads once the
// first has sent it and let go.
func TestCatchUpBudgetMakesReadersWait(t *testing.T) {
	// Recent off: every catch-up reads the log. One byte of budget fits
	// exactly one reservation.
	l := newLogHub(t, hub.Config{Recent: -1, CatchUpBatch: 2, CatchUpBytes: 1})
	for range 6 {
		l.append("j")
	}
	f, _ := hub.NewFilter(nil, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	from := hub.Start{Kind: hub.StartBeginning}
	a, err := l.hub.Subscribe(ctx, f, from, true)
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.hub.Subscribe(ctx, f, from, true)
	if err != nil {
		t.Fatal(err)
	}

	// a reads the batch [1, 2] and holds it: one item is still unsent.
	if it, err := a.Next(ctx); err != nil || it.Sequence() != 1 {
		t.Fatalf("a: %v %v, want sequence 1", it, err)
	}
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = b.Next(short)
	cancelShort()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("b read while a held the whole budget: err = %v, want DeadlineExceeded", err)
	}

	got := make(chan uint64, 1)
	go func() {
		it, err := b.Next(ctx)
		if err != nil {
			got <- 0
			return
		}
		got <- it.Sequence()
	}()
	if it, err := a.Next(ctx); err != nil || it.Sequence() != 2 {
		t.Fatalf("a: %v %v, want sequence 2", it, err)
	}
	// a's batch is sent; a ends (a Next would free the budget too, but
	// could take it again before b is queued for it).
	a.Close()
	select {
	case seq := <-got:
		if seq != 1 {
			t.Fatalf("b got sequence %d, want 1", seq)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("b never got budget after a sent its batch")
	}
}

// TestCatchUpBudgetWaitEndsOnClose: a subscription waiting for budget
// returns ErrClosed when the hub shuts down, so it cannot hold up a
// graceful shutdown.
func TestCatchUpBudgetWaitEndsOnClose(t *testing.T) {
	l := newLogHub(t, hub.Config{Recent: -1, CatchUpBatch: 2, CatchUpBytes: 1})
	for range 4 {
		l.append("j")
	}
	f, _ := hub.NewFilter(nil, nil, nil)
	ctx := context.Background()
	from := hub.Start{Kind: hub.StartBeginning}
	a, err := l.hub.Subscribe(ctx, f, from, true)
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.hub.Subscribe(ctx, f, from, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Next(ctx); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := b.Next(ctx)
		errc <- err
	}()
	l.hub.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, hub.ErrClosed) {
			t.Fatalf("Next waiting for budget: %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a subscription waiting for budget ignored the hub's Close")
	}
}
