package store

import (
	"container/list"
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The tracker decides when the connected server has stopped answering: a
// request that started after the last answer and is pending or failed for
// unavailability counts, from its start; an answer clears the evidence.
func TestStallTracker(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	timeout := fmt.Errorf("publish: %w", context.DeadlineExceeded)
	noQuorum := &jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}

	// A step begins request name at ms, or ends it with err.
	type step struct {
		ms    int
		begin string
		end   string
		err   error
	}
	tests := []struct {
		name       string
		steps      []step
		wantSince  int // ms; -1 for no stall
		wantReason SwitchReason
	}{
		{
			name:      "answered requests are no stall",
			steps:     []step{{ms: 0, begin: "a"}, {ms: 5, end: "a"}, {ms: 10, begin: "b"}, {ms: 12, end: "b"}},
			wantSince: -1,
		},
		{
			name:       "a pending request stalls from its start",
			steps:      []step{{ms: 0, begin: "a"}, {ms: 5, end: "a"}, {ms: 100, begin: "b"}, {ms: 150, begin: "c"}},
			wantSince:  100,
			wantReason: SwitchNoAnswer,
		},
		{
			name:      "an answer after a request started clears it",
			steps:     []step{{ms: 0, begin: "slow"}, {ms: 10, begin: "fast"}, {ms: 20, end: "fast"}},
			wantSince: -1,
		},
		{
			name:       "failures count from the earliest start and name the latest kind",
			steps:      []step{{ms: 0, begin: "a"}, {ms: 10, begin: "b"}, {ms: 20, end: "b", err: nats.ErrNoResponders}, {ms: 5000, end: "a", err: timeout}},
			wantSince:  0,
			wantReason: SwitchNoAnswer,
		},
		{
			name:       "JetStream unavailable",
			steps:      []step{{ms: 0, begin: "a"}, {ms: 3, end: "a", err: noQuorum}},
			wantSince:  0,
			wantReason: SwitchUnavailable,
		},
		{
			name:       "no responders",
			steps:      []step{{ms: 7, begin: "a"}, {ms: 9, end: "a", err: jetstream.ErrNoStreamResponse}},
			wantSince:  7,
			wantReason: SwitchNoResponders,
		},
		{
			name:      "a refused request is an answer",
			steps:     []step{{ms: 0, begin: "a"}, {ms: 3, end: "a", err: noQuorum}, {ms: 10, begin: "b"}, {ms: 12, end: "b", err: &jetstream.APIError{Code: 400, ErrorCode: 10071, Description: "wrong last sequence"}}},
			wantSince: -1,
		},
		{
			name:      "a caller giving up says nothing about the server",
			steps:     []step{{ms: 0, begin: "a"}, {ms: 3, end: "a", err: context.Canceled}, {ms: 10, begin: "b"}, {ms: 12, end: "b", err: nats.ErrConnectionReconnecting}},
			wantSince: -1,
		},
		{
			name:      "a failure of a request older than the last answer is no evidence",
			steps:     []step{{ms: 0, begin: "old"}, {ms: 10, begin: "b"}, {ms: 20, end: "b"}, {ms: 5000, end: "old", err: timeout}},
			wantSince: -1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var tr stallTracker
			ops := map[string]*list.Element{}
			for _, s := range tc.steps {
				if s.begin != "" {
					ops[s.begin] = tr.begin(at(s.ms))
				} else {
					tr.end(ops[s.end], at(s.ms), s.err)
				}
			}
			got := tr.stalledSince()
			switch {
			case tc.wantSince < 0 && !got.IsZero():
				t.Fatalf("stalled since %s, want no stall", got.Sub(t0))
			case tc.wantSince >= 0 && !got.Equal(at(tc.wantSince)):
				t.Fatalf("stalled since %v, want %dms", got.Sub(t0), tc.wantSince)
			}
			if tc.wantSince >= 0 && tr.reason() != tc.wantReason {
				t.Errorf("reason %q, want %q", tr.reason(), tc.wantReason)
			}
			tr.reset(at(10_000))
			if since := tr.stalledSince(); !since.IsZero() {
				t.Errorf("after a reset: stalled since %s", since.Sub(t0))
			}
		})
	}
}

// The embedded server is the only server there is: the store does not
// watch it for a server to move away from.
func TestEmbeddedHasNoServerWatch(t *testing.T) {
	s, err := Open(context.Background(), Config{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.watch != nil {
		t.Error("the embedded store watches its server")
	}
}
