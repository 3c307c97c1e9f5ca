package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/retry"
)

const (
	// maxReadBytes bounds the stored bytes one Read returns, whatever the
	// limit, so many lagging subscribers cannot pin much memory each.
	maxReadBytes = 4 << 20
	// readBatch caps how many messages a read consumer buffers in the
	// client. Large enough to amortise pull round trips during catch-up,
	// small enough that a page of large raw bodies stays bounded.
	readBatch = 2048
	// readIdleTimeout bounds the wait for the next message of a read whose
	// consumer reported more pending. It only fires when messages vanish
	// mid-read (expiry) or the server stalls.
	readIdleTimeout = 5 * time.Second
	// readInactiveThreshold lets the server reap a read consumer whose
	// explicit deletion failed (for example because the connection broke).
	readInactiveThreshold = 30 * time.Second
	// consumerDeleteTimeout bounds the clean-up of a read consumer.
	consumerDeleteTimeout = 2 * time.Second
	// maxBackwardWindow caps the sequence range ReadBackward scans per
	// consumer; windows grow up to it while filters keep matching little.
	maxBackwardWindow = 1 << 16
	// maxBackwardBytes caps the raw messages ReadBackward buffers from one
	// window; beyond it the page ends early (with a next sequence), so a
	// listing of large events cannot hold 2 × limit of them at once.
	maxBackwardBytes = 32 << 20
)

// Pull timing of the consumers. On a cluster, a consumer may live on
// another node than the one this client is connected to, and the first
// pull request can reach that node before the consumer's interest has, in
// which case it is dropped and nothing arrives. The client only notices
// through missing idle heartbeats (then it recreates the ordered consumer
// and pulls again), so heartbeats are kept short: the default of 5s would
// stall a read or the tail for 10s.
const (
	// readHeartbeat and readExpiry serve short-lived reads, which only wait
	// when messages are known to be pending.
	readHeartbeat = 500 * time.Millisecond
	readExpiry    = 2 * time.Second
	// tailHeartbeat and tailExpiry serve the long-lived tail, which mostly
	// waits for new events: a stall is noticed within two heartbeats.
	tailHeartbeat = time.Second
	tailExpiry    = 10 * time.Second
	// tailResetAttempts bounds how often the client recreates a lost tail
	// consumer by itself (at once, then after 1s) before the iterator
	// fails and Tail resumes with its own backoff.
	tailResetAttempts = 2
)

// Read returns up to limit events (and about 4 MiB of them) with sequence
// >= from in ascending order, and next, the sequence to read from next time: the last returned sequence
// + 1, or LastSeq+1 once the end of the log was reached. An empty log, or
// from beyond the last sequence, yields no events and next = from.
//
// Non-empty webhookIDs and jobIDs are pushed down to JetStream as filter
// subjects when their product is small; callers still apply their own full
// filter. Read streams from an ordered consumer in batches, which is what
// makes catch-up of a lagging subscriber fast.
func (s *Store) Read(ctx context.Context, from uint64, limit int, webhookIDs, jobIDs []string) (events []*gatewayv1.Event, next uint64, err error) {
	from = max(from, 1)
	if limit <= 0 {
		return nil, from, nil
	}
	filters := filterSubjects(webhookIDs, jobIDs)
	// A filtered read takes the log's last sequence before it scans: once
	// the filter matches nothing more, next can skip the non-matching tail
	// without skipping a matching event appended during the scan. An
	// unfiltered read learns the same from the last message it reads and
	// saves the round trip, which matters for paged catch-up.
	var last uint64
	if filters != nil {
		st, err := s.state(ctx)
		if err != nil {
			return nil, from, err
		}
		if from > st.last || st.msgs == 0 {
			return nil, from, nil
		}
		last = st.last
	}

	events = make([]*gatewayv1.Event, 0, min(limit, readBatch))
	var (
		lastSeen uint64
		size     int
	)
	end, err := s.scan(ctx, from, 0, limit, limit, filters,
		func(seq uint64, data []byte) bool {
			lastSeen = seq
			if ev := s.decodeOrSkip(data, seq); ev != nil {
				events = append(events, ev)
				size += len(data)
			}
			// Stop early at maxReadBytes: a caller holds the whole result,
			// and events carry raw bodies of up to a megabyte.
			return len(events) < limit && size < maxReadBytes
		})
	if err != nil {
		// Hand out what was read before a transient failure: the caller
		// resumes from next and sees no gap.
		if lastSeen > 0 && errors.Is(err, ErrUnavailable) && ctx.Err() == nil {
			return events, lastSeen + 1, nil
		}
		return nil, from, err
	}
	next = from
	if lastSeen > 0 {
		next = lastSeen + 1
	}
	if end && filters != nil {
		next = max(next, last+1)
	}
	return events, next, nil
}

// ReadBackward returns up to limit events with sequence <= from in descending
// order, for newest-first listings, and next, the sequence to continue from
// (0 once the beginning of the log is reached). Filters behave as in Read.
func (s *Store) ReadBackward(ctx context.Context, from uint64, limit int, webhookIDs, jobIDs []string) (events []*gatewayv1.Event, next uint64, err error) {
	if from == 0 {
		return nil, 0, nil
	}
	if limit <= 0 {
		return nil, from, nil
	}
	st, err := s.state(ctx)
	if err != nil {
		return nil, from, err
	}
	if st.msgs == 0 {
		return nil, 0, nil
	}
	hi := min(from, st.last)
	events = make([]*gatewayv1.Event, 0, min(uint64(limit), hi-min(hi, st.first)+1, readBatch))
	next, err = s.ScanBackward(ctx, s.stream, filterSubjects(webhookIDs, jobIDs), st.first, hi, limit, limit,
		func(seq uint64, _ time.Time, data []byte) bool {
			if ev := s.decodeOrSkip(data, seq); ev != nil {
				events = append(events, ev)
			}
			return len(events) < limit
		})
	if err != nil {
		return nil, from, err
	}
	return events, next, nil
}

// ScanBackward visits the messages of stream (one of the store's
// JetStream's: the log, or a bucket's stream) on filters (nil: all) with
// sequence in [first, from], newest first, until visit returns false or
// limit messages have been visited. page is how many the caller expects to
// keep (its page size), which sizes the first window. It returns the
// sequence to continue from, 0 once first is passed. It is the one newest-first reader: the
// log's listing and the job states' both use it.
//
// JetStream consumers only read forward, so ScanBackward reads windows of
// sequences ending at from, newest window first, keeping only the newest
// messages of each that can still be visited; a window doubles while
// filters match sparsely, so a rare match costs a few server-side scans
// instead of one round trip per sequence. A window's messages are held
// until visited, at most maxBackwardBytes of them: beyond that the oldest
// go, and the scan ends above them (next is where they are).
func (s *Store) ScanBackward(ctx context.Context, stream jetstream.Stream, filters []string, first, from uint64, limit, page int,
	visit func(seq uint64, written time.Time, data []byte) bool) (next uint64, err error) {
	if from < first || limit <= 0 {
		return 0, nil
	}
	window := uint64(max(page, 1))
	if filters != nil {
		window = max(4*window, 256)
	}
	window = min(window, maxBackwardWindow)
	type raw struct {
		seq     uint64
		written time.Time
		data    []byte
	}
	after := func(seq uint64) uint64 { // where a scan that stops at seq resumes
		if seq <= first {
			return 0
		}
		return seq - 1
	}
	hi, visited := from, 0
	for hi >= first {
		lo := first
		if hi-first >= window {
			lo = hi - window + 1
		}
		need := limit - visited
		// Only the newest `need` messages of the window can be visited;
		// compact the buffer so memory follows limit, not the window.
		buf := make([]raw, 0, min(2*need, readBatch))
		bufBytes, dropped := 0, false
		// Unfiltered, the window holds at most hi-lo+1 messages; filtered,
		// the scan may have to see the first match beyond hi to stop.
		maxMsgs := 0
		if filters == nil {
			maxMsgs = int(hi - lo + 1)
		}
		_, err := s.scanStream(ctx, stream, lo, hi, maxMsgs, int(window), filters, func(seq uint64, written time.Time, data []byte) bool {
			if len(buf) == 2*need {
				for _, r := range buf[:need] {
					bufBytes -= len(r.data)
				}
				buf = buf[:copy(buf, buf[need:])]
			}
			buf = append(buf, raw{seq, written, data})
			bufBytes += len(data)
			// Over the byte cap, the oldest messages go; the scan then
			// ends above them, and the next one starts where they are.
			for bufBytes > maxBackwardBytes && len(buf) > 1 {
				bufBytes -= len(buf[0].data)
				buf = buf[1:]
				dropped = true
			}
			return true
		})
		if err != nil {
			return from, err
		}
		if len(buf) > need {
			buf = buf[len(buf)-need:]
		}
		for i := len(buf) - 1; i >= 0; i-- {
			visited++
			if !visit(buf[i].seq, buf[i].written, buf[i].data) || visited == limit {
				return after(buf[i].seq), nil
			}
		}
		if dropped && len(buf) > 0 {
			return after(buf[0].seq), nil
		}
		if lo <= first {
			return 0, nil
		}
		hi = lo - 1
		window = min(2*window, maxBackwardWindow)
	}
	return 0, nil
}

// Tail calls fn for every event with sequence > after, in order, as they
// are appended, until ctx is done (it then returns ctx.Err()) or the store
// is closed. One call per process feeds the in-process hub, so Tail never
// gives up on a transient failure: an idle log, a reconnect or a consumer
// lost on the server all resume after the last event delivered, with
// backoff. fn is called from a single goroutine.
func (s *Store) Tail(ctx context.Context, after uint64, fn func(*gatewayv1.Event)) error {
	wait := retry.NewBackoff()
	for {
		delivered, err := s.tailOnce(ctx, &after, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		select {
		case <-s.closed:
			return fmt.Errorf("%w: tail: store closed", ErrUnavailable)
		default:
		}
		if delivered {
			wait.Reset()
		}
		backoff := wait.NextBackOff()
		s.log.Warn("log tail interrupted; resuming", slog.Uint64("after", after), slog.Any("err", err), slog.Duration("backoff", backoff))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.closed:
			return fmt.Errorf("%w: tail: store closed", ErrUnavailable)
		case <-time.After(backoff):
		}
	}
}

// tailOnce follows the log with one ordered consumer until it fails,
// advancing *after past every event handed to fn. It reports whether it
// delivered anything, so Tail can reset its backoff.
func (s *Store) tailOnce(ctx context.Context, after *uint64, fn func(*gatewayv1.Event)) (delivered bool, err error) {
	cfg := jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverAllPolicy,
		// The client's own recreation of a lost consumer backs off up to
		// 10s; give up early and let Tail's shorter backoff take over.
		MaxResetAttempts: tailResetAttempts,
	}
	if *after > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = *after + 1
	}
	cons, err := s.stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return false, classify("start tail consumer", err)
	}
	defer s.deleteConsumer(ctx, cons)
	it, err := cons.Messages(jetstream.PullHeartbeat(tailHeartbeat), jetstream.PullExpiry(tailExpiry))
	if err != nil {
		return false, classify("start tail iterator", err)
	}
	defer it.Stop()
	// Next has no context of its own; stopping the iterator is what wakes
	// it when ctx ends. Without a max wait it blocks through idle periods:
	// the ordered consumer's heartbeats detect a lost consumer on their own.
	stopOnDone := context.AfterFunc(ctx, it.Stop)
	defer stopOnDone()

	for {
		msg, err := it.Next()
		if err != nil {
			return delivered, classify("tail", err)
		}
		md, err := msg.Metadata()
		if err != nil {
			s.log.Error("tail: message without JetStream metadata; skipping",
				slog.String("subject", msg.Subject()), slog.Any("err", err))
			continue
		}
		if md.Sequence.Stream <= *after {
			continue
		}
		*after = md.Sequence.Stream
		delivered = true
		if ev := s.decodeOrSkip(msg.Data(), md.Sequence.Stream); ev != nil {
			fn(ev)
		}
	}
}

// scan feeds visit the messages with sequence >= start that match filters
// (nil: all), in order, until visit returns false, a message with sequence
// >= stop has been visited (stop 0: no bound), maxMsgs messages have been
// visited (0: no bound) or the log's end is reached. It reports whether the
// end was reached, judged by the consumer's pending count, so it never
// waits for messages that do not exist yet. batch hints how many messages
// the caller expects, so small reads do not prefetch large batches.
func (s *Store) scan(ctx context.Context, start, stop uint64, maxMsgs, batch int, filters []string, visit func(seq uint64, data []byte) bool) (end bool, err error) {
	return s.scanStream(ctx, s.stream, start, stop, maxMsgs, batch, filters, func(seq uint64, _ time.Time, data []byte) bool {
		return visit(seq, data)
	})
}

// scanStream is scan over any stream of the store's JetStream, with each
// message's write time.
func (s *Store) scanStream(ctx context.Context, stream jetstream.Stream, start, stop uint64, maxMsgs, batch int, filters []string, visit func(seq uint64, written time.Time, data []byte) bool) (end bool, err error) {
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects:    filters,
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       start,
		InactiveThreshold: readInactiveThreshold,
	})
	if err != nil {
		return false, classify("create read consumer", err)
	}
	defer s.reapConsumer(cons)
	info := cons.CachedInfo()
	if info == nil {
		return false, errors.New("store: read consumer has no info")
	}
	if info.NumPending == 0 {
		return true, nil
	}
	n := min(uint64(max(batch, 1)), uint64(readBatch), info.NumPending)
	opts := []jetstream.PullMessagesOpt{s.pullLimit(n), jetstream.PullHeartbeat(readHeartbeat), jetstream.PullExpiry(readExpiry)}
	if maxMsgs > 0 {
		// Also caps the pull requests, so nothing past maxMsgs is fetched.
		opts = append(opts, jetstream.StopAfter(maxMsgs))
	}
	it, err := cons.Messages(opts...)
	if err != nil {
		return false, classify("start read iterator", err)
	}
	defer it.Stop()
	stopOnDone := context.AfterFunc(ctx, it.Stop)
	defer stopOnDone()
	// One resettable watchdog instead of a timeout per Next: a per-call
	// timer was the largest allocation of a catch-up read.
	var idle atomic.Bool
	watchdog := time.AfterFunc(readIdleTimeout, func() {
		idle.Store(true)
		it.Stop()
	})
	defer watchdog.Stop()

	visited := 0
	for {
		msg, err := it.Next()
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return false, classify("read", ctx.Err())
			case idle.Load():
				return false, classify("read", fmt.Errorf("no message within %s although more were pending: %w", readIdleTimeout, nats.ErrTimeout))
			}
			return false, classify("read", err)
		}
		watchdog.Reset(readIdleTimeout)
		md, err := msg.Metadata()
		if err != nil {
			return false, fmt.Errorf("store: read: message without JetStream metadata: %w", err)
		}
		seq := md.Sequence.Stream
		if stop > 0 && seq > stop {
			return false, nil
		}
		visited++
		if !visit(seq, md.Timestamp, msg.Data()) || visited == maxMsgs {
			return md.NumPending == 0, nil
		}
		if md.NumPending == 0 {
			return true, nil
		}
		if stop > 0 && seq == stop {
			return false, nil
		}
	}
}

// deleteConsumer removes a finished consumer right away instead of leaving
// it to the server's inactivity reaper, so consumers do not pile up. Failure
// is harmless (the reaper still runs) and only logged.
func (s *Store) deleteConsumer(ctx context.Context, cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil || s.nc.IsClosed() {
		return
	}
	s.deleteConsumerNamed(ctx, consumerRef{stream: StreamName, name: info.Name})
}

// consumerRef names a consumer to delete.
type consumerRef struct{ stream, name string }

func (s *Store) deleteConsumerNamed(ctx context.Context, c consumerRef) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), consumerDeleteTimeout)
	defer cancel()
	if err := s.js.DeleteConsumer(ctx, c.stream, c.name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		s.log.Debug("delete consumer", slog.String("stream", c.stream), slog.String("consumer", c.name), slog.Any("err", err))
	}
}

// reapConsumer hands a finished read consumer to the reaper goroutine, which
// deletes it off the read's critical path: deletion is a full JetStream
// round trip, a large share of a short paged read. When the queue is full
// the consumer is left to the server's inactivity threshold instead of
// blocking the read.
func (s *Store) reapConsumer(cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	select {
	case s.reap <- consumerRef{stream: info.Stream, name: info.Name}:
	default:
	}
}

// runReaper deletes the consumers queued by reapConsumer until quit closes.
// Close stops it before draining the connection; whatever is still queued
// is then left to the server's inactivity threshold.
func (s *Store) runReaper(ctx context.Context, quit <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	for {
		select {
		case <-quit:
			return
		case c := <-s.reap:
			s.deleteConsumerNamed(ctx, c)
		}
	}
}

// decodeOrSkip decodes a stored event, logging and skipping one that cannot
// be decoded: such a message can never be delivered, and failing the whole
// read would stall every subscriber behind it forever.
func (s *Store) decodeOrSkip(data []byte, seq uint64) *gatewayv1.Event {
	ev, err := decode(data, seq)
	if err != nil {
		s.log.Error("skipping undecodable event", slog.Uint64("sequence", seq), slog.Any("err", err))
		return nil
	}
	return ev
}
