// Package checker decides whether a chaos run lost or duplicated anything:
// it reads the event stream straight from JetStream, with its own client and
// not through klingfan's API, and compares what the stream holds with the
// deliveries klingfan acknowledged.
//
// It trusts nothing klingfan says about its log: a ListEvents bug, a stale
// index or a replica that answers from memory cannot hide a lost write from
// it. It knows only the stream's name and that each message is one encoded
// Event carrying the delivery's raw body.
package checker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// StreamName is klingfan's event stream. The checker names it itself rather
// than importing it, so that it depends on klingfan's storage format only;
// its test reads a stream written by a real klingfan, which keeps the two
// in step.
const StreamName = "KLINGFAN_EVENTS"

// Delivery is one callback the load generator sent. Job is unique per
// delivery, so it identifies the delivery in the log; Body is the exact
// signed body, which the log must hold byte for byte.
type Delivery struct {
	Job  string
	Body []byte
}

// Log is what the stream holds: for each job id, the raw bodies of every
// message that carries it, in stream order.
type Log struct {
	// Messages is the number of messages read.
	Messages int
	// LastSequence is the stream's last sequence when it was read.
	LastSequence uint64
	bodies       map[string][][]byte
}

// Read reads every message of stream from the first sequence to the last
// one at the time of the call, with an ordered consumer (ephemeral, R1, no
// acknowledgements), so it leaves nothing behind on the cluster.
func Read(ctx context.Context, js jetstream.JetStream, stream string) (*Log, error) {
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("checker: stream %s: %w", stream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("checker: stream %s info: %w", stream, err)
	}
	// The count and the last sequence are taken before reading: what is
	// appended meanwhile is not part of this reading, and whichever of the
	// two is reached first ends it (a deleted last message leaves the last
	// sequence unreachable).
	want := info.State.Msgs
	log := &Log{LastSequence: info.State.LastSeq, bodies: make(map[string][][]byte, want)}
	if want == 0 {
		return log, nil
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, fmt.Errorf("checker: read stream %s: %w", stream, err)
	}
	for {
		batch, err := cons.Fetch(1000, jetstream.FetchContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("checker: read stream %s: %w", stream, err)
		}
		last := uint64(0)
		for msg := range batch.Messages() {
			meta, err := msg.Metadata()
			if err != nil {
				return nil, fmt.Errorf("checker: stream %s: %w", stream, err)
			}
			last = meta.Sequence.Stream
			var ev gatewayv1.Event
			if err := proto.Unmarshal(msg.Data(), &ev); err != nil {
				return nil, fmt.Errorf("checker: stream %s sequence %d is not an event: %w", stream, last, err)
			}
			log.add(ev.GetJob().GetJobId(), ev.GetRawBody())
			if last >= log.LastSequence || uint64(log.Messages) >= want {
				return log, nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, fmt.Errorf("checker: read stream %s after sequence %d: %w", stream, last, err)
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("checker: read stream %s: %w", stream, err)
		}
	}
}

func (l *Log) add(job string, body []byte) {
	l.Messages++
	l.bodies[job] = append(l.bodies[job], body)
}

// Result is the verdict on one run.
type Result struct {
	// Acknowledged is the number of distinct deliveries answered 2xx.
	Acknowledged int
	// Lost are acknowledged deliveries the log does not hold.
	Lost []string
	// Altered are acknowledged deliveries the log holds only with another
	// body than the one sent.
	Altered []string
	// Duplicated are deliveries, acknowledged or not, the log holds more
	// than once.
	Duplicated []string
	// Unacknowledged counts deliveries the log holds although no attempt
	// was answered 2xx (a timeout or a 503 after the write landed). They
	// are allowed: Kling retries such a delivery, and the retry is
	// deduplicated.
	Unacknowledged int
	// Messages is the number of messages read from the log.
	Messages int
}

// Compare compares the acknowledged deliveries with the log.
func Compare(acked []Delivery, log *Log) Result {
	r := Result{Messages: log.Messages}
	seen := make(map[string]bool, len(acked))
	for _, d := range acked {
		if seen[d.Job] {
			continue
		}
		seen[d.Job] = true
		r.Acknowledged++
		bodies := log.bodies[d.Job]
		switch {
		case len(bodies) == 0:
			r.Lost = append(r.Lost, d.Job)
		case !slices.ContainsFunc(bodies, func(b []byte) bool { return bytes.Equal(b, d.Body) }):
			r.Altered = append(r.Altered, d.Job)
		}
	}
	for job, bodies := range log.bodies {
		if len(bodies) > 1 {
			r.Duplicated = append(r.Duplicated, job)
		}
		if !seen[job] {
			r.Unacknowledged++
		}
	}
	slices.Sort(r.Duplicated)
	return r
}

// Failed reports whether the run broke klingfan's promise that a 2xx means
// the delivery is durable: something acknowledged is missing or altered.
func (r Result) Failed() bool { return len(r.Lost)+len(r.Altered) > 0 }

// Summary is the line a run ends with.
func (r Result) Summary(faults int) string {
	return fmt.Sprintf("chaos: %d acknowledged, %d lost, %d duplicated, %d faults", r.Acknowledged, len(r.Lost)+len(r.Altered), len(r.Duplicated), faults)
}
