package hub

import (
	"context"

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

// readStored reads the next batch of the log as stored bytes and queues
// the events that pass the filter as pre-encoded items. It returns how
// many events it read (matching or not) and where the next read starts.
func (s *Subscription) readStored(ctx context.Context, r StoredReader) (int, uint64, error) {
	batch := storedBatchFactor * s.h.cfg.CatchUpBatch
	// One allocation for the batch's items; the buffer never grows past
	// batch, so pointers into it stay valid.
	items := make([]Item, 0, batch)
	var (
		buf     []byte
		visited int
		first   uint64
	)
	next, err := r.ReadStored(ctx, s.next, batch, s.filter.WebhookIDs(), s.filter.JobIDs(), func(seq uint64, data []byte) bool {
		if visited == 0 {
			first = seq
		}
		visited++
		if s.storedItem(seq, data, &buf, &items) {
			s.pending = append(s.pending, &items[len(items)-1])
		}
		return len(items) < batch
	})
	if err != nil {
		// Nothing was queued that a retry would repeat: pending only
		// grows from a successful read.
		s.dropPendingFrom(len(s.pending) - len(items))
		return 0, 0, s.readFailed(ctx, err)
	}
	if visited > 0 {
		if err := s.checkContiguous(first, next); err != nil {
			s.dropPendingFrom(len(s.pending) - len(items))
			return 0, 0, err
		}
		s.h.metrics.replayed.Add(float64(visited))
	}
	var used int64 // bytes the queued items hold, for the catch-up budget
	for i := range items {
		if it := &items[i]; it.encoded != nil {
			used += int64(len(it.encoded))
		} else {
			used += int64(proto.Size(it.Event))
		}
	}
	s.settleBudget(used)
	return visited, next, nil
}

// dropPendingFrom removes the pending items from index i on.
func (s *Subscription) dropPendingFrom(i int) {
	clear(s.pending[i:])
	s.pending = s.pending[:i]
}

// storedItem appends one stored event to *items as a pre-encoded item in
// the subscription's view, or reports false when the filter drops it or it
// cannot be decoded at all (Read skips such an event too). The encoded
// bytes are carved out of *buf.
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
		if !s.filter.Match(ev) {
			return false
		}
		if !ok {
			if !s.full {
				ev = WithoutBody(ev)
			}
			*items = append(*items, Item{Event: ev})
			return true
		}
	} else if !s.filter.matchWire(&w) {
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
