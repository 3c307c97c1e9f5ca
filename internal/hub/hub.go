// Package hub fans events out from the log to subscribers in this process.
//
// One goroutine (fed by the log's tail) calls Publish for every event in
// sequence order. Each Subscription has a bounded buffer that Publish fills
// without ever blocking; a subscriber whose buffer is full is marked lagging
// and from then on catches up by itself, from the hub's memory of recent
// events when they reach back far enough and from the log otherwise, until
// it reaches the head, then rejoins live delivery. Every subscription
// tracks the next sequence it may deliver, so the hand-off in either
// direction has no gap and no duplicate.
//
// Subscriptions whose filters carry a CEL expression receive live events
// through a group per expression (see group): the group's goroutine
// evaluates the expression once per event and hands on only the events it
// matches.
//
// Locking: Hub.mu is the only lock. It guards the subscriber sets and the
// groups, the last published sequence, the recent events and each
// subscription's switch between live and lagging. It is never held across
// a log read, a network write or a filter's CEL expression. The stream
// goroutine that calls Subscription.Next is the only one that sends on its
// stream. Expressions are evaluated by a group's goroutine, or by a
// stream's while it catches up, each holding one of Hub.evaluating's slots
// (a semaphore, never held with Hub.mu or across a write).
package hub

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/errkind"
)

// Errors returned by the hub. A start position outside the log is an
// errkind.RangeError that names the sequences available.
var (
	ErrClosed          = errkind.New(errkind.Unavailable, "hub", "server shutting down: reconnect and resume after the last sequence received")
	ErrTooManyStreams  = errkind.New(errkind.ResourceExhausted, "hub", "too many concurrent subscriptions; try again later")
	ErrLogUnavailable  = errkind.New(errkind.Unavailable, "hub", "event log unavailable; retry later")
	errCaughtUpPending = errors.New("hub: caught up but hub behind the log")
)

// Log is the part of the durable log that catch-up reads.
type Log interface {
	Read(ctx context.Context, from uint64, limit int, webhookIDs, jobIDs []string) ([]*gatewayv1.Event, uint64, error)
	Bounds(ctx context.Context) (first, last uint64, err error)
	SeqAt(ctx context.Context, t time.Time) (uint64, error)
}

// Config configures a Hub.
type Config struct {
	// Log is what lagging subscriptions catch up from.
	Log Log
	// Last is the log's head when the hub starts: the first Publish is
	// expected to carry Last+1.
	Last uint64
	// Buffer is the number of events each subscription holds before it
	// switches to catch-up reads.
	Buffer int
	// MaxSubscriptions bounds concurrent subscriptions; 0 means no bound.
	MaxSubscriptions int
	// CatchUpBatch is how many events one catch-up read asks for.
	CatchUpBatch int
	// Recent is how many of the last published events the hub keeps for
	// catch-up from memory (RecentBytes bounds their raw bodies); 0 means
	// 8,192 and 64 MiB, a negative value turns it off.
	Recent      int
	RecentBytes int
	// CatchUpBytes bounds the bytes that batches read from the log hold at
	// once across all subscriptions (see readBudget); 0 means
	// DefaultCatchUpBytes, a negative value means no bound.
	CatchUpBytes int64
	// Evaluators bounds how many CEL evaluations (by the expressions'
	// groups and by streams catching up) run at once; 0 means half of
	// GOMAXPROCS, at least one.
	Evaluators int
	// Registerer receives the hub's metrics when not nil.
	Registerer prometheus.Registerer
}

// idleBuffer is a subscription's buffer until its first event (see
// Subscription.grow): enough for a short burst to reach a stream that has
// just woken, without a catch-up.
const idleBuffer = 8

// Hub distributes published events to subscriptions.
type Hub struct {
	log Log
	// stored is log when it can hand out stored bytes, nil otherwise.
	stored StoredReader
	cfg    Config
	done   chan struct{} // closed by Close

	mu sync.Mutex
	// subs is the subscriptions without an expression, which Publish
	// hands events to; groups holds the others. Guarded by mu.
	subs   map[*Subscription]struct{}
	groups map[groupKey]*group
	// streams counts the subscriptions other than Follow's, which
	// MaxSubscriptions bounds; guarded by mu.
	streams int
	last    uint64  // guarded by mu: the last sequence published
	closed  bool    // guarded by mu
	recent  *recent // guarded by mu; nil when disabled

	budget *readBudget // safe for concurrent use
	// snapshots holds *[]slot arrays for Subscription.catchUpRecent.
	snapshots sync.Pool
	// evaluating bounds the CEL expressions evaluated at once (see
	// Subscription.match); safe for concurrent use, never held with mu.
	evaluating *semaphore.Weighted
	// evaluators is the groups' goroutines, which Close waits for.
	evaluators sync.WaitGroup

	metrics metrics
}

// New returns a hub over cfg.Log; zero fields of cfg take their defaults.
func New(cfg Config) *Hub {
	if cfg.Buffer <= 0 {
		cfg.Buffer = 256
	}
	if cfg.CatchUpBatch <= 0 {
		// Each read creates a consumer, so larger batches replay faster;
		// the log bounds a batch by bytes as well (raw bodies included).
		cfg.CatchUpBatch = 1024
	}
	if cfg.Recent == 0 {
		cfg.Recent = 8192
	}
	if cfg.RecentBytes <= 0 {
		cfg.RecentBytes = 64 << 20
	}
	if cfg.CatchUpBytes == 0 {
		cfg.CatchUpBytes = DefaultCatchUpBytes
	}
	if cfg.Evaluators <= 0 {
		cfg.Evaluators = max(1, runtime.GOMAXPROCS(0)/2)
	}
	stored, _ := cfg.Log.(StoredReader)
	return &Hub{
		log:        cfg.Log,
		stored:     stored,
		cfg:        cfg,
		done:       make(chan struct{}),
		subs:       make(map[*Subscription]struct{}),
		groups:     make(map[groupKey]*group),
		last:       cfg.Last,
		recent:     newRecent(cfg.Recent, cfg.RecentBytes),
		budget:     newReadBudget(cfg.CatchUpBytes),
		evaluating: semaphore.NewWeighted(int64(cfg.Evaluators)),
		metrics:    newMetrics(cfg.Registerer),
	}
}

// Publish hands ev to every live subscription whose filter's fields match
// it, and to the group of each expression (see group) that one of its
// live members selects by those fields. It never blocks: a subscription
// with a full buffer, or the members of a group with a full queue, are
// switched to catch-up. Events must arrive in sequence order; one already
// published is ignored.
//
// A filter's CEL expression is not evaluated here but by its group's
// goroutine: it may cost far more than the other checks, and evaluated
// here, under Hub.mu and one stream after another, a few costly
// expressions would delay every stream's events. Off the lock, a group
// whose expression is slow only falls behind itself, and its members
// catch up by themselves.
func (h *Hub) Publish(ev *gatewayv1.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || ev.GetSequence() <= h.last {
		return
	}
	h.last = ev.GetSequence()
	// At most two items per event, each encoded at most once, however many
	// streams send it (live or catching up from recent).
	var sl *slot
	if h.recent != nil {
		sl = h.recent.add(ev)
	} else {
		sl = &slot{ev: ev}
	}
	for s := range h.subs {
		if !s.lagging.Load() && s.filter.matchFields(ev) {
			h.sendLocked(s, sl.item(s.full))
		}
	}
	for _, g := range h.groups {
		if !g.wantsLocked(ev) {
			continue
		}
		select {
		case g.queue <- sl.item(g.key.full):
		default:
			h.overflowLocked(g)
		}
	}
}

// sendLocked puts it in s's buffer, or switches s to catch-up when the
// buffer is full. Hub.mu must be held.
func (h *Hub) sendLocked(s *Subscription, it *Item) {
	select {
	case s.ch <- it:
	default:
		s.lagging.Store(true)
		h.metrics.catchUps.Inc()
	}
}

// Last returns the last sequence published.
func (h *Hub) Last() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}

// Close ends every subscription with ErrClosed and refuses new ones. It
// returns once the groups' goroutines have ended.
func (h *Hub) Close() {
	h.mu.Lock()
	if !h.closed {
		h.closed = true
		close(h.done)
		// Publish and the groups send nothing once closed, so each live
		// subscription's buffer can be closed: that is how a waiting
		// Next learns of it.
		for s := range h.subs {
			close(s.ch)
		}
		for _, g := range h.groups {
			g.cancel()
			for s := range g.members {
				close(s.ch)
			}
		}
	}
	h.mu.Unlock()
	h.evaluators.Wait()
}

// StartKind says where a subscription starts.
type StartKind int

// Where a subscription can start.
const (
	StartNow       StartKind = iota // only events published after Subscribe
	StartAfter                      // after a sequence (exclusive)
	StartSince                      // events received at or after a time
	StartBeginning                  // the earliest retained event
)

// Start is a subscription's start position.
type Start struct {
	Kind  StartKind
	After uint64
	Since time.Time
}

// Subscribe registers a subscription. Once it returns, no event appended
// later can be missed, so the caller may tell its client the stream is
// live. full selects whether events carry their raw body.
func (h *Hub) Subscribe(ctx context.Context, f *Filter, start Start, full bool) (*Subscription, error) {
	return h.subscribe(ctx, f, start, full, false)
}

// subscribe is Subscribe; an internal subscription (Follow's) is neither
// bounded by MaxSubscriptions nor counted as an open stream.
func (h *Hub) subscribe(ctx context.Context, f *Filter, start Start, full, internal bool) (*Subscription, error) {
	s := &Subscription{h: h, filter: f, full: full, internal: internal, ch: make(chan *Item, min(idleBuffer, h.cfg.Buffer))}
	if start.Kind != StartNow {
		first, last, err := h.log.Bounds(ctx)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrLogUnavailable, err) //nolint:errorlint // the kind is ErrLogUnavailable; the store's cause is text only, so a timeout inside is not mapped as the caller's own deadline
		}
		switch start.Kind {
		case StartAfter:
			if start.After+1 < first {
				return nil, &errkind.RangeError{First: first, Last: last, Reason: fmt.Sprintf("after_sequence %d is older than retention", start.After)}
			}
			if start.After > last {
				return nil, &errkind.RangeError{First: first, Last: last, Reason: fmt.Sprintf("after_sequence %d is beyond the newest event", start.After)}
			}
			s.next = start.After + 1
		case StartSince:
			seq, err := h.log.SeqAt(ctx, start.Since)
			if err != nil {
				return nil, fmt.Errorf("%w: %v", ErrLogUnavailable, err) //nolint:errorlint // the kind is ErrLogUnavailable; the store's cause is text only, so a timeout inside is not mapped as the caller's own deadline
			}
			s.next = max(seq, first)
			s.filter = f.Since(start.Since)
		case StartBeginning:
			s.next = first
		}
		// Catch up from the log first; Publish leaves a lagging
		// subscription alone until it rejoins.
		s.lagging.Store(true)
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	if !internal && h.cfg.MaxSubscriptions > 0 && h.streams >= h.cfg.MaxSubscriptions {
		return nil, ErrTooManyStreams
	}
	if start.Kind == StartNow {
		s.next = h.last + 1
	}
	if f.expr != nil {
		h.joinLocked(s)
	} else {
		h.subs[s] = struct{}{}
	}
	if !internal {
		h.streams++
		h.metrics.subscribers.Inc()
	}
	return s, nil
}

// WithoutBody returns ev without its raw body, sharing everything else. The
// result must be treated as read-only, like every event the hub hands out.
func WithoutBody(ev *gatewayv1.Event) *gatewayv1.Event {
	if len(ev.GetRawBody()) == 0 {
		return ev
	}
	return &gatewayv1.Event{
		Id:           ev.GetId(),
		Sequence:     ev.GetSequence(),
		Type:         ev.GetType(),
		RawType:      ev.GetRawType(),
		WebhookId:    ev.GetWebhookId(),
		OccurredAt:   ev.GetOccurredAt(),
		ReceivedAt:   ev.GetReceivedAt(),
		DeliveryId:   ev.GetDeliveryId(),
		SourceFormat: ev.GetSourceFormat(),
		Job:          ev.GetJob(),
		Test:         ev.GetTest(),
		Traceparent:  ev.GetTraceparent(),
	}
}
