package groups

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/klingfan/klingfan/internal/store"
)

// An ack id is the JetStream reply subject of the delivery
// ("$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.
// <time>.<pending>", or the longer form with domain and account hash).
// Publishing to it settles the delivery on whichever replica receives the
// AckEvents call, so acks need no routing back to the replica that
// delivered. Clients treat it as opaque.

// ackRef is what an ack id says about its delivery.
type ackRef struct {
	subject   string
	stream    string
	consumer  string
	delivered uint64
	streamSeq uint64
}

// parseAckID checks that id is a JetStream ack subject of one of group id's
// consumers and reads it.
func parseAckID(group, id string) (ackRef, error) {
	tokens := strings.Split(id, ".")
	var at int // index of the stream token
	switch {
	case len(tokens) == 9:
		at = 2
	case len(tokens) >= 11:
		at = 4
	default:
		return ackRef{}, fmt.Errorf("%w: malformed", ErrInvalidAckID)
	}
	if tokens[0] != "$JS" || tokens[1] != "ACK" {
		return ackRef{}, fmt.Errorf("%w: malformed", ErrInvalidAckID)
	}
	for _, t := range tokens {
		if t == "" || strings.ContainsAny(t, "*> \t\r\n") {
			return ackRef{}, fmt.Errorf("%w: malformed", ErrInvalidAckID)
		}
	}
	ref := ackRef{subject: id, stream: tokens[at], consumer: tokens[at+1]}
	if (ref.stream != store.StreamName && ref.stream != StreamName) || ref.consumer != consumerName(group) {
		return ackRef{}, ErrInvalidAckID
	}
	var err1, err2 error
	ref.delivered, err1 = strconv.ParseUint(tokens[at+2], 10, 64)
	ref.streamSeq, err2 = strconv.ParseUint(tokens[at+3], 10, 64)
	if err1 != nil || err2 != nil {
		return ackRef{}, fmt.Errorf("%w: malformed", ErrInvalidAckID)
	}
	return ref, nil
}

// Settle acknowledges acks and rejects nacks (redelivered after delay) for
// group id. Every id is checked before any is sent. It returns once the
// NATS server has received them all.
func (g *Groups) Settle(ctx context.Context, id string, acks, nacks []string, delay time.Duration) error {
	refs := make([]ackRef, 0, len(acks)+len(nacks))
	for _, a := range append(append([]string(nil), acks...), nacks...) {
		ref, err := parseAckID(id, a)
		if err != nil {
			return err
		}
		refs = append(refs, ref)
	}
	nak := []byte("-NAK")
	if delay > 0 {
		nak = fmt.Appendf(nil, `-NAK {"delay": %d}`, delay.Nanoseconds())
	}
	for i, ref := range refs {
		body := []byte("+ACK")
		if i >= len(acks) {
			body = nak
		}
		if err := g.nc.Publish(ref.subject, body); err != nil {
			return store.Classify("send acknowledgement", err)
		}
	}
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := g.nc.FlushWithContext(fctx); err != nil {
		return store.Classify("send acknowledgements", err)
	}
	return nil
}
