package hub

import (
	"context"

	"golang.org/x/sync/semaphore"
)

// DefaultCatchUpBytes is the default of Config.CatchUpBytes.
const DefaultCatchUpBytes = 256 << 20

// readReserve is what a subscription reserves before it reads a batch from
// the log: the log's own cap on the stored bytes of one read (about 4 MiB,
// see store.Read). The reservation shrinks to the batch's real size once
// read.
const readReserve = 4 << 20

// readBudget bounds the bytes that catch-up batches read from the log hold
// at once, across every subscription of the hub. Without it, N stalled
// streams that each read a batch of large events from the log pin N × 4
// MiB; with it, a subscription that cannot get budget waits (as long as its
// context lets it) until another one has sent its batch or has ended.
// Batches served from the hub's recent events take no budget: they share
// memory the hub holds anyway.
type readBudget struct {
	sem  *semaphore.Weighted // nil: no bound
	size int64
}

// newReadBudget returns a budget of total bytes; total <= 0 means no bound.
func newReadBudget(total int64) *readBudget {
	if total <= 0 {
		return &readBudget{}
	}
	return &readBudget{sem: semaphore.NewWeighted(total), size: total}
}

// acquire reserves room for one read and returns how much it reserved. It
// waits until there is room, ctx ends (its error) or done is closed
// (ErrClosed: the hub is shutting down).
func (b *readBudget) acquire(ctx context.Context, done <-chan struct{}) (int64, error) {
	if b.sem == nil {
		return 0, nil
	}
	n := min(readReserve, b.size)
	if b.sem.TryAcquire(n) {
		return n, nil
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-done:
			cancel()
		case <-wctx.Done():
		}
	}()
	if err := b.sem.Acquire(wctx, n); err != nil {
		select {
		case <-done:
			return 0, ErrClosed
		default:
			return 0, err
		}
	}
	return n, nil
}

// tryAcquire reserves room for one read if there is room now.
func (b *readBudget) tryAcquire() (int64, bool) {
	if b.sem == nil {
		return 0, true
	}
	n := min(readReserve, b.size)
	return n, b.sem.TryAcquire(n)
}

// settle shrinks a reservation of held bytes to the used bytes that the
// batch read with it really holds, and returns the new holding. A batch
// larger than its reservation (the log's cap is a soft one: it stops after
// the event that crosses it) keeps the reservation; the overshoot is at
// most one event per reading subscription.
func (b *readBudget) settle(held, used int64) int64 {
	if b.sem == nil || held == 0 || used >= held {
		return held
	}
	b.sem.Release(held - used)
	return used
}

// release returns held bytes to the budget.
func (b *readBudget) release(held int64) {
	if b.sem != nil && held > 0 {
		b.sem.Release(held)
	}
}

// takeBudget reserves budget for the subscription's next log read, waiting
// while other subscriptions hold it all.
func (s *Subscription) takeBudget(ctx context.Context) error {
	if s.held > 0 {
		return nil
	}
	n, err := s.h.budget.acquire(ctx, s.h.done)
	if err != nil {
		return err
	}
	s.held = n
	return nil
}

// settleBudget shrinks the subscription's reservation to the bytes its
// queued batch holds (after the view dropped raw bodies, when it does).
func (s *Subscription) settleBudget(used int64) {
	if used == 0 {
		s.releaseBudget()
		return
	}
	s.held = s.h.budget.settle(s.held, used)
}

// releaseBudget gives the subscription's holding back, once the batch it
// read has been sent (or the subscription ends).
func (s *Subscription) releaseBudget() {
	s.h.budget.release(s.held)
	s.held = 0
}
