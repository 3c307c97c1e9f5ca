package groups

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/hub"
	"github.com/klingfan/klingfan/internal/store"
)

// deadRecord is one stored dead letter and its position in the groups
// stream.
type deadRecord struct {
	pos uint64
	dl  *gatewayv1.DeadLetter
}

// readDead returns up to limit dead letters of group id stored at or after
// from, and the position to continue at (0 when there are no more).
func (g *Groups) readDead(ctx context.Context, id string, from uint64, limit int) ([]deadRecord, uint64, error) {
	var out []deadRecord
	pos := max(from, 1)
	for len(out) < limit {
		m, err := g.stream.GetMsg(ctx, pos, jetstream.WithGetMsgSubject(deadSubject(id)))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, 0, nil
		}
		if err != nil {
			return nil, 0, store.Classify("read dead letters", err)
		}
		dl := new(gatewayv1.DeadLetter)
		if err := proto.Unmarshal(m.Data, dl); err != nil {
			return nil, 0, fmt.Errorf("groups: dead letter at %d: %w", m.Sequence, err)
		}
		out = append(out, deadRecord{pos: m.Sequence, dl: dl})
		pos = m.Sequence + 1
	}
	return out, pos, nil
}

// DeadLetters returns up to limit dead letters of group id from position
// from (0: the oldest), each with its event when still retained, and the
// position of the next page (0 when there is none).
func (g *Groups) DeadLetters(ctx context.Context, id string, from uint64, limit int) ([]*gatewayv1.DeadLetter, uint64, error) {
	if _, _, _, err := g.lookup(ctx, id); err != nil {
		return nil, 0, err
	}
	recs, next, err := g.readDead(ctx, id, from, limit)
	if err != nil {
		return nil, 0, err
	}
	out := make([]*gatewayv1.DeadLetter, 0, len(recs))
	for _, r := range recs {
		ev, err := g.st.Get(ctx, r.dl.GetSequence())
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, 0, err
		default:
			r.dl.Event = hub.WithoutBody(ev)
		}
		out = append(out, r.dl)
	}
	return out, next, nil
}

// Redrive gives the dead letters of group id for the given event sequences
// (all when empty) back to the group and removes them from the dead
// letters. It returns how many were given back.
func (g *Groups) Redrive(ctx context.Context, id string, seqs []uint64) (int, error) {
	if _, _, _, err := g.lookup(ctx, id); err != nil {
		return 0, err
	}
	n := 0
	var pos uint64
	for {
		recs, next, err := g.readDead(ctx, id, pos, 256)
		if err != nil {
			return n, err
		}
		for _, r := range recs {
			if len(seqs) > 0 && !slices.Contains(seqs, r.dl.GetSequence()) {
				continue
			}
			b, err := proto.Marshal(&gatewayv1.DeadLetter{Sequence: r.dl.GetSequence()})
			if err != nil {
				return n, err
			}
			// The message id makes a retried redrive of the same record
			// (say, after a failed delete) deliver it once.
			msgID := fmt.Sprintf("redrive:%d", r.pos)
			if _, err := g.js.Publish(ctx, redriveSubject(id), b, jetstream.WithMsgID(msgID)); err != nil {
				return n, store.Classify("redrive dead letter", err)
			}
			if err := g.stream.DeleteMsg(ctx, r.pos); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
				return n, store.Classify("remove redriven dead letter", err)
			}
			n++
		}
		if next == 0 {
			return n, nil
		}
		pos = next
	}
}

// memberCount counts the members of group id whose heartbeat is recent.
func (g *Groups) memberCount(ctx context.Context, id string) (int, error) {
	lister, err := g.members.ListKeysFiltered(ctx, id+".*")
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return 0, nil
		}
		return 0, store.Classify("count members", err)
	}
	n := 0
	for range lister.Keys() {
		n++
	}
	return n, nil
}
