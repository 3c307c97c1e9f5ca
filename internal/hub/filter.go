package hub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/errkind"
	"github.com/klingfan/klingfan/internal/eventexpr"
)

// MaxJobIDs bounds the job id filter so one request cannot make every
// publish expensive.
const MaxJobIDs = 1000

// MaxWebhookIDs bounds the webhook id filter.
const MaxWebhookIDs = 100

// ErrInvalidFilter wraps every reason NewFilter refuses a filter, beside an
// errkind.FieldError that names the filter's field at fault.
var ErrInvalidFilter = errors.New("hub: invalid filter")

// invalidFilter is the error for a filter whose field is wrong.
func invalidFilter(field, reason string) error {
	return fmt.Errorf("%w: %w", ErrInvalidFilter, errkind.Invalid(field, reason))
}

// Filter selects events: AND across fields, OR within one; an empty field
// matches everything. A Filter is immutable once built.
type Filter struct {
	types    []gatewayv1.EventType // small: a linear scan beats a map
	jobs     map[string]struct{}
	webhooks []string
	kinds    []gatewayv1.JobKind
	// expr, when set, is the CEL filter, compiled once for the stream and
	// evaluated last, after the cheap checks.
	expr expression
	// since, when set, drops events received before it.
	since time.Time
}

// expression is a compiled CEL filter (*eventexpr.Expr). Its cost has a
// bound, but it is far above that of the other checks, which is why only
// the stream's own goroutine evaluates it, and only so many at once (see
// Subscription.match).
type expression interface {
	Match(ev *gatewayv1.Event) bool
	// Decide is Match holding one of slots while it evaluates, sharing
	// the verdict with the streams that ask about the same event.
	Decide(ctx context.Context, ev *gatewayv1.Event, slots eventexpr.Slots) (bool, error)
}

// UniqueEventTypes returns types without duplicates, in the order given
// (nil when there are none), or false and the index of the first one that
// is UNSPECIFIED or not a known value: a filter cannot name those.
func UniqueEventTypes(types []gatewayv1.EventType) (out []gatewayv1.EventType, bad int, ok bool) {
	for i, t := range types {
		if _, known := gatewayv1.EventType_name[int32(t)]; !known || t == gatewayv1.EventType_EVENT_TYPE_UNSPECIFIED {
			return nil, i, false
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, 0, true
}

// NewFilter validates and builds a filter. Field names in errors are the
// proto field names.
func NewFilter(types []gatewayv1.EventType, jobIDs, webhookIDs []string) (*Filter, error) {
	f := &Filter{}
	var bad int
	var ok bool
	if f.types, bad, ok = UniqueEventTypes(types); !ok {
		return nil, invalidFilter("event_types", fmt.Sprintf("unknown event type %d", types[bad]))
	}
	if len(jobIDs) > MaxJobIDs {
		return nil, invalidFilter("job_ids", fmt.Sprintf("at most %d job ids, got %d", MaxJobIDs, len(jobIDs)))
	}
	if len(jobIDs) > 0 {
		f.jobs = make(map[string]struct{}, len(jobIDs))
		for _, j := range jobIDs {
			if j == "" || len(j) > 256 {
				return nil, invalidFilter("job_ids", "job ids must be 1 to 256 characters")
			}
			f.jobs[j] = struct{}{}
		}
	}
	if len(webhookIDs) > MaxWebhookIDs {
		return nil, invalidFilter("webhook_ids", fmt.Sprintf("at most %d webhook ids, got %d", MaxWebhookIDs, len(webhookIDs)))
	}
	for _, w := range webhookIDs {
		if w == "" || len(w) > 63 {
			return nil, invalidFilter("webhook_ids", "webhook ids must be 1 to 63 characters")
		}
		if !slices.Contains(f.webhooks, w) {
			f.webhooks = append(f.webhooks, w)
		}
	}
	return f, nil
}

// Selection is what every request that selects events carries:
// SubscribeRequest, ListEventsRequest and ConsumerGroup share these getters.
type Selection interface {
	GetEventTypes() []gatewayv1.EventType
	GetJobIds() []string
	GetWebhookIds() []string
	GetJobKinds() []gatewayv1.JobKind
	GetFilter() string
}

// FilterOf validates and builds the filter of a Selection, compiling its
// CEL expression once, so a stream, a page of ListEvents and a consumer
// group member select events (and refuse bad input) the same way.
func FilterOf(s Selection) (*Filter, error) {
	f, err := NewFilter(s.GetEventTypes(), s.GetJobIds(), s.GetWebhookIds())
	if err != nil {
		return nil, err
	}
	if f, err = f.WithJobKinds(s.GetJobKinds()); err != nil {
		return nil, err
	}
	if f, err = f.WithExpression(s.GetFilter()); err != nil {
		return nil, err
	}
	if f.selectsEverything() {
		// Filters are immutable, so every stream that selects everything
		// shares one instead of holding its own.
		return everything, nil
	}
	return f, nil
}

// everything is the filter of a selection that names nothing.
var everything = &Filter{}

// selectsEverything reports whether f has no condition.
func (f *Filter) selectsEverything() bool {
	return f.types == nil && f.jobs == nil && f.webhooks == nil && f.kinds == nil && f.expr == nil && f.since.IsZero()
}

// WithJobKinds returns a copy of f that also requires one of kinds (none:
// any kind). JOB_KIND_UNSPECIFIED is allowed: it selects the events whose
// kind the delivery did not tell.
func (f *Filter) WithJobKinds(kinds []gatewayv1.JobKind) (*Filter, error) {
	c := *f
	c.kinds = nil
	for _, k := range kinds {
		if _, known := gatewayv1.JobKind_name[int32(k)]; !known {
			return nil, invalidFilter("job_kinds", fmt.Sprintf("unknown job kind %d", k))
		}
		if !slices.Contains(c.kinds, k) {
			c.kinds = append(c.kinds, k)
		}
	}
	return &c, nil
}

// WithExpression returns a copy of f that also requires the CEL expression
// src (see package eventexpr) to be true; an empty src adds nothing. The
// expression is compiled here, once, so a stream pays only for evaluating
// it; a refusal says where in src the problem is.
func (f *Filter) WithExpression(src string) (*Filter, error) {
	c := *f
	c.expr = nil
	if src == "" {
		return &c, nil
	}
	e, err := eventexpr.Compile(src)
	if err != nil {
		return nil, invalidFilter("filter", err.Error())
	}
	c.expr = e
	return &c, nil
}

// Since returns a copy of f that also drops events received before t.
func (f *Filter) Since(t time.Time) *Filter {
	c := *f
	c.since = t
	return &c
}

// Match reports whether ev passes the filter.
func (f *Filter) Match(ev *gatewayv1.Event) bool {
	return f.matchFields(ev) && (f.expr == nil || f.expr.Match(ev))
}

// matchFields is Match without the CEL expression: the checks cheap
// enough to run for every stream under Hub.mu.
func (f *Filter) matchFields(ev *gatewayv1.Event) bool {
	if len(f.types) > 0 && !slices.Contains(f.types, ev.GetType()) {
		return false
	}
	if f.jobs != nil {
		if _, ok := f.jobs[ev.GetJob().GetJobId()]; !ok {
			return false
		}
	}
	if len(f.webhooks) > 0 && !slices.Contains(f.webhooks, ev.GetWebhookId()) {
		return false
	}
	if len(f.kinds) > 0 && !slices.Contains(f.kinds, ev.GetJob().GetKind()) {
		return false
	}
	if !f.since.IsZero() && ev.GetReceivedAt().AsTime().Before(f.since) {
		return false
	}
	return true
}

// WebhookIDs returns the webhook ids the filter accepts (nil for all), for
// pushing the filter down to the log.
func (f *Filter) WebhookIDs() []string { return f.webhooks }

// JobIDs returns the job ids the filter accepts (nil for all), for pushing
// the filter down to the log.
func (f *Filter) JobIDs() []string {
	if f.jobs == nil {
		return nil
	}
	out := make([]string, 0, len(f.jobs))
	for j := range f.jobs {
		out = append(out, j)
	}
	slices.Sort(out)
	return out
}
