package hub

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v5"
	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/errkind"
	"github.com/klingfan/klingfan/internal/retry"
)

// Follow calls fn with every event after sequence after, in order, until
// ctx ends (it then returns ctx.Err()) or the hub closes (ErrClosed). It is
// how an in-process reader of the whole log, the job projection, shares the
// hub's one tail: each event is read from the log and decoded once, for
// every stream and for it.
//
// A reader that falls behind catches up as a slow stream does, from the
// hub's recent events and then from the log, and rejoins live delivery
// with no gap; it never holds up Publish. Events that expired before the
// reader got to them are skipped, and a log that is unavailable is retried
// with backoff, as a tail of the log's own would. fn runs on the caller's
// goroutine and must not modify the event, which streams share.
func (h *Hub) Follow(ctx context.Context, after uint64, fn func(*gatewayv1.Event)) error {
	all, err := NewFilter(nil, nil, nil)
	if err != nil {
		return err
	}
	wait := retry.NewBackoff()
	for {
		s, err := h.subscribe(ctx, all, Start{Kind: StartAfter, After: after}, true, true)
		if err == nil {
			err = follow(ctx, s, &after, fn, wait)
			s.Close()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, ErrClosed) {
			return err
		}
		var re *errkind.RangeError
		if errors.As(err, &re) && after+1 < re.First {
			after = re.First - 1 // expired before they were read
			continue
		}
		// The log is unavailable, or has not reached after yet (a
		// checkpoint ahead of a log that was replaced): try again.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-h.done:
			return ErrClosed
		case <-time.After(wait.NextBackOff()):
		}
	}
}

// follow hands fn the events of s, advancing *after past each, until Next
// fails. Progress resets wait.
func follow(ctx context.Context, s *Subscription, after *uint64, fn func(*gatewayv1.Event), wait backoff.BackOff) error {
	for {
		it, err := s.Next(ctx)
		if err != nil {
			return err
		}
		ev := it.Event
		if ev == nil {
			// Caught up from the log's stored bytes: the one decode
			// left, paid only while behind. An event that does not
			// decode is skipped, as the log's tail skips it.
			var resp gatewayv1.SubscribeResponse
			data, _ := it.Encoded()
			if proto.Unmarshal(data, &resp) != nil || resp.GetEvent() == nil {
				*after = it.Sequence()
				continue
			}
			ev = resp.GetEvent()
		}
		*after = ev.GetSequence()
		wait.Reset()
		fn(ev)
	}
}
