package hub

import (
	"context"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// StoredReader is implemented by a Log that can hand catch-up the events'
// stored bytes instead of decoded events. The hub then forwards those
// bytes: it reads what the filters need straight from the wire, leaves out
// the raw body for the basic view and appends the sequence, so a replay
// decodes and encodes nothing unless a CEL filter needs the whole event.
type StoredReader interface {
	// ReadStored calls visit with the sequence and stored bytes of up to
	// limit events (and a few MiB of them) from sequence from on, as Read
	// selects them, until visit returns false. It returns where the next
	// read starts, as Read does. data is only valid during the call.
	ReadStored(ctx context.Context, from uint64, limit int, webhookIDs, jobIDs []string, visit func(seq uint64, data []byte) bool) (next uint64, err error)
}

// storedBatchFactor scales CatchUpBatch for reads of stored bytes. Each
// read creates a consumer (a round trip and a server-side scan start), so
// fewer, larger reads replay faster; a forwarded item holds only its
// encoded bytes, no decoded event, and the log still bounds a read to about
// 4 MiB of stored bytes, so the larger count costs no more memory.
const storedBatchFactor = 4

// storedChunk is the size of the buffers that forwarded items are encoded
// into, several to a buffer, instead of one allocation per event.
const storedChunk = 64 << 10

// storedBatch is one read of stored bytes, in the subscription's view.
type storedBatch struct {
	from    uint64
	items   []Item // the events that passed the filter
	visited int    // events read, matching or not
	first   uint64 // the first sequence read, when visited > 0
	next    uint64 // where the next read starts
	used    int64  // bytes the items hold, for the catch-up budget
	err     error
}

// readStored reads the next batch of the log as stored bytes and queues
// the events that pass the filter as pre-encoded items: the batch read
// ahead while the previous one was sent, when there is one, or a batch
// read now. It returns how many events it read (matching or not) and where
// the next read starts, and starts reading the batch after it (see
// readAhead).
func (s *Subscription) readStored(ctx context.Context, r StoredReader) (int, uint64, error) {
	b, err := s.takeAhead(ctx)
	if err != nil {
		return 0, 0, err
	}
	if b == nil {
		if err := s.takeBudget(ctx); err != nil {
			return 0, 0, err
		}
		b = s.readBatch(ctx, r, s.next)
	}
	if b.err != nil {
		s.releaseBudget()
		return 0, 0, s.readFailed(ctx, b.err)
	}
	if b.visited > 0 {
		if err := s.checkContiguous(b.first, b.next); err != nil {
			return 0, 0, err
		}
		s.h.metrics.replayed.Add(float64(b.visited))
	}
	for i := range b.items {
		s.pending = append(s.pending, &b.items[i])
	}
	s.settleBudget(b.used)
	if b.visited > 0 {
		s.readAhead(ctx, r, b.next)
	}
	return b.visited, b.next, nil
}

// readBatch reads one batch of stored bytes from sequence from on. It
// touches only what never changes after Subscribe (the filter, the view,
// the hub's configuration and metrics), so a read ahead may run it on a
// goroutine of its own.
func (s *Subscription) readBatch(ctx context.Context, r StoredReader, from uint64) *storedBatch {
	batch := storedBatchFactor * s.h.cfg.CatchUpBatch
	// One allocation for the batch's items; the buffer never grows past
	// batch, so pointers into it stay valid.
	b := &storedBatch{from: from, items: make([]Item, 0, batch)}
	var buf []byte
	b.next, b.err = r.ReadStored(ctx, from, batch, s.filter.WebhookIDs(), s.filter.JobIDs(), func(seq uint64, data []byte) bool {
		if b.visited == 0 {
			b.first = seq
		}
		b.visited++
		s.storedItem(seq, data, &buf, &b.items)
		return len(b.items) < batch
	})
	if b.err != nil {
		b.items, b.visited = nil, 0
		return b
	}
	wireBuffers(b.items)
	for i := range b.items {
		if it := &b.items[i]; it.encoded != nil {
			b.used += int64(len(it.encoded))
		} else {
			b.used += int64(proto.Size(it.Event))
		}
	}
	return b
}

// aheadRead is a batch being read while the stream sends the one before.
type aheadRead struct {
	batch  storedBatch
	held   int64 // catch-up budget reserved for batch
	cancel context.CancelFunc
	done   chan struct{} // closed once batch is complete
}

// readAhead starts reading the batch from sequence from on, on a goroutine
// of its own, so that the log is read while the stream sends the batch
// before it: replay then runs the log's reading and the network's writing
// side by side instead of one after the other. It reads ahead only when
// the catch-up budget has room at once (a stream that has to wait for
// budget reads when it needs the batch, as before) and never for a CEL
// filter, whose evaluations are bounded by the hub's slots.
func (s *Subscription) readAhead(ctx context.Context, r StoredReader, from uint64) {
	if s.filter.needsEvent() {
		return
	}
	held, ok := s.h.budget.tryAcquire()
	if !ok {
		return
	}
	// Next's context may be a single call's; the read ahead outlives the
	// call, and dropAhead (Close at the latest) ends it.
	actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a := &aheadRead{held: held, cancel: cancel, done: make(chan struct{})}
	s.ahead = a
	go func() {
		defer close(a.done)
		a.batch = *s.readBatch(actx, r, from)
		a.held = s.h.budget.settle(a.held, a.batch.used)
	}()
}

// takeAhead waits for the batch read ahead and returns it with its budget
// reservation, or nil when there is none to use: none was started, or it
// started elsewhere than s.next, found nothing (the log's head has moved
// since; a read now sees the events appended meanwhile) or failed (the
// failure may have passed; a read now says).
func (s *Subscription) takeAhead(ctx context.Context) (*storedBatch, error) {
	a := s.ahead
	if a == nil {
		return nil, nil
	}
	select {
	case <-a.done:
	case <-ctx.Done():
		s.dropAhead()
		return nil, ctx.Err()
	case <-s.h.done:
		s.dropAhead()
		return nil, ErrClosed
	}
	if a.batch.from != s.next || a.batch.err != nil || a.batch.visited == 0 {
		s.dropAhead()
		return nil, nil
	}
	s.ahead = nil
	a.cancel()
	// The stream gave its own reservation back with its last batch.
	s.releaseBudget()
	s.held = a.held
	return &a.batch, nil
}

// dropAhead ends the subscription's read ahead, if any, when its batch is
// not wanted (the stream caught up from memory, or ends): it waits for the
// read to stop and gives its budget back.
func (s *Subscription) dropAhead() {
	a := s.ahead
	if a == nil {
		return
	}
	s.ahead = nil
	a.cancel()
	<-a.done
	s.h.budget.release(a.held)
}

// storedItem appends one stored event to *items in the subscription's
// view, or reports false when the filter drops it or it cannot be decoded
// at all (Read skips such an event too). Without a CEL expression the item
// forwards the stored bytes, encoded into *buf. With one, the item is the
// decoded event in the stream's view, checked here only by the cheap
// fields: Next evaluates the expression (Subscription.match), holding one
// of the hub's evaluation slots and outside the log read, on the event as
// the expression's group sees it live, without the raw body in the basic
// view.
func (s *Subscription) storedItem(seq uint64, data []byte, buf *[]byte, items *[]Item) bool {
	w, ok := readWire(data)
	if !ok || s.filter.needsEvent() {
		// Unusual bytes, or a CEL filter: decode, as Read would.
		ev := new(gatewayv1.Event)
		if err := proto.Unmarshal(data, ev); err != nil {
			s.h.metrics.undecodable.Inc()
			return false
		}
		ev.Sequence = seq
		if !s.full {
			ev = WithoutBody(ev)
		}
		if !s.filter.matchFields(ev) {
			return false
		}
		*items = append(*items, Item{Event: ev})
		return true
	}
	if !s.filter.matchWire(&w) {
		return false
	}
	n := w.responseSize(data, seq, s.full)
	if cap(*buf)-len(*buf) < n {
		*buf = make([]byte, 0, max(storedChunk, n))
	}
	start := len(*buf)
	*buf = w.appendResponse(*buf, data, seq, s.full)
	*items = append(*items, Item{})
	it := &(*items)[len(*items)-1]
	it.seq, it.received, it.hasReceived = seq, w.received, w.hasReceived
	it.encoded = (*buf)[start:len(*buf):len(*buf)]
	return true
}

// wireBuffers gives each forwarded item of items its gRPC buffer list,
// from two arrays for the whole batch: built per item (Item.encode), the
// list and the buffer in it were two small allocations per replayed event.
// A *mem.SliceBuffer is a mem.Buffer as the value is, and as read-only.
func wireBuffers(items []Item) {
	n := 0
	for i := range items {
		if items[i].Event == nil {
			n++
		}
	}
	bufs := make([]mem.SliceBuffer, n)
	lists := make([]mem.Buffer, n)
	for i, j := 0, 0; i < len(items); i++ {
		it := &items[i]
		if it.Event != nil {
			continue
		}
		bufs[j] = it.encoded
		lists[j] = &bufs[j]
		it.wire = lists[j : j+1 : j+1]
		j++
	}
}
