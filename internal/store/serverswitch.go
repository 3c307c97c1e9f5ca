package store

import (
	"container/list"
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klingfan/klingfan/internal/retry"
)

// The NATS client leaves a server only when its connection to it fails. A
// server cut off from the rest of its cluster keeps that connection
// healthy while it can no longer serve JetStream (it has no quorum and no
// route to the stream's leader), so every append through it times out and
// ingest answers 503 for as long as the partition lasts. serverWatch
// notices that the connected server has stopped answering JetStream while
// the connection is up and asks the client to reconnect to another server
// of its pool.
//
// The client shuffles its pool when it connects (klingfan never sets
// NoRandomize), so replicas spread over the nodes, and a reconnect moves
// the server it leaves to the end of the pool and tries the next one at
// once: a forced reconnect never returns to the node it left before every
// other node was tried.

const (
	// stallAfter is how long JetStream requests through the connected
	// server may go unanswered (pending, timed out or refused as
	// unavailable, with no request answered meanwhile) before the client
	// is moved. It is well under ingest's append timeout, so a replica
	// moves before the first of its appends stuck on a cut-off node is
	// answered 503; and long enough that a slow fsync or a busy leader
	// does not trigger it.
	stallAfter = 2 * time.Second
	// movingOnFor is how long after its first move, while no server
	// answers, the watch moves on every stallAfter. Every node stalls
	// while the cluster elects a stream leader (up to the nine seconds of
	// NATS's longest election timeout, when the leader is the node cut
	// off), and a replica that moved meanwhile may have landed on the cut
	// node itself; moving on keeps it there no longer than stallAfter once
	// the others have a leader.
	movingOnFor = 15 * time.Second
	// switchGapInitial and switchGapMax space the moves after that, when
	// moving has not helped (a cluster without quorum) and would only
	// churn: the gap doubles up to switchGapMax. Both start afresh when a
	// request is answered.
	switchGapInitial = 10 * time.Second
	switchGapMax     = time.Minute
)

// SwitchReason says why the store moved its connection to another server;
// it is the label of the forced-reconnect metric, so the set is fixed.
type SwitchReason string

// The reasons for a forced reconnect: the kind of the latest failure in
// the stall.
const (
	// SwitchNoAnswer: requests timed out or are still waiting.
	SwitchNoAnswer SwitchReason = "no_answer"
	// SwitchNoResponders: the server knows no one to answer (no stream
	// leader reachable from it).
	SwitchNoResponders SwitchReason = "no_responders"
	// SwitchUnavailable: the server answered that JetStream is not
	// available (no meta leader, no quorum, not enabled).
	SwitchUnavailable SwitchReason = "jetstream_unavailable"
)

// SwitchReasons lists every SwitchReason.
var SwitchReasons = []SwitchReason{SwitchNoAnswer, SwitchNoResponders, SwitchUnavailable}

// ServerSwitches returns how many times the store moved its connection to
// another server for reason since it opened; always 0 with the embedded
// server.
func (s *Store) ServerSwitches(reason SwitchReason) uint64 {
	if s.watch == nil {
		return 0
	}
	if c := s.watch.switches[reason]; c != nil {
		return c.Load()
	}
	return 0
}

// serverWatch follows the JetStream requests of an external connection
// and moves the connection when they stall. Its methods are safe on a nil
// *serverWatch (the embedded server, where there is nowhere to move), and
// for concurrent use. It never holds mu while calling into the
// connection, whose reconnect closes a socket and may write to it.
type serverWatch struct {
	nc  *nats.Conn // set once, before the first request
	log *slog.Logger

	mu        sync.Mutex
	stalls    stallTracker                // guarded by mu
	timer     *time.Timer                 // guarded by mu; fires check
	armed     bool                        // guarded by mu: timer is pending
	notBefore time.Time                   // guarded by mu: no forced reconnect before
	gap       *backoff.ExponentialBackOff // guarded by mu
	firstMove time.Time                   // guarded by mu: of those since the last answer; zero if none
	closed    bool                        // guarded by mu
	// moving counts the moves under way, added to under mu while not
	// closed, so stop can wait for them before the connection drains.
	moving sync.WaitGroup

	switches map[SwitchReason]*atomic.Uint64 // fixed keys; read without mu
}

func newServerWatch(log *slog.Logger) *serverWatch {
	w := &serverWatch{
		log:      log,
		gap:      retry.NewBackoffBetween(switchGapInitial, switchGapMax),
		switches: make(map[SwitchReason]*atomic.Uint64, len(SwitchReasons)),
	}
	for _, r := range SwitchReasons {
		w.switches[r] = new(atomic.Uint64)
	}
	w.timer = time.AfterFunc(time.Hour, w.check)
	w.timer.Stop()
	return w
}

// begin records a JetStream request about to be sent; pass what it
// returns to end with the request's error.
func (w *serverWatch) begin() *list.Element {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	op := w.stalls.begin(now)
	w.armLocked(now)
	return op
}

// end records the outcome of the request begin returned op for.
func (w *serverWatch) end(op *list.Element, err error) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stalls.end(op, time.Now(), err) && !w.firstMove.IsZero() {
		w.gap.Reset()
		w.firstMove = time.Time{}
	}
}

// reconnected forgets the requests made through the previous server: the
// client moved by itself.
func (w *serverWatch) reconnected() {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stalls.reset(time.Now())
}

// stop ends the watch for good and waits for a move under way; Close
// calls it before draining the connection.
func (w *serverWatch) stop() {
	if w == nil {
		return
	}
	w.mu.Lock()
	w.closed = true
	w.timer.Stop()
	w.mu.Unlock()
	w.moving.Wait()
}

// armLocked makes the timer fire when the current stall, if any, becomes
// long enough to act on.
func (w *serverWatch) armLocked(now time.Time) {
	if w.armed || w.closed {
		return
	}
	since := w.stalls.stalledSince()
	if since.IsZero() {
		return
	}
	due := since.Add(stallAfter)
	if w.notBefore.After(due) {
		due = w.notBefore
	}
	w.armed = true
	w.timer.Reset(max(due.Sub(now), 0))
}

// check runs on the timer: it moves the connection when the stall has
// lasted stallAfter and the previous move is far enough back, and arms the
// timer again otherwise.
func (w *serverWatch) check() {
	w.mu.Lock()
	w.armed = false
	now := time.Now()
	since := w.stalls.stalledSince()
	if w.closed || since.IsZero() {
		w.mu.Unlock()
		return
	}
	if now.Sub(since) < stallAfter || now.Before(w.notBefore) {
		w.armLocked(now)
		w.mu.Unlock()
		return
	}
	reason := w.stalls.reason()
	w.stalls.reset(now)
	// No move before this one has been decided on.
	w.notBefore = now.Add(switchGapMax)
	w.moving.Add(1)
	w.mu.Unlock()
	defer w.moving.Done()
	moved := w.move(reason, now.Sub(since))

	w.mu.Lock()
	defer w.mu.Unlock()
	if moved && w.firstMove.IsZero() {
		w.firstMove = now
	}
	if moved && now.Sub(w.firstMove) < movingOnFor {
		// The next server gets stallAfter, as this one did.
		w.notBefore = now
	} else {
		w.notBefore = now.Add(w.gap.NextBackOff())
	}
	// Requests made during the move armed the timer for the placeholder.
	if w.armed {
		w.timer.Stop()
		w.armed = false
	}
	w.armLocked(time.Now())
}

// move asks the client to reconnect to the next server of its pool, unless
// it is already away from the server or has no other to go to. It reports
// whether it moved.
func (w *serverWatch) move(reason SwitchReason, stalled time.Duration) bool {
	if w.nc.Status() != nats.CONNECTED || len(w.nc.Servers()) < 2 {
		return false
	}
	name, url := w.nc.ConnectedServerName(), w.nc.ConnectedUrlRedacted()
	if err := w.nc.ForceReconnect(); err != nil {
		return false // closed meanwhile
	}
	w.switches[reason].Add(1)
	w.log.Warn("NATS server is not serving JetStream; reconnecting to another",
		slog.String("server", name),
		slog.String("url", url),
		slog.String("reason", string(reason)),
		slog.Duration("unanswered_for", stalled.Round(time.Millisecond)))
	return true
}

// stallTracker decides whether the connected server has stopped answering
// JetStream: a request counts against it when it started after the last
// answer (or reconnect) and is still pending or failed for unavailability.
// It is not safe for concurrent use (serverWatch guards it).
type stallTracker struct {
	pending list.List // of time.Time: the start of each request in flight, oldest first
	// since is the time of the last answer or reconnect: requests that
	// started before it are no evidence against the server.
	since time.Time
	// failedAt is the start of the earliest request started at or after
	// since that failed for unavailability, zero when none did;
	// lastReason is the kind of the latest such failure.
	failedAt   time.Time
	lastReason SwitchReason
}

func (t *stallTracker) begin(now time.Time) *list.Element {
	return t.pending.PushBack(now)
}

// end records op's outcome at now and reports whether the server answered.
func (t *stallTracker) end(op *list.Element, now time.Time, err error) bool {
	start, _ := t.pending.Remove(op).(time.Time)
	answered, reason := judge(err)
	switch {
	case answered:
		t.reset(now)
	case reason != "" && !start.Before(t.since):
		if t.failedAt.IsZero() || start.Before(t.failedAt) {
			t.failedAt = start
		}
		t.lastReason = reason
	}
	return answered
}

// reset starts afresh at now: what was sent before is no evidence.
func (t *stallTracker) reset(now time.Time) {
	t.since = now
	t.failedAt = time.Time{}
	t.lastReason = ""
}

// stalledSince returns when the current stall began: the start of the
// earliest unanswered request that counts, or zero when there is none.
func (t *stallTracker) stalledSince() time.Time {
	first := t.failedAt
	for e := t.pending.Front(); e != nil; e = e.Next() {
		start, _ := e.Value.(time.Time)
		if start.Before(t.since) {
			continue
		}
		if first.IsZero() || start.Before(first) {
			first = start
		}
		break // the list is in start order
	}
	return first
}

// reason names the current stall by its latest failure; requests that are
// only pending have not been answered at all.
func (t *stallTracker) reason() SwitchReason {
	if t.lastReason == "" {
		return SwitchNoAnswer
	}
	return t.lastReason
}

// judge sorts a JetStream request's error: answered when the server served
// it (a refusal of a wrong request included), or the reason it counts
// against the server; neither for errors that say nothing about the
// server (the caller gave up, the client is already reconnecting).
func judge(err error) (answered bool, reason SwitchReason) {
	var apiErr *jetstream.APIError
	switch {
	case err == nil:
		return true, ""
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse):
		return false, SwitchNoResponders
	case errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return false, SwitchNoAnswer
	case errors.Is(err, nats.ErrJetStreamNotEnabled),
		errors.Is(err, jetstream.ErrJetStreamNotEnabled),
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
		return false, SwitchUnavailable
	case errors.As(err, &apiErr):
		if apiErr.Code == 503 || apiErr.ErrorCode == errCodeNoPeers {
			return false, SwitchUnavailable
		}
		return true, ""
	}
	return false, ""
}
