package store

import (
	"context"
	"fmt"
	"time"

	"github.com/klingfan/klingfan/internal/errkind"
)

// lookupShare is the largest share of wall time that id lookups the index
// cannot answer may take: after one that took d, the next waits 9d.
const lookupShare = 10

// ErrLookupPaced refuses an id lookup that waited maxLookupWait for its
// turn (see lookupPacer); a retry later may succeed.
var ErrLookupPaced = errkind.New(errkind.Unavailable, "store", "this event id is not in the id index, and lookups of such ids run one at a time; retry later")

// maxLookupWait is how long a lookup waits for its turn before it is
// refused as unavailable.
const maxLookupWait = 5 * time.Second

// lookupPacer runs the wildcard id lookups one at a time and keeps them to
// a tenth of the time. Each walks every job's subjects while holding the
// stream's lock, which appends need too, for a time that grows with the
// log: a client asking for unknown ids in a loop would otherwise hold
// ingest up for as long as it liked. Lookups the index answers are not
// paced.
type lookupPacer struct {
	now   func() time.Time
	turn  chan struct{} // holds a token while a lookup has the turn
	ready time.Time     // guarded by turn: when the next lookup may start
}

func newLookupPacer(now func() time.Time) *lookupPacer {
	return &lookupPacer{now: now, turn: make(chan struct{}, 1)}
}

// run runs lookup when its turn comes, waiting up to maxLookupWait (or
// until ctx ends) and refusing with ErrLookupPaced after that.
func (p *lookupPacer) run(ctx context.Context, lookup func() error) error {
	start := p.now()
	limit := time.NewTimer(maxLookupWait)
	defer limit.Stop()
	select {
	case p.turn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-limit.C:
		return fmt.Errorf("%w: no turn within %s", ErrLookupPaced, maxLookupWait)
	}
	defer func() { <-p.turn }()
	if wait := p.ready.Sub(p.now()); wait > 0 {
		if p.now().Sub(start)+wait > maxLookupWait {
			return fmt.Errorf("%w: no turn within %s", ErrLookupPaced, maxLookupWait)
		}
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	began := p.now()
	err := lookup()
	end := p.now()
	p.ready = end.Add((lookupShare - 1) * end.Sub(began))
	return err
}
