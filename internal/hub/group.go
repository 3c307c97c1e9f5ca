package hub

import (
	"context"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// group is the subscriptions whose filters share one CEL expression and
// one view. Publish hands the group each event that one of its live
// members' other conditions select, once however many members it has;
// the group's goroutine evaluates the expression on it off Hub.mu and
// hands a matching event to those members. So an expression is evaluated
// once per event for all the streams that carry it, and a stream whose
// expression drops most events is neither woken for them nor filled up
// with them: its buffer holds only what it will send.
//
// A group whose evaluations cannot keep up with Publish (a costly
// expression, or no CPU) overflows its queue like a slow stream: its live
// members are switched to catch-up and evaluate the expression themselves
// (Subscription.match), sharing verdicts with the group.
type group struct {
	key groupKey
	// members is guarded by Hub.mu.
	members map[*Subscription]struct{}
	// queue is what Publish fills, under Hub.mu; run reads it. It is never
	// closed: run ends with ctx.
	queue chan *Item
	// ctx ends when the last member leaves or the hub closes, stopping
	// run and any evaluation it waits for.
	ctx    context.Context
	cancel context.CancelFunc
}

// groupKey says which subscriptions share a group: the same expression
// (streams with the same source share one compiled expression) in the same
// view, since an expression may read the raw body.
type groupKey struct {
	expr expression
	full bool
}

// joinLocked adds s, whose filter has an expression, to its group,
// starting the group when s is its first member. Hub.mu must be held.
func (h *Hub) joinLocked(s *Subscription) {
	key := groupKey{expr: s.filter.expr, full: s.full}
	g := h.groups[key]
	if g == nil {
		ctx, cancel := context.WithCancel(context.Background())
		g = &group{key: key, members: make(map[*Subscription]struct{}), queue: make(chan *Item, h.cfg.Buffer), ctx: ctx, cancel: cancel}
		h.groups[key] = g
		h.evaluators.Go(func() { h.run(g) })
	}
	g.members[s] = struct{}{}
}

// leaveLocked removes s from its group, stopping the group when s was its
// last member. Hub.mu must be held.
func (h *Hub) leaveLocked(s *Subscription) {
	key := groupKey{expr: s.filter.expr, full: s.full}
	g := h.groups[key]
	if g == nil {
		return
	}
	delete(g.members, s)
	if len(g.members) == 0 {
		delete(h.groups, key)
		g.cancel()
	}
}

// wantsLocked reports whether a live member of g selects ev by the
// conditions other than the expression. Hub.mu must be held.
func (g *group) wantsLocked(ev *gatewayv1.Event) bool {
	for s := range g.members {
		if !s.lagging.Load() && s.filter.matchFields(ev) {
			return true
		}
	}
	return false
}

// overflowLocked switches g's live members to catch-up: the group's queue
// is full, so the event that did not fit reaches them from the recent
// events or the log. A member waiting on an empty buffer is woken with a
// nil item, which Next skips, to find itself lagging. Hub.mu must be
// held.
func (h *Hub) overflowLocked(g *group) {
	for s := range g.members {
		if !s.lagging.Load() {
			s.lagging.Store(true)
			h.metrics.catchUps.Inc()
			select {
			case s.ch <- nil:
			default: // full: the stream has items to take first anyway
			}
		}
	}
}

// run evaluates g's expression on each queued event, holding one of the
// hub's evaluation slots, and hands a matching event to the live members
// that select it, until the group stops or the hub closes.
func (h *Hub) run(g *group) {
	for {
		var it *Item
		select {
		case it = <-g.queue:
		case <-g.ctx.Done():
			return
		}
		match, err := g.key.expr.Decide(g.ctx, it.Event, h.evaluating)
		if err != nil {
			return // the group stopped
		}
		if !match {
			continue
		}
		h.mu.Lock()
		if h.closed || g.ctx.Err() != nil {
			h.mu.Unlock()
			return
		}
		for s := range g.members {
			if !s.lagging.Load() && s.filter.matchFields(it.Event) {
				h.sendLocked(s, it)
			}
		}
		h.mu.Unlock()
	}
}
