package jobs

import (
	"context"
	"sync"
)

// foldSignal wakes the callers of WaitFolded when Folded advances: each
// advance closes the channel the waiters hold, and the next waiter makes a
// new one.
type foldSignal struct {
	mu sync.Mutex
	ch chan struct{} // nil while nobody waits
}

// advanced wakes every waiter; the folder calls it after storing Folded.
func (p *Projection) advanced() {
	p.signal.mu.Lock()
	defer p.signal.mu.Unlock()
	if p.signal.ch != nil {
		close(p.signal.ch)
		p.signal.ch = nil
	}
}

// WaitFolded returns once this process has folded the log through seq, so
// a Get afterwards reads a state that includes every event up to seq; or
// ctx's error when it ends first. CreateJob uses it to answer the state of
// the job it just logged.
func (p *Projection) WaitFolded(ctx context.Context, seq uint64) error {
	for {
		p.signal.mu.Lock()
		if p.folded.Load() >= seq {
			p.signal.mu.Unlock()
			return nil
		}
		if p.signal.ch == nil {
			p.signal.ch = make(chan struct{})
		}
		ch := p.signal.ch
		p.signal.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
