// Package outcome makes a job's terminal status reach the log once,
// whichever path brought it first: a callback, a repeated callback or the
// reconciler's query of Kling's API.
//
// Guard wraps the log's append. An event that does not end its job is
// appended as before. An event that does (succeeded, failed, cancelled) is
// appended only if the job's history holds no terminal event yet, and the
// append is conditional on the job's subjects being unchanged since that
// history was read (JetStream's expected-last-subject-sequence on the job's
// wildcard subject), so two replicas or a callback racing the reconciler
// cannot both pass. A terminal event that arrives after another is
// answered as a duplicate of the first (ingest then answers 200) and
// recorded, raw body included, in a separate audit stream that nothing fans
// out: it is kept for audit, not delivered as a second completion.
package outcome

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/jobstate"
	"github.com/klingfan/klingfan/internal/store"
)

// Names of the audit stream of late outcomes.
const (
	LateStreamName = store.LateOutcomesStreamName
	lateSubject    = store.LateOutcomesSubjectPrefix
)

// maxConflicts bounds the retries when the job changes under a conditional
// append; each retry re-reads a history of a few events.
const maxConflicts = 8

// Log is what Guard needs from the event log. *store.Store implements it.
type Log interface {
	Append(ctx context.Context, ev *gatewayv1.Event) (seq uint64, duplicate bool, err error)
	AppendAfter(ctx context.Context, ev *gatewayv1.Event, last uint64) (seq uint64, duplicate bool, err error)
	JobEvents(ctx context.Context, webhookID, jobID string) (events []*gatewayv1.Event, last uint64, err error)
	Stored(ctx context.Context, ev *gatewayv1.Event) (seq uint64, found bool, err error)
}

// Guard is an append path that logs each job's terminal status once.
type Guard struct {
	log  Log
	js   jetstream.JetStream
	late prometheus.Counter
}

// Config configures New.
type Config struct {
	Log Log
	// Store, when set, receives late outcomes in LateStreamName, which New
	// ensures as store.Assets configures it; without it they are counted
	// but not recorded.
	Store *store.Store
	// Registerer receives klingfan_late_outcomes_total; none when nil.
	Registerer prometheus.Registerer
}

// New returns a Guard, ensuring the audit stream when there is a store.
func New(ctx context.Context, c Config) (*Guard, error) {
	g := &Guard{log: c.Log, late: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "klingfan_late_outcomes_total",
		Help: "Terminal statuses that arrived after the job's terminal status was logged; recorded for audit, not fanned out.",
	})}
	if c.Registerer != nil {
		if err := c.Registerer.Register(g.late); err != nil {
			return nil, fmt.Errorf("outcome: register metrics: %w", err)
		}
	}
	if c.Store != nil {
		if _, err := c.Store.EnsureStream(ctx, LateStreamName); err != nil {
			return nil, fmt.Errorf("outcome: %w", err)
		}
		g.js = c.Store.JetStream()
	}
	return g, nil
}

// Append logs ev, unless it is a terminal status of a job whose terminal
// status is already logged: then it reports duplicate with the sequence of
// the logged outcome, and records ev for audit.
func (g *Guard) Append(ctx context.Context, ev *gatewayv1.Event) (uint64, bool, error) {
	if !Guarded(ev) {
		return g.log.Append(ctx, ev)
	}
	for range maxConflicts {
		events, last, err := g.log.JobEvents(ctx, ev.GetWebhookId(), ev.GetJob().GetJobId())
		if err != nil {
			return 0, false, err
		}
		if prior := FirstTerminal(events); prior != nil {
			if prior.GetDeliveryId() != ev.GetDeliveryId() {
				g.recordLate(ctx, ev, prior.GetSequence())
			}
			return prior.GetSequence(), true, nil
		}
		seq, dup, err := g.log.AppendAfter(ctx, ev, last)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		return seq, dup, err
	}
	return 0, false, fmt.Errorf("outcome: job %q kept changing: %w", ev.GetJob().GetJobId(), store.ErrUnavailable)
}

// Stored finds an event already logged with ev's id; the Guard adds
// nothing to the log's own lookup.
func (g *Guard) Stored(ctx context.Context, ev *gatewayv1.Event) (uint64, bool, error) {
	return g.log.Stored(ctx, ev)
}

// Guarded reports whether ev goes through the once-per-job check: a
// terminal status of a Kling task (a task callback, legacy or new shape, or
// a task query answer), which is what the reconciler can recover and so
// what can arrive by two paths. Signed JSON events (X-Kling-Signature) keep
// the one-event-per-accepted-delivery contract they always had, though
// their terminal events do count as the job's outcome for the check. Test
// deliveries are never guarded.
func Guarded(ev *gatewayv1.Event) bool {
	if !jobstate.Terminal(ev.GetJob().GetStatus()) || ev.GetJob().GetJobId() == "" || ev.GetTest() {
		return false
	}
	switch ev.GetSourceFormat() {
	case gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_LEGACY, gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_V2,
		gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_QUERY, gatewayv1.SourceFormat_SOURCE_FORMAT_CREATE_ANSWER:
		return true
	}
	return false
}

// FirstTerminal returns the first non-test terminal event of a job's
// history, or nil.
func FirstTerminal(events []*gatewayv1.Event) *gatewayv1.Event {
	for _, e := range events {
		if jobstate.Terminal(e.GetJob().GetStatus()) && !e.GetTest() {
			return e
		}
	}
	return nil
}

// recordLate keeps a superseded outcome for audit. It is best effort: the
// sender is answered 200 either way, because the job's outcome is logged.
func (g *Guard) recordLate(ctx context.Context, ev *gatewayv1.Event, outcomeSeq uint64) {
	g.late.Inc()
	if g.js == nil {
		return
	}
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(ev)
	if err != nil {
		return
	}
	msg := &nats.Msg{Subject: lateSubject + ev.GetWebhookId() + "." + strings.ReplaceAll(ev.GetId(), ".", "_"), Data: data, Header: nats.Header{}}
	msg.Header.Set("Klingfan-Outcome-Sequence", fmt.Sprint(outcomeSeq))
	_, _ = g.js.PublishMsg(ctx, msg, jetstream.WithMsgID(ev.GetWebhookId()+":"+ev.GetDeliveryId()))
}
