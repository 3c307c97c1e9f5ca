package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// ErrConflict reports that a conditional append found another event on the
// job's subjects than the caller expected: someone appended in between, and
// the caller must look again before deciding.
var ErrConflict = errors.New("store: job changed concurrently")

// MaxJobEvents bounds JobEvents: a Kling job has a handful of states, so a
// job with more events than this is abuse, and its history is cut.
const MaxJobEvents = 256

// jobSubject is the wildcard subject matching every event of one job.
func jobSubject(webhookID, jobID string) string {
	return subjectPrefix + webhookID + "." + jobToken(jobID) + ".*"
}

// JobEvents returns the events of one job of one registration, oldest
// first (at most MaxJobEvents), and last, the sequence of the newest
// message on the job's subjects (0 when there is none).
//
// It walks the job's subjects with "next message for subject" gets, one
// round trip per event: a job has a handful of events, and this is far
// cheaper than creating a consumer. The server resolves each get from its
// per-subject index.
func (s *Store) JobEvents(ctx context.Context, webhookID, jobID string) (events []*gatewayv1.Event, last uint64, err error) {
	if !validToken(webhookID) {
		return nil, 0, fmt.Errorf("%w: webhook id %q is not a single subject token", ErrInvalidEvent, webhookID)
	}
	subj := jobSubject(webhookID, jobID)
	for next := uint64(1); len(events) < MaxJobEvents; {
		m, err := s.stream.GetMsg(ctx, next, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, 0, classify(fmt.Sprintf("read events of job %q", jobID), err)
		}
		last, next = m.Sequence, m.Sequence+1
		ev := s.decodeOrSkip(m.Data, m.Sequence)
		// A hashed job token could in theory be shared: keep only this job.
		if ev != nil && ev.GetWebhookId() == webhookID && ev.GetJob().GetJobId() == jobID {
			events = append(events, ev)
		}
	}
	return events, last, nil
}

// AppendAfter appends ev like Append, but only while the newest message on
// its job's subjects is still at sequence last (0: the job has none). It is
// JetStream's per-subject optimistic concurrency, so the check and the write
// are one step on the server, and two replicas cannot both pass it. A
// mismatch returns ErrConflict.
func (s *Store) AppendAfter(ctx context.Context, ev *gatewayv1.Event, last uint64) (seq uint64, duplicate bool, err error) {
	seq, duplicate, err = s.publish(ctx, ev, jetstream.WithExpectLastSequenceForSubject(last, jobSubject(ev.GetWebhookId(), ev.GetJob().GetJobId())))
	if isWrongLastSequence(err) {
		return 0, false, fmt.Errorf("%w: job %q moved past sequence %d", ErrConflict, ev.GetJob().GetJobId(), last)
	}
	if err != nil {
		return 0, false, classify(fmt.Sprintf("append event %q", ev.GetId()), err)
	}
	return seq, duplicate, nil
}
