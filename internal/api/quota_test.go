package api

import (
	"context"
	"errors"
	"testing"
)

func TestStreamQuota(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, q *streamQuota)
	}{
		{"a cancelled stream frees its slot before its handler returns", func(t *testing.T, q *streamQuota) {
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
		{"tokens are counted apart and release frees", func(t *testing.T, q *streamQuota) {
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
			tc.run(t, &streamQuota{max: 2, open: map[string]map[*quotaSlot]struct{}{}})
		})
	}
}
