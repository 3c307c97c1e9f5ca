package retry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/klingfan/klingfan/internal/retry"
)

func TestForever(t *testing.T) {
	errCured := errors.New("not yet")
	errFatal := errors.New("fatal")
	cases := []struct {
		name     string
		failures int   // attempts that fail with errCured before success
		fatal    bool  // the first attempt fails permanently
		want     error // what Forever returns
		calls    int
	}{
		{name: "first attempt", failures: 0, want: nil, calls: 1},
		{name: "cured after failures", failures: 3, want: nil, calls: 4},
		{name: "permanent", fatal: true, want: errFatal, calls: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			calls, notified := 0, 0
			got, err := retry.Forever(context.Background(), func() (int, error) {
				calls++
				if tc.fatal {
					return 0, retry.Permanent(errFatal)
				}
				if calls <= tc.failures {
					return 0, errCured
				}
				return 42, nil
			}, func(err error, wait time.Duration) {
				notified++
				if !errors.Is(err, errCured) || wait <= 0 || wait > retry.MaxWait*2 {
					t.Errorf("notify(%v, %s)", err, wait)
				}
			})
			if !errors.Is(err, tc.want) || (err == nil && got != 42) || calls != tc.calls || notified != tc.failures {
				t.Fatalf("Forever = %d, %v after %d calls and %d notifications; want %v after %d calls", got, err, calls, notified, tc.want, tc.calls)
			}
		})
	}
}

// A context that ends stops the retries, however long they would go on:
// there is no other limit.
func TestForeverStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	_, err := retry.Forever(ctx, func() (int, error) {
		calls++
		if calls == 3 {
			cancel()
		}
		return 0, errors.New("down")
	}, nil)
	if !errors.Is(err, context.Canceled) || calls != 3 {
		t.Fatalf("Forever = %v after %d calls, want context.Canceled after 3", err, calls)
	}
}
