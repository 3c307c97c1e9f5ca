package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// marshalOpts makes the stored bytes a pure function of the event, so a
// redelivery produces byte-identical payloads.
var marshalOpts = proto.MarshalOptions{Deterministic: true}

// Append durably stores ev and returns its stream sequence. It returns only
// after JetStream acknowledged the write, which is what lets ingest answer
// 2xx afterwards.
//
// The deduplication key is ev.WebhookId + ":" + ev.DeliveryId, sent as the
// Nats-Msg-Id header. A repeated delivery within the duplicate window is not
// stored again: Append reports duplicate=true and the original's sequence.
// The stored bytes never carry a sequence (the log position is the source of
// truth); ev itself is not modified.
//
// Connection-class failures (timeouts, no responders, closed connection)
// wrap ErrUnavailable; an event whose ids cannot form a subject wraps
// ErrInvalidEvent. ctx bounds the wait for the acknowledgement.
func (s *Store) Append(ctx context.Context, ev *gatewayv1.Event) (seq uint64, duplicate bool, err error) {
	// The subject ends in the event id, a pure function of the registration
	// and the delivery: an existing message on it is this event, stored
	// earlier than the duplicate window reaches.
	seq, duplicate, err = s.publish(ctx, ev, jetstream.WithExpectLastSequencePerSubject(0))
	if isWrongLastSequence(err) {
		seq, found, lerr := s.Stored(ctx, ev)
		if lerr != nil {
			return 0, false, lerr
		}
		if found {
			return seq, true, nil
		}
	}
	if err != nil {
		return 0, false, classify(fmt.Sprintf("append event %q", ev.GetId()), err)
	}
	return seq, duplicate, nil
}

// publish is the one write path of the log, for Append and AppendAfter:
// it validates and encodes ev, refuses what the log can never hold or the
// disk has no room for, publishes with the message id that deduplicates
// retries and the caller's expectation, and records whether the store has
// room. Errors other than the expectation's are returned unclassified.
func (s *Store) publish(ctx context.Context, ev *gatewayv1.Event, expect jetstream.PublishOpt) (uint64, bool, error) {
	if err := validateEvent(ev); err != nil {
		return 0, false, err
	}
	if ev.GetSequence() != 0 {
		ev = proto.CloneOf(ev)
		ev.Sequence = 0
	}
	data, err := marshalOpts.Marshal(ev)
	if err != nil {
		return 0, false, fmt.Errorf("store: encode event %q: %w", ev.GetId(), err)
	}
	// Headers (message id, expectations) travel in the same frame.
	if limit := s.nc.MaxPayload() - appendHeaderRoom; int64(len(data)) > limit {
		return 0, false, fmt.Errorf("%w: event %q encodes to %d bytes, the limit is %d", ErrEventTooLarge, ev.GetId(), len(data), limit)
	}
	if err := s.diskGate(); err != nil {
		return 0, false, fmt.Errorf("store: append event %q: %w", ev.GetId(), err)
	}
	msg := &nats.Msg{Subject: eventSubject(ev), Data: data}
	gen := s.space.gen.Load()
	op := s.watch.begin()
	ack, err := s.js.PublishMsg(ctx, msg,
		jetstream.WithMsgID(ev.GetWebhookId()+":"+ev.GetDeliveryId()),
		jetstream.WithExpectStream(StreamName),
		expect)
	s.watch.end(op, err)
	if isWrongLastSequence(err) {
		return 0, false, err
	}
	if err := s.noteAppend(ctx, gen, err); err != nil {
		return 0, false, err
	}
	if !ack.Duplicate {
		s.indexID(ev.GetId(), ack.Sequence)
	}
	// A duplicate's original may still await its fsync too.
	if err := s.synced(ctx, ev); err != nil {
		return 0, false, err
	}
	return ack.Sequence, ack.Duplicate, nil
}

// synced returns once ev, acknowledged by the log, is on disk: at once
// unless the embedded store syncs before acknowledging (Config.SyncAlways).
func (s *Store) synced(ctx context.Context, ev *gatewayv1.Event) error {
	if err := s.commit.wait(ctx); err != nil {
		return classify(fmt.Sprintf("sync event %q", ev.GetId()), err)
	}
	return nil
}

// appendHeaderRoom is what Append's headers may take of max_payload.
const appendHeaderRoom = 4 << 10

// isWrongLastSequence reports JetStream's refusal of a publish whose
// subject already holds a message.
func isWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// validateEvent rejects events whose ids cannot be part of a subject or a
// deduplication key, before anything reaches the log.
func validateEvent(ev *gatewayv1.Event) error {
	switch {
	case ev == nil:
		return fmt.Errorf("%w: nil event", ErrInvalidEvent)
	case !validToken(ev.GetWebhookId()):
		return fmt.Errorf("%w: webhook id %q is not a single subject token", ErrInvalidEvent, ev.GetWebhookId())
	case !validToken(ev.GetId()):
		return fmt.Errorf("%w: event id %q is not a single subject token", ErrInvalidEvent, ev.GetId())
	case ev.GetDeliveryId() == "":
		// An empty delivery id would make every event of the webhook a
		// duplicate of the first one.
		return fmt.Errorf("%w: event %q has no delivery id", ErrInvalidEvent, ev.GetId())
	}
	return nil
}

// Stored reports the sequence of an already stored event with ev's id,
// webhook and job, or found=false. It is a direct lookup of ev's exact
// subject in the server's per-subject index, so it costs the same however
// long the log is, and it sees the whole retention, not only the duplicate
// window: a delivery replayed a week later is still recognized, because
// event ids are a pure function of the registration and the delivery.
//
// A found event is returned only once it is on disk, as Append's events
// are: its own append may still await its fsync, and callers answer a
// repeated delivery 2xx on the strength of found.
func (s *Store) Stored(ctx context.Context, ev *gatewayv1.Event) (seq uint64, found bool, err error) {
	if err := validateEvent(ev); err != nil {
		return 0, false, err
	}
	m, err := s.stream.GetLastMsgForSubject(ctx, eventSubject(ev))
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return 0, false, nil
		}
		return 0, false, classify(fmt.Sprintf("look up event %q", ev.GetId()), err)
	}
	if err := s.synced(ctx, ev); err != nil {
		return 0, false, err
	}
	return m.Sequence, true, nil
}

// Get returns the event stored at seq, with Sequence filled in. It returns
// ErrNotFound when seq was never written, was deleted or has expired.
func (s *Store) Get(ctx context.Context, seq uint64) (*gatewayv1.Event, error) {
	if seq == 0 {
		return nil, fmt.Errorf("store: get event at sequence 0: %w", ErrNotFound)
	}
	m, err := s.stream.GetMsg(ctx, seq)
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, fmt.Errorf("store: get event at sequence %d: %w", seq, ErrNotFound)
		}
		return nil, classify(fmt.Sprintf("get event at sequence %d", seq), err)
	}
	return decode(m.Data, m.Sequence)
}

// GetByID returns the newest event with the given id. It finds the event's
// subject in the id index (IDIndexStreamName) and gets the event from it:
// two direct lookups whatever the number of jobs. Ids the index lacks
// (events stored before it existed, a lost entry, unknown ids) fall back
// to the last message on "klingfan.events.*.*.<id>", which nats-server
// resolves by walking every job's subjects while appends wait: those
// lookups are paced (lookupPacer), and one that does not get its turn
// fails with ErrLookupPaced.
func (s *Store) GetByID(ctx context.Context, id string) (*gatewayv1.Event, error) {
	if !validToken(id) {
		// Append refuses such ids, so no stored event can have it.
		return nil, fmt.Errorf("store: event id %q is not a single subject token: %w", id, ErrNotFound)
	}
	if ev, found, err := s.getIndexed(ctx, id); found || err != nil {
		return ev, err
	}
	var m *jetstream.RawStreamMsg
	err := s.lookups.run(ctx, func() error {
		var err error
		m, err = s.stream.GetLastMsgForSubject(ctx, idSubject(id))
		return err
	})
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, fmt.Errorf("store: get event %q: %w", id, ErrNotFound)
		}
		if errors.Is(err, ErrLookupPaced) {
			return nil, fmt.Errorf("store: get event %q: %w", id, err)
		}
		return nil, classify(fmt.Sprintf("get event %q", id), err)
	}
	return decode(m.Data, m.Sequence)
}

// Bounds returns the first and last sequence currently in the log. For an
// empty log first is last+1, so "first <= seq <= last" is empty as expected.
func (s *Store) Bounds(ctx context.Context) (first, last uint64, err error) {
	st, err := s.state(ctx)
	if err != nil {
		return 0, 0, err
	}
	return st.first, st.last, nil
}

// streamState is the part of the stream state the read paths need.
type streamState struct {
	first, last, msgs uint64
}

// state fetches the stream's current bounds, normalising an empty stream to
// first = last+1 (a never-written stream reports 0/0).
func (s *Store) state(ctx context.Context) (streamState, error) {
	info, err := s.stream.Info(ctx)
	if err != nil {
		return streamState{}, classify("stream info", err)
	}
	st := streamState{first: info.State.FirstSeq, last: info.State.LastSeq, msgs: info.State.Msgs}
	if st.msgs == 0 {
		st.first = st.last + 1
	}
	return st, nil
}

// msgGetRequest is the subset of the JetStream STREAM.MSG.GET request that
// SeqAt uses. The jetstream client package has no option for start_time, so
// SeqAt sends this request itself.
type msgGetRequest struct {
	StartTime time.Time `json:"start_time"`
	NextFor   string    `json:"next_by_subj"`
}

type msgGetResponse struct {
	Error   *jetstream.APIError `json:"error,omitempty"`
	Message *struct {
		Sequence uint64 `json:"seq"`
	} `json:"message,omitempty"`
}

// SeqAt returns the first sequence whose stored message time is at or after
// t, or last+1 when there is none. The server answers it with a binary search
// over its message blocks (a STREAM.MSG.GET with start_time, nats-server
// 2.11+), so the cost does not grow with the log. next_by_subj makes the
// server skip deleted sequences instead of failing on them.
func (s *Store) SeqAt(ctx context.Context, t time.Time) (uint64, error) {
	req, err := json.Marshal(msgGetRequest{StartTime: t.UTC(), NextFor: subjectPrefix + ">"})
	if err != nil {
		return 0, fmt.Errorf("store: encode message get request: %w", err)
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	reply, err := s.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+StreamName, req)
	if err != nil {
		return 0, classify(fmt.Sprintf("find sequence at %s", t.Format(time.RFC3339Nano)), err)
	}
	var resp msgGetResponse
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return 0, fmt.Errorf("store: decode message get response: %w", err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		_, last, err := s.Bounds(ctx)
		if err != nil {
			return 0, err
		}
		return last + 1, nil
	case resp.Error != nil:
		return 0, classify(fmt.Sprintf("find sequence at %s", t.Format(time.RFC3339Nano)), resp.Error)
	case resp.Message == nil:
		return 0, fmt.Errorf("store: find sequence at %s: empty response from JetStream", t.Format(time.RFC3339Nano))
	}
	return resp.Message.Sequence, nil
}

// withDefaultTimeout bounds ctx by requestTimeout unless it already has a
// deadline, so a lost reply cannot block a caller forever.
func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, requestTimeout)
}

// decode turns stored bytes back into an event and sets its Sequence, which
// is never part of the stored bytes.
func decode(data []byte, seq uint64) (*gatewayv1.Event, error) {
	ev := new(gatewayv1.Event)
	if err := proto.Unmarshal(data, ev); err != nil {
		return nil, fmt.Errorf("store: decode event at sequence %d: %w", seq, err)
	}
	ev.Sequence = seq
	return ev, nil
}
