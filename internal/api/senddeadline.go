package api

import (
	"context"
	"errors"
	"time"
)

// errSendStalled ends a stream whose client stopped reading: a message was
// not accepted within the send deadline. The client resumes after the last
// sequence it received.
var errSendStalled = errors.New("api: stream stalled")

// sendGuard puts a deadline on each Send of a stream. gRPC gives a handler
// no way to abort a Send blocked on flow control except by returning,
// which ends the stream and makes the blocked Send fail. So Sends run on a
// goroutine of the guard's own (the stream's only sender, started with the
// first message, so an idle stream costs nothing), while the handler's
// goroutine waits for each result under a timer and returns
// errSendStalled when one takes longer than the deadline. Everything else
// (the subscription, the quota slot) stays with the handler.
type sendGuard struct {
	deadline time.Duration
	sends    chan func() error // to the sender; closed by stop
	results  chan error        // from the sender; room for one, so it never blocks
	timer    *time.Timer
}

// newSendGuard returns a guard with deadline d; d <= 0 sends on the
// caller's goroutine with no deadline. Call stop when the stream ends.
func newSendGuard(d time.Duration) *sendGuard { return &sendGuard{deadline: d} }

// send runs f (one Send) on the sender goroutine and waits for it, at
// most the deadline or until ctx ends.
func (g *sendGuard) send(ctx context.Context, f func() error) error {
	if g.deadline <= 0 {
		return f()
	}
	if g.sends == nil {
		g.sends = make(chan func() error)
		g.results = make(chan error, 1)
		g.timer = time.NewTimer(g.deadline)
		go func(sends <-chan func() error, results chan<- error) {
			for f := range sends {
				results <- f()
			}
		}(g.sends, g.results)
	} else {
		g.timer.Reset(g.deadline)
	}
	g.sends <- f
	select {
	case err := <-g.results:
		g.timer.Stop()
		return err
	case <-g.timer.C:
		return errSendStalled
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop lets the sender goroutine end: at once when idle, or as soon as
// its Send fails once the handler has returned and the stream is over.
func (g *sendGuard) stop() {
	if g.sends != nil {
		close(g.sends)
		g.timer.Stop()
	}
}
