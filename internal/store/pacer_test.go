package store

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestLookupPacer: after a lookup that took d, the next may start only
// 9d later (refused at once when that is beyond maxLookupWait), lookups
// never overlap, and a lookup's own error comes back unchanged.
func TestLookupPacer(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	p := newLookupPacer(clock.now)
	ctx := context.Background()
	calls := 0
	took := func(d time.Duration) func() error {
		return func() error {
			calls++
			clock.advance(d)
			return nil
		}
	}

	if err := p.run(ctx, took(time.Second)); err != nil || calls != 1 {
		t.Fatalf("first lookup: %v, %d calls", err, calls)
	}
	// Its turn is 9 s away, more than maxLookupWait: refused, not run.
	if err := p.run(ctx, took(0)); !errors.Is(err, ErrLookupPaced) || calls != 1 {
		t.Fatalf("lookup right after a 1 s one: %v, %d calls; want ErrLookupPaced and no call", err, calls)
	}
	clock.advance(9 * time.Second)
	if err := p.run(ctx, took(0)); err != nil || calls != 2 {
		t.Fatalf("lookup after the pause: %v, %d calls", err, calls)
	}

	want := errors.New("not found")
	if err := p.run(ctx, func() error { return want }); !errors.Is(err, want) {
		t.Fatalf("lookup error: %v, want %v", err, want)
	}

	// One at a time: while a lookup runs, the turn is taken.
	running, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- p.run(ctx, func() error {
			close(running)
			<-release
			return nil
		})
	}()
	<-running
	select {
	case p.turn <- struct{}{}:
		t.Fatal("a second lookup got the turn while one was running")
	default:
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case p.turn <- struct{}{}:
		<-p.turn
	default:
		t.Fatal("the turn stayed taken after an instant lookup ended")
	}
}
