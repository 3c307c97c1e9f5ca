package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// IDIndexStreamName is the stream that finds an event's sequence from its
// id, so GetByID does not need a wildcard lookup. An event's subject is
// "<webhook>.<job>.<id>" and GetEvent knows only the id: the server
// resolves "klingfan.events.*.*.<id>" by walking every job's subjects, in
// time that grows with the number of jobs and while holding the stream's
// lock against appends. Each index entry is an empty message
// on "klingfan.ids.<id>.<sequence>": the server answers which subjects
// match "klingfan.ids.<id>.*" from its in-memory subject tree without
// reading a message block, and the event is then a get by sequence.
const IDIndexStreamName = "KLINGFAN_EVENT_IDS"

// idIndexPrefix starts the index's subjects.
const idIndexPrefix = "klingfan.ids."

// indexID records that the event with id was stored at seq. It does not
// wait for the server's acknowledgement: a lost entry only makes that
// id's lookup take the slow path, and waiting would add a round trip to
// every append.
func (s *Store) indexID(id string, seq uint64) {
	if s.idIndex == nil {
		return
	}
	_ = s.nc.Publish(idIndexPrefix+id+"."+strconv.FormatUint(seq, 10), nil)
}

// getIndexed looks id up through the index. found=false means the index
// has no entry for it (an unknown id, an event older than the index, or a
// lost entry), and the caller falls back to the wildcard lookup.
func (s *Store) getIndexed(ctx context.Context, id string) (ev *gatewayv1.Event, found bool, err error) {
	if s.idIndex == nil {
		return nil, false, nil
	}
	info, err := s.idIndex.Info(ctx, jetstream.WithSubjectFilter(idIndexPrefix+id+".*"))
	if err != nil {
		return nil, false, classify(fmt.Sprintf("look up event id %q", id), err)
	}
	var seq uint64
	for subj := range info.State.Subjects {
		n, err := strconv.ParseUint(subj[strings.LastIndexByte(subj, '.')+1:], 10, 64)
		if err == nil {
			seq = max(seq, n)
		}
	}
	if seq == 0 {
		return nil, false, nil
	}
	m, err := s.stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		// The event expired or was discarded; an id has one subject, so
		// the wildcard lookup would not find it either.
		return nil, true, fmt.Errorf("store: get event %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, false, classify(fmt.Sprintf("get event %q", id), err)
	}
	if !strings.HasSuffix(m.Subject, "."+id) {
		return nil, false, nil // a stream recreated under the index: look it up
	}
	ev, err = decode(m.Data, m.Sequence)
	return ev, true, err
}
