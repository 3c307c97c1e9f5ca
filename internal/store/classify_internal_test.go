package store

import (
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// The errors a forming or degraded cluster answers are unavailability, so
// Open retries them and ingest answers 503; a wrong request is not.
func TestClassifyUnavailable(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"no quorum", &jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}, true},
		{"no peers for placement yet", &jetstream.APIError{Code: 400, ErrorCode: 10005, Description: "no suitable peers for placement, peer offline"}, true},
		{"invalid stream config", &jetstream.APIError{Code: 400, ErrorCode: 10052, Description: "stream configuration invalid"}, false},
		{"wrapped timeout", fmt.Errorf("create: %w", jetstream.ErrNoStreamResponse), true},
		{"plain error", errors.New("decode: unexpected EOF"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := classify("create stream", tc.err)
			if got := errors.Is(err, ErrUnavailable); got != tc.want {
				t.Errorf("classify(%v) unavailable = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
