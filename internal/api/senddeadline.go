package api

import (
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/klingfan/klingfan/internal/errkind"
)

// errSendStalled ends a stream whose client stopped reading: a message was
// not accepted within the send deadline. The client resumes after the last
// sequence it received.
var errSendStalled = errkind.New(errkind.Unavailable, "api", "stream ended: no message was accepted within the send deadline (is the client reading?); reconnect and resume after the last sequence received")

// sendWatch puts a deadline on each Send of a Subscribe stream. gRPC gives
// a handler no way to abort a Send blocked on flow control except by
// returning, which ends the stream and makes the blocked Send fail. So once
// a stream has its first event, a goroutine of its own runs the delivery
// loop (the stream's only sender from then on; an idle stream never starts
// one) and marks each Send's start here, while the handler's goroutine
// sleeps on a timer and returns errSendStalled when a Send has been in
// progress for longer than the deadline.
//
// The steady state costs two atomic stores and a clock reading per event;
// the handler wakes once per deadline, not once per event. Handing each
// Send to a sender goroutine and waiting for its result would cost two
// goroutine switches per event per stream, which is what fan-out to many
// streams spends its CPU on.
type sendWatch struct {
	// started is when the Send in progress began, in nanoseconds since
	// watchEpoch plus one; 0 while no Send is in progress.
	started atomic.Int64
}

// watchEpoch is the origin of sendWatch's clock readings; time.Since
// reads the monotonic clock.
var watchEpoch = time.Now()

// begin marks the start of a Send. A nil watch does nothing.
func (w *sendWatch) begin() {
	if w != nil {
		w.started.Store(int64(time.Since(watchEpoch)) + 1)
	}
}

// end marks the end of a Send.
func (w *sendWatch) end() {
	if w != nil {
		w.started.Store(0)
	}
}

// wait returns the delivery loop's result from done, or errSendStalled as
// soon as one Send has been in progress for d. The loop's goroutine then
// ends when gRPC fails its Send, once the handler has returned.
func (w *sendWatch) wait(done <-chan error, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-t.C:
			started := w.started.Load()
			if started == 0 {
				t.Reset(d)
				continue
			}
			elapsed := time.Since(watchEpoch) - time.Duration(started-1)
			if elapsed >= d {
				return errSendStalled
			}
			t.Reset(d - elapsed)
		}
	}
}

// runWatched runs loop on a goroutine of its own, the stream's only sender
// from then on, and returns its result, or errSendStalled as soon as one of
// its Sends has waited d (logged with method and attrs). loop must release
// what the stream holds when it returns: after a stall, the handler has
// already returned, and loop ends once gRPC fails its Send.
func runWatched(d time.Duration, log *slog.Logger, method string, loop func(w *sendWatch) error, attrs ...any) error {
	w := new(sendWatch)
	done := make(chan error, 1)
	go func() { done <- loop(w) }()
	err := w.wait(done, d)
	if errors.Is(err, errSendStalled) {
		log.Warn(method+" stream ended: its client stopped reading", append(attrs, "send_deadline", d)...)
	}
	return err
}
