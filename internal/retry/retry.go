// Package retry is klingfan's one way to retry an operation that a later
// attempt may cure: a log that is unreachable for a while, a watch that
// ended, a compare-and-set lost to another replica. It is
// cenkalti/backoff's exponential backoff with the house policy: from
// 100 ms, doubling, with jitter so that replicas which failed together do
// not retry in step, and no limit on the time spent (the library's default
// gives up after 15 minutes, which for a background loop means silently
// stopping), only the caller's context.
package retry

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Initial is the first wait; MaxWait is where the doubling stops, short
// enough that a background loop is back within a couple of seconds of the
// log recovering, long enough that a failed attempt every MaxWait is cheap.
const (
	Initial = 100 * time.Millisecond
	MaxWait = 2 * time.Second
)

// NewBackoff returns the policy's waits, for a loop that retries by hand
// because it must reset the backoff when it makes progress (a tail): call
// NextBackOff before each wait and Reset after progress.
func NewBackoff() *backoff.ExponentialBackOff {
	return NewBackoffBetween(Initial, MaxWait)
}

// NewBackoffBetween is NewBackoff from initial up to maxWait, for an action
// that costs more than a retried request and must be spaced further
// apart (moving a connection to another server).
func NewBackoffBetween(initial, maxWait time.Duration) *backoff.ExponentialBackOff {
	return &backoff.ExponentialBackOff{
		InitialInterval:     initial,
		RandomizationFactor: 0.2,
		Multiplier:          2,
		MaxInterval:         maxWait,
	}
}

// Forever calls op until it succeeds, fails with an error marked
// Permanent (returned unwrapped), or ctx ends (ctx's error is returned).
// notify, when not nil, hears each failure and the wait before the next
// attempt, for logging.
func Forever[T any](ctx context.Context, op func() (T, error), notify func(err error, wait time.Duration)) (T, error) {
	opts := []backoff.RetryOption{backoff.WithBackOff(NewBackoff()), backoff.WithMaxElapsedTime(0)}
	if notify != nil {
		opts = append(opts, backoff.WithNotify(notify))
	}
	return backoff.Retry(ctx, op, opts...)
}

// Permanent marks err as one that retrying cannot cure: Forever returns it
// at once.
func Permanent(err error) error { return backoff.Permanent(err) }
