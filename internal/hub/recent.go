package hub

import gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"

// recent keeps the last published events in memory, with the items that
// live delivery made of them. A subscription that overflowed its buffer
// usually falls only a little behind, so it catches up from here, sharing
// the already-encoded items, instead of each such subscription reading the
// log on its own (which under load competed with ingest for the log).
// All of it is guarded by Hub.mu.
type recent struct {
	slots    []slot // a ring; slots[head] is the oldest, seqs are contiguous
	head, n  int
	bytes    int
	maxBytes int
}

type slot struct {
	ev          *gatewayv1.Event
	full, basic *Item // made on first use, then shared
	size        int
}

func newRecent(count, maxBytes int) *recent {
	if count <= 0 {
		return nil
	}
	return &recent{slots: make([]slot, count), maxBytes: maxBytes}
}

// add records ev, the next published event, evicting the oldest events
// beyond the count or byte bound. It returns ev's slot. Hub.mu must be
// held.
func (r *recent) add(ev *gatewayv1.Event) *slot {
	if r.n > 0 && ev.GetSequence() != r.at(r.n-1).ev.GetSequence()+1 {
		// A gap (an event the tail could not decode): keep the ring
		// contiguous by starting afresh.
		r.head, r.n, r.bytes = 0, 0, 0
	}
	size := len(ev.GetRawBody()) + 1024
	for r.n > 0 && (r.n == len(r.slots) || r.bytes+size > r.maxBytes) {
		r.bytes -= r.slots[r.head].size
		r.slots[r.head] = slot{}
		r.head = (r.head + 1) % len(r.slots)
		r.n--
	}
	sl := &r.slots[(r.head+r.n)%len(r.slots)]
	*sl = slot{ev: ev, size: size}
	r.n++
	r.bytes += size
	return sl
}

// at returns the i-th oldest slot. Hub.mu must be held.
func (r *recent) at(i int) *slot { return &r.slots[(r.head+i)%len(r.slots)] }

// find returns the index of seq's slot, or false when it is not held.
// Hub.mu must be held.
func (r *recent) find(seq uint64) (int, bool) {
	if r == nil || r.n == 0 {
		return 0, false
	}
	oldest := r.at(0).ev.GetSequence()
	if seq < oldest || seq-oldest >= uint64(r.n) {
		return 0, false
	}
	return int(seq - oldest), true
}

// item returns the slot's item in the given view. On a slot in the ring
// Hub.mu must be held (it fills the shared cache); on a snapshot copy it
// need not be.
func (sl *slot) item(full bool) *Item {
	if full {
		if sl.full == nil {
			sl.full = &Item{Event: sl.ev}
		}
		return sl.full
	}
	if sl.basic == nil {
		sl.basic = &Item{Event: WithoutBody(sl.ev)}
	}
	return sl.basic
}
