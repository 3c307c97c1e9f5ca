package hub

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/errkind"
)

// Subscription is one subscriber's view of the hub. Next and Close must be
// called from the stream's goroutine.
type Subscription struct {
	h      *Hub
	filter *Filter
	// ch is what Publish, or the group of the filter's expression,
	// fills, under h.mu; a nil item only wakes the stream (see
	// Hub.overflowLocked). It holds idleBuffer items until the stream's
	// first event, then Config.Buffer (see grow). The field is written
	// only by the stream goroutine, under h.mu; Hub.Close closes it.
	ch chan *Item

	// Owned by the stream goroutine.
	next     uint64     // the next sequence this subscription may deliver
	pending  []*Item    // items read but not yet returned, in order, from head on
	head     int        // index of the first pending item not yet returned
	readNext uint64     // where the last catch-up read stopped
	held     int64      // catch-up budget held for pending's log batch
	ahead    *aheadRead // the log batch after pending's, being read

	// lagging is written only under h.mu; Publish skips a lagging
	// subscription, which then reads the log itself.
	lagging  atomic.Bool
	full     bool
	internal bool // Follow's: not bounded or counted as a stream
	closed   bool // owned by the stream goroutine
	// buffered says that pending came from ch, whose items passed the
	// whole filter (Publish checked the fields, the group the
	// expression), rather than from a catch-up read, whose items did not;
	// a batch is never a mix. Owned by the stream goroutine.
	buffered bool
}

// Item is one event as a subscription hands it out, in the subscription's
// view. Items from live delivery are shared by every stream that sends
// them, so they must be treated as read-only.
type Item struct {
	// Event is the event, or nil when the item forwards the event's stored
	// bytes (catch-up from the log): Encoded is then its only form.
	Event *gatewayv1.Event

	// seq and received stand in for Event's when Event is nil.
	seq         uint64
	received    time.Time
	hasReceived bool

	once    sync.Once
	encoded []byte
	wire    mem.BufferSlice // encoded, as gRPC's codec hands it to the transport
	err     error
}

// Encoded returns the item as a marshalled SubscribeResponse. It is
// computed once per item, so an event sent to many streams is encoded once.
func (it *Item) Encoded() ([]byte, error) {
	if it.Event == nil {
		return it.encoded, nil
	}
	it.once.Do(it.encode)
	return it.encoded, it.err
}

// Sequence returns the event's log sequence.
func (it *Item) Sequence() uint64 {
	if it.Event == nil {
		return it.seq
	}
	return it.Event.GetSequence()
}

// Wire returns Encoded's bytes as the buffer list a gRPC codec returns.
// It is built once per item too, so that a send allocates nothing per
// stream. The buffers are read-only and never freed to a pool
// (mem.SliceBuffer), so every stream may send the same list.
func (it *Item) Wire() (mem.BufferSlice, error) {
	if it.Event == nil && it.wire != nil {
		return it.wire, nil // built with the item (storedBatch.add)
	}
	it.once.Do(it.encode)
	return it.wire, it.err
}

// encode fills encoded (unless the item forwards stored bytes, which are
// encoded already) and wire.
func (it *Item) encode() {
	if it.Event != nil {
		it.encoded, it.err = proto.Marshal(&gatewayv1.SubscribeResponse{Event: it.Event})
	}
	if it.err == nil {
		it.wire = mem.BufferSlice{mem.SliceBuffer(it.encoded)}
	}
}

// Next returns the next matching event, in sequence order, waiting for one
// when there is none yet. It returns ErrClosed when the hub shuts down and
// ctx.Err() when ctx ends.
func (s *Subscription) Next(ctx context.Context) (*Item, error) {
	for {
		for s.head < len(s.pending) {
			it := s.pending[s.head]
			s.pending[s.head] = nil
			s.head++
			seq := it.Sequence()
			if seq < s.next {
				continue // already delivered from the log before rejoining
			}
			s.next = seq + 1
			// Items forwarded from stored bytes were filtered as they
			// were read.
			if it.Event == nil || s.buffered {
				return it, nil
			}
			match, err := s.match(ctx, it.Event)
			if err != nil {
				// Not decided: the item stays first, so a later Next
				// delivers it rather than skipping it.
				s.head--
				s.pending[s.head] = it
				s.next = seq
				return nil, err
			}
			if match {
				return it, nil
			}
		}
		// Reuse the backing array: no allocation per delivered event.
		// Every item of the batch has been sent: its budget is free.
		s.pending, s.head = s.pending[:0], 0
		s.releaseBudget()
		if s.readNext > s.next {
			s.next = s.readNext
		}

		if s.lagging.Load() {
			// Everything Publish queued before marking us lagging is in
			// the buffer: deliver it first, then read the log.
			if s.drain() {
				continue
			}
			if err := s.catchUp(ctx); err != nil {
				if errors.Is(err, errCaughtUpPending) {
					select {
					case <-ctx.Done():
						return nil, ctx.Err()
					case <-s.h.done:
						return nil, ErrClosed
					case <-time.After(5 * time.Millisecond):
					}
					continue
				}
				return nil, err
			}
			continue
		}

		// An item already buffered needs no three-way select: under load
		// that select (locking three channels) was most of Next's cost.
		// Hub.Close closes ch rather than the stream waiting on Hub.done
		// too: each channel a parked select waits on costs the idle
		// stream a waiter record.
		select {
		case it, ok := <-s.ch:
			if !ok {
				return nil, ErrClosed
			}
			s.received(it)
			continue
		default:
		}
		select {
		case it, ok := <-s.ch:
			if !ok {
				return nil, ErrClosed
			}
			s.received(it)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// received queues an item taken from the buffer, and gives the buffer its
// full size with the stream's first event.
func (s *Subscription) received(it *Item) {
	if it == nil {
		return // a wake-up to find the subscription lagging (overflowLocked)
	}
	s.buffered = true
	s.pending = append(s.pending, it)
	if cap(s.ch) < s.h.cfg.Buffer {
		s.grow()
	}
}

// grow replaces the idle stream's small buffer with one of Config.Buffer
// items. An idle stream is mostly its buffer (256 pointers, 2 KiB, when
// gRPC itself holds about 3 KiB for the stream), and most streams of a
// large fleet of subscribers wait far longer than they receive, so the
// full buffer is allocated only once events flow. Items still in the old
// buffer were published before any that reach the new one, so they are
// queued first.
func (s *Subscription) grow() {
	ch := make(chan *Item, s.h.cfg.Buffer)
	s.h.mu.Lock()
	if s.h.closed {
		// The old buffer is closed: Next reports it.
		s.h.mu.Unlock()
		return
	}
	old := s.ch
	s.ch = ch
	s.h.mu.Unlock()
	for {
		select {
		case it := <-old: // never closed: it was replaced before Hub.Close
			if it != nil {
				s.pending = append(s.pending, it)
			}
		default:
			return
		}
	}
}

// match reports whether ev, an event that did not come through the
// buffer, passes the subscription's filter. An expression is evaluated
// only while holding one of the hub's evaluation
// slots: at most half the CPUs (at least one) evaluate expressions at
// once, so streams with costly ones cannot take every CPU from ingest and
// from the streams without one. Streams that share the expression share
// the evaluation (eventexpr.Expr.Decide): one takes a slot, the others
// wait for its verdict or find it remembered.
func (s *Subscription) match(ctx context.Context, ev *gatewayv1.Event) (bool, error) {
	f := s.filter
	if !f.matchFields(ev) {
		return false, nil
	}
	if f.expr == nil {
		return true, nil
	}
	return f.expr.Decide(ctx, ev, s.h.evaluating)
}

// drain moves whatever is buffered into pending and reports whether there
// was anything.
func (s *Subscription) drain() bool {
	n := len(s.pending)
	for {
		select {
		case it, ok := <-s.ch:
			if !ok { // the hub closed: catchUp says so
				return len(s.pending) > n
			}
			s.received(it)
		default:
			return len(s.pending) > n
		}
	}
}

// catchUp reads the next batch from the log into pending, or, at the head
// of the log, rejoins live delivery.
func (s *Subscription) catchUp(ctx context.Context) error {
	s.buffered = false
	select {
	case <-s.h.done:
		return ErrClosed
	default:
	}
	if s.catchUpRecent() {
		s.dropAhead()
		return nil
	}
	var (
		visited int
		next    uint64
		err     error
	)
	if r := s.h.stored; r != nil {
		visited, next, err = s.readStored(ctx, r)
	} else if err = s.takeBudget(ctx); err == nil {
		visited, next, err = s.readEvents(ctx)
	}
	if err != nil {
		s.releaseBudget()
		return err
	}
	if visited > 0 {
		s.readNext = next
		return nil
	}
	s.releaseBudget()
	if next > s.next {
		s.next = next
	}
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	if s.next > s.h.last {
		s.lagging.Store(false)
		return nil
	}
	// The log said we are at its head, yet the hub has published beyond
	// it: a read from a lagging replica of the log. Try again shortly.
	return errCaughtUpPending
}

// readEvents reads the next batch of decoded events from the log into
// pending, in the subscription's view. It returns how many events it read
// and where the next read starts.
func (s *Subscription) readEvents(ctx context.Context) (int, uint64, error) {
	events, next, err := s.h.log.Read(ctx, s.next, s.h.cfg.CatchUpBatch, s.filter.WebhookIDs(), s.filter.JobIDs())
	if err != nil {
		return 0, 0, s.readFailed(ctx, err)
	}
	var used int64 // bytes the queued events hold, for the catch-up budget
	if len(events) > 0 {
		if err := s.checkContiguous(events[0].GetSequence(), next); err != nil {
			return 0, 0, err
		}
		s.h.metrics.replayed.Add(float64(len(events)))
		for _, ev := range events {
			if !s.full {
				ev = WithoutBody(ev)
			}
			s.pending = append(s.pending, &Item{Event: ev})
			used += int64(proto.Size(ev))
		}
	}
	s.settleBudget(used)
	return len(events), next, nil
}

// readFailed is the error of a failed catch-up read.
func (s *Subscription) readFailed(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("%w: %v", ErrLogUnavailable, err) //nolint:errorlint // the kind is ErrLogUnavailable; the store's cause is text only, so a timeout inside is not mapped as the caller's own deadline
}

// checkContiguous reports the events a subscriber lost while it lagged:
// unfiltered reads are contiguous, so a first sequence beyond s.next means
// the events between expired before it read them.
func (s *Subscription) checkContiguous(first, next uint64) error {
	if first > s.next && s.filter.WebhookIDs() == nil && s.filter.JobIDs() == nil {
		return &errkind.RangeError{First: first, Last: next - 1, Reason: fmt.Sprintf("events from sequence %d expired before this subscriber read them", s.next)}
	}
	return nil
}

// catchUpRecent moves the next batch from the hub's recent events into
// pending when they hold s.next, and rejoins live delivery in the same
// critical section once they reach the last published event, so nothing
// published meanwhile can slip between the two. It reports whether it
// could serve the subscription.
func (s *Subscription) catchUpRecent() bool {
	// The snapshot's array is borrowed from the hub rather than kept by
	// each subscription: only a stream catching up needs one.
	buf, _ := s.h.snapshots.Get().(*[]slot)
	if buf == nil {
		buf = new([]slot)
	}
	defer s.h.snapshots.Put(buf)
	slots, ok := s.snapshotRecent((*buf)[:0])
	if !ok {
		return false
	}
	*buf = slots
	s.h.metrics.replayedRecent.Add(float64(len(slots)))
	for i := range slots {
		s.pending = append(s.pending, slots[i].item(s.full))
	}
	clear(slots) // drop the event references before the array is reused
	return true
}

// snapshotRecent appends to buf the next batch of the hub's recent slots
// from s.next on, and rejoins live delivery if they reach the last published
// event, in one short critical section: building the items happens after
// Hub.mu is released, so Publish is not held up by a catch-up. A slot whose
// item was not made yet gets a fresh one, not shared with other streams.
func (s *Subscription) snapshotRecent(buf []slot) ([]slot, bool) {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	i, ok := s.h.recent.find(s.next)
	if !ok {
		return nil, false
	}
	r := s.h.recent
	end := min(r.n, i+s.h.cfg.CatchUpBatch)
	for ; i < end; i++ {
		buf = append(buf, *r.at(i))
	}
	if end == r.n {
		s.lagging.Store(false)
	}
	return buf, true
}

// Position returns the sequence the subscription resumes after: events up
// to it are not delivered, everything after it is. It is meant to be read
// before the first Next, to tell a client where its stream starts.
func (s *Subscription) Position() uint64 {
	if s.next == 0 {
		return 0
	}
	return s.next - 1
}

// Close unregisters the subscription. It is safe to call more than once.
func (s *Subscription) Close() {
	if s.closed {
		return
	}
	s.closed = true
	s.dropAhead()
	s.releaseBudget()
	s.h.mu.Lock()
	if s.filter.expr != nil {
		s.h.leaveLocked(s)
	} else {
		delete(s.h.subs, s)
	}
	if !s.internal {
		s.h.streams--
	}
	s.h.mu.Unlock()
	if !s.internal {
		s.h.metrics.subscribers.Dec()
	}
}
