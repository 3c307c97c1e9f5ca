package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// lookupShare is the largest share of wall time that id lookups the index
// cannot answer may take: after one that took d, the next waits 9d.
const lookupShare = 10

// ErrLookupPaced refuses an id lookup that waited maxLookupWait for its
// turn (see lookupPacer); a retry later may succeed.
var ErrLookupPaced = errors.New("store: lookups of ids the id index lacks are paced")

// maxLookupWait is how long a lookup waits for its turn before it is
// refused as unavailable.
const maxLookupWait = 5 * time.Second

// lookupPacer runs the wildcard id lookups one at a time and keeps them to
// a tenth of the time. Each walks every job's subjects while holding the
// stream's lock, which appends need too (255 ms at 1,000,000 events): a
// client asking for unknown ids in a loop would otherwise hold ingest up
// for as long as it liked. Lookups the index answers are not paced.
type lookupPacer struct {
	now   func() time.Time
	mu    sync.Mutex
	busy  bool      // guarded by mu: a lookup is running
	ready time.Time // guarded by mu: when the next lookup may start
}

// run runs lookup when its turn comes, waiting up to maxLookupWait (or
// ctx's deadline, if sooner) and refusing with ErrUnavailable after that.
func (p *lookupPacer) run(ctx context.Context, lookup func() error) error {
	waited := time.Duration(0)
	for {
		wait, ok := p.begin()
		if ok {
			break
		}
		if waited+wait > maxLookupWait {
			return fmt.Errorf("%w: no turn within %s", ErrLookupPaced, maxLookupWait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		waited += wait
	}
	start := p.now()
	err := lookup()
	p.end(start)
	return err
}

// begin takes the turn if it is free, or says how long until it may be.
func (p *lookupPacer) begin() (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.busy {
		return 10 * time.Millisecond, false
	}
	if wait := p.ready.Sub(p.now()); wait > 0 {
		return wait, false
	}
	p.busy = true
	return 0, true
}

// end gives the turn back; the next lookup may start after lookupShare-1
// times what this one took.
func (p *lookupPacer) end(start time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	p.busy = false
	p.ready = now.Add((lookupShare - 1) * now.Sub(start))
}
