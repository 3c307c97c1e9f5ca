package store

import (
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// Conn returns the NATS connection the store uses.
func (s *Store) Conn() *nats.Conn { return s.nc }

// Stream returns the events stream.
func (s *Store) Stream() jetstream.Stream { return s.stream }

// FilterSubjects returns the consumer filter subjects that select events of
// the given webhooks and jobs, or nil when every event must be read (no
// filter, or too many combinations); callers filter again in memory either
// way.
func FilterSubjects(webhookIDs, jobIDs []string) []string {
	return filterSubjects(webhookIDs, jobIDs)
}

// DecodeEvent turns the bytes of a message of the events stream back into
// an event with its sequence set.
func DecodeEvent(data []byte, seq uint64) (*gatewayv1.Event, error) { return decode(data, seq) }

// Classify wraps err with the failed operation and, when it means the log
// cannot be reached right now, with ErrUnavailable.
func Classify(op string, err error) error { return classify(op, err) }
