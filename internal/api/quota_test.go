package api

import (
	"context"
	"errors"
	"testing"

	"github.com/klingfan/klingfan/internal/hub"
)

func TestStreamQuota(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, q *StreamQuota)
	}{
		{"a cancelled stream frees its slot before its handler returns", func(t *testing.T, q *StreamQuota) {
			ctx, cancel := context.WithCancel(context.Background())
			if _, err := q.acquire(ctx, "a"); err != nil {
				t.Fatal(err)
			}
			if _, err := q.acquire(context.Background(), "a"); err != nil {
				t.Fatal(err)
			}
			if _, err := q.acquire(context.Background(), "a"); !errors.Is(err, errStreamQuota) {
				t.Fatalf("third stream: %v, want errStreamQuota", err)
			}
			cancel() // the handler has not returned: release not called
			if _, err := q.acquire(context.Background(), "a"); err != nil {
				t.Fatalf("after a cancel: %v", err)
			}
		}},
		{"tokens are counted apart and release frees", func(t *testing.T, q *StreamQuota) {
			r1, _ := q.acquire(context.Background(), "a")
			_, _ = q.acquire(context.Background(), "a")
			if _, err := q.acquire(context.Background(), "b"); err != nil {
				t.Fatal(err)
			}
			r1()
			if _, err := q.acquire(context.Background(), "a"); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, NewStreamQuota(2, 0))
		})
	}
}

// TestStreamQuotaTotal: the server's total counts the streams of every
// token, and a stream that ended stops counting.
func TestStreamQuotaTotal(t *testing.T) {
	q := NewStreamQuota(2, 3)
	ctx, cancel := context.WithCancel(context.Background())
	for _, token := range []string{"a", "b"} {
		if _, err := q.acquire(ctx, token); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := q.acquire(context.Background(), "c"); err != nil {
		t.Fatal(err)
	}
	if _, err := q.acquire(context.Background(), "d"); !errors.Is(err, hub.ErrTooManyStreams) {
		t.Fatalf("a fourth stream in all: %v, want hub.ErrTooManyStreams", err)
	}
	cancel()
	if _, err := q.acquire(context.Background(), "d"); err != nil {
		t.Fatalf("after two streams ended: %v", err)
	}
}
