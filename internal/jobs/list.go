package jobs

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// Listing bounds.
const (
	// maxScan bounds the states one List call reads when the filters match
	// sparsely: the page then comes back short, with a cursor to continue.
	maxScan = 20000
	// fetchBatch is how many states one pull asks for.
	fetchBatch = 256
)

// Query selects and pages job states.
type Query struct {
	// Statuses, Kinds, WebhookIDs: OR within a field, AND across; empty matches all.
	Statuses   []gatewayv1.JobStatus
	Kinds      []gatewayv1.JobKind
	WebhookIDs []string
	// Created keeps only jobs created through klingfan (CreateJob), the
	// ones whose create path (job.create_endpoint) it knows.
	Created bool
	// UpdatedAfter, when not zero, keeps states with update_time at or after it.
	UpdatedAfter time.Time
	// UpdatedBefore, when not zero, keeps states with update_time before
	// it: the reconciler's stale-job query asks for jobs nothing has
	// changed for a while.
	UpdatedBefore time.Time
	// Limit is the page size (at least 1).
	Limit int
	// OldestFirst lists in update order; the default is newest first.
	OldestFirst bool
	// Cursor is where the page starts: a position List returned, or 0.
	Cursor uint64
}

// List returns a page of states and the cursor of the next page (0 when
// there is none). The bucket's stream keeps one message per job, in the
// order of the writes, so update order is stream order: List reads that
// stream forward or in windows backward, never the event log.
func (p *Projection) List(ctx context.Context, q Query) ([]*gatewayv1.JobState, uint64, error) {
	q.Limit = max(q.Limit, 1)
	info, err := p.stream.Info(ctx)
	if err != nil {
		return nil, 0, classify("bucket info", err)
	}
	first, last := info.State.FirstSeq, info.State.LastSeq
	if info.State.Msgs == 0 {
		return nil, 0, nil
	}
	filters := q.subjects()
	if filters == nil {
		return nil, 0, nil // no webhook id can be a key token
	}
	if q.OldestFirst {
		return p.listForward(ctx, q, filters, max(q.Cursor, first), last)
	}
	hi := last
	if q.Cursor != 0 {
		hi = min(q.Cursor, last)
	}
	return p.listBackward(ctx, q, filters, first, hi)
}

// subjects are the bucket subjects the webhook filter allows; nil when
// none can match.
func (q Query) subjects() []string {
	if len(q.WebhookIDs) == 0 {
		return []string{kvSubjectPrefix + "*.*"}
	}
	var out []string
	for _, w := range q.WebhookIDs {
		if validKeyToken(w) && !slices.Contains(out, kvSubjectPrefix+w+".*") {
			out = append(out, kvSubjectPrefix+w+".*")
		}
	}
	return out
}

// matches applies the filters JetStream cannot.
func (q Query) matches(st *gatewayv1.JobState) bool {
	if len(q.Statuses) > 0 && !slices.Contains(q.Statuses, st.GetJob().GetStatus()) {
		return false
	}
	if len(q.Kinds) > 0 && !slices.Contains(q.Kinds, st.GetJob().GetKind()) {
		return false
	}
	if q.Created && st.GetJob().GetCreateEndpoint() == "" {
		return false
	}
	if !q.UpdatedAfter.IsZero() && st.GetUpdateTime().AsTime().Before(q.UpdatedAfter) {
		return false
	}
	if !q.UpdatedBefore.IsZero() && !st.GetUpdateTime().AsTime().Before(q.UpdatedBefore) {
		return false
	}
	return true
}

func (p *Projection) listForward(ctx context.Context, q Query, filters []string, from, last uint64) ([]*gatewayv1.JobState, uint64, error) {
	if from > last {
		return nil, 0, nil
	}
	var out []*gatewayv1.JobState
	next := uint64(0)
	scanned := 0
	var since time.Time
	if q.Cursor == 0 {
		since = q.UpdatedAfter // states written before it were updated before it
	}
	err := p.scan(ctx, filters, from, last, since, func(seq uint64, _ time.Time, st *gatewayv1.JobState) bool {
		scanned++
		if q.matches(st) {
			out = append(out, st)
		}
		if len(out) == q.Limit || scanned == maxScan {
			if seq < last {
				next = seq + 1
			}
			return false
		}
		return true
	})
	if err != nil {
		return nil, 0, err
	}
	return out, next, nil
}

func (p *Projection) listBackward(ctx context.Context, q Query, filters []string, first, hi uint64) ([]*gatewayv1.JobState, uint64, error) {
	var out []*gatewayv1.JobState
	older := false // reached states written before UpdatedAfter
	next, err := p.cfg.Store.ScanBackward(ctx, p.stream, filters, first, hi, maxScan, q.Limit, func(seq uint64, written time.Time, data []byte) bool {
		if !q.UpdatedAfter.IsZero() && written.Before(q.UpdatedAfter) {
			// Every earlier state was written, so updated, before it.
			older = true
			return false
		}
		if len(data) == 0 {
			return true // a delete marker
		}
		st := new(gatewayv1.JobState)
		if err := proto.Unmarshal(data, st); err != nil {
			p.log.Warn("jobs: undecodable state skipped", "sequence", seq, "err", err)
			return true
		}
		if q.matches(st) {
			out = append(out, st)
		}
		return len(out) < q.Limit
	})
	if err != nil {
		return nil, 0, classify("list states", err)
	}
	if older {
		return out, 0, nil
	}
	return out, next, nil
}

// scan visits the states on filters with stream sequence in [from, to] in
// order, starting at the first written at or after since when that is set,
// until visit returns false.
func (p *Projection) scan(ctx context.Context, filters []string, from, to uint64, since time.Time,
	visit func(seq uint64, written time.Time, st *gatewayv1.JobState) bool) error {
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: filters,
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    from,
	}
	if !since.IsZero() {
		cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, 0, &since
	}
	cons, err := p.stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return classify("create list consumer", err)
	}
	defer func() {
		if info := cons.CachedInfo(); info != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), requestTimeout)
			_ = p.stream.DeleteConsumer(dctx, info.Name)
			cancel()
		}
	}()
	info := cons.CachedInfo()
	if info == nil || info.NumPending == 0 {
		return nil
	}
	pending := info.NumPending
	for pending > 0 {
		batch, err := cons.Fetch(int(min(pending, fetchBatch)), jetstream.FetchMaxWait(requestTimeout))
		if err != nil {
			return classify("list states", err)
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			md, err := msg.Metadata()
			if err != nil {
				return fmt.Errorf("jobs: list: message without metadata: %w", err)
			}
			pending = md.NumPending
			seq := md.Sequence.Stream
			if seq > to {
				return nil
			}
			if len(msg.Data()) == 0 {
				continue // a delete marker
			}
			st := new(gatewayv1.JobState)
			if err := proto.Unmarshal(msg.Data(), st); err != nil {
				p.log.Warn("jobs: undecodable state skipped", "sequence", seq, "err", err)
				continue
			}
			if !visit(seq, md.Timestamp, st) {
				return nil
			}
		}
		if err := batch.Error(); err != nil {
			return classify("list states", err)
		}
		if got == 0 {
			return nil // the rest expired while we read
		}
	}
	return nil
}
