// Package ingest is the HTTP side that Kling posts to. It authenticates a
// delivery on its raw bytes, normalizes it into an Event and appends it to
// the durable log, answering 2xx only once the log has acknowledged it.
package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/ids"
	"github.com/klingfan/klingfan/internal/normalize"
	"github.com/klingfan/klingfan/internal/registry"
	"github.com/klingfan/klingfan/internal/store"
	"github.com/klingfan/klingfan/internal/verify"
)

// Appender is the part of the log that ingest writes to.
type Appender interface {
	Append(ctx context.Context, ev *gatewayv1.Event) (seq uint64, duplicate bool, err error)
}

// Registrations is the part of the registry that ingest reads.
type Registrations interface {
	Get(id string) (*registry.Webhook, bool)
}

// Delivery is one callback as it arrived.
type Delivery struct {
	WebhookID string
	Header    http.Header
	// Token is the `token` query parameter of the ingest URL.
	Token string
	Body  []byte
	// Test marks deliveries made by SendTestEvent.
	Test bool
}

// Result is what became of an accepted delivery.
type Result struct {
	// Event is the event as logged (or as it would have been, when Ignored).
	Event *gatewayv1.Event
	// Duplicate is set when the log already held this delivery; Event.Sequence
	// is then the original's.
	Duplicate bool
	// Ignored is set when the registration's event filter excluded the event;
	// nothing was logged.
	Ignored bool
}

// Error is a rejected delivery: what kind of failure it is, the metrics
// outcome and a message safe to show the sender. The HTTP layer turns Kind
// into a status code (httpStatus); the gRPC layer matches Kind with
// errors.Is, so neither needs the other's numbers.
type Error struct {
	// Kind is one of the Err* sentinels below; errors.Is(e, Kind) holds.
	Kind    error
	Outcome string
	Message string
	Err     error
	// retryAfter, when set, is sent as Retry-After.
	retryAfter time.Duration
}

func (e *Error) Error() string { return "ingest: " + e.Message }
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is e's kind, so callers match a rejection with
// errors.Is(err, ingest.ErrUnauthorized) and the like.
func (e *Error) Is(target error) bool { return target == e.Kind }

// The kinds of rejected delivery. The ones a test delivery can meet are the
// registry's and the store's own sentinels, so that the gRPC layer, which
// already knows those, maps them without importing ingest.
var (
	ErrUnknownWebhook = registry.ErrNotFound
	ErrInactive       = registry.ErrInactive
	ErrUnavailable    = store.ErrUnavailable
	ErrUnauthorized   = errors.New("ingest: not authenticated")
	ErrMalformed      = errors.New("ingest: malformed delivery")
	ErrTooLarge       = errors.New("ingest: body too large")
	ErrMediaType      = errors.New("ingest: unsupported media type")
	ErrRateLimited    = errors.New("ingest: rate limited")
)

// Outcomes label the deliveries metric.
const (
	OutcomeAccepted     = "accepted"
	OutcomeDuplicate    = "duplicate"
	OutcomeIgnored      = "ignored"
	OutcomeBadSignature = "bad_signature"
	OutcomeStale        = "stale"
	OutcomeMalformed    = "malformed"
	OutcomeTooLarge     = "too_large"
	OutcomeUnavailable  = "unavailable"
	OutcomeUnknown      = "unknown_webhook"
	OutcomeInactive     = "inactive"
	OutcomeMediaType    = "unsupported_media_type"
	OutcomeRateLimited  = "rate_limited"
)

// Config configures a Handler.
type Config struct {
	Logger        *slog.Logger
	Registrations Registrations
	Events        Appender
	Now           func() time.Time
	MaxBodyBytes  int64
	// AppendTimeout bounds the wait for the log's acknowledgement before
	// answering 503; 5s when zero.
	AppendTimeout time.Duration
	// RequestTimeout bounds reading a delivery's body and writing the
	// answer, so a slow sender cannot hold a connection; 15s when zero.
	RequestTimeout time.Duration
	// RateLimit is the sustained deliveries per second each registration
	// accepts before answering 429; zero disables the limit. RateBurst is
	// how many may arrive at once.
	RateLimit float64
	RateBurst int
	Metrics   *Metrics
	// Tracer starts the delivery's spans; nil (tracing off) skips them.
	Tracer trace.Tracer
}

// Handler serves the ingest routes and runs deliveries for SendTestEvent.
type Handler struct {
	log     *slog.Logger
	regs    Registrations
	app     Appender
	now     func() time.Time
	maxBody int64
	timeout time.Duration
	reqTime time.Duration
	limits  *limits
	metrics *Metrics
	tracer  trace.Tracer
}

// New returns a Handler.
func New(c Config) *Handler {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.AppendTimeout == 0 {
		c.AppendTimeout = 5 * time.Second
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 15 * time.Second
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics(nil)
	}
	return &Handler{
		log: c.Logger, regs: c.Registrations, app: c.Events, now: c.Now,
		maxBody: c.MaxBodyBytes, timeout: c.AppendTimeout, reqTime: c.RequestTimeout,
		limits: newLimits(c.RateLimit, c.RateBurst), metrics: c.Metrics,
		tracer: c.Tracer,
	}
}

// Deliver verifies, normalizes and logs one delivery. Errors are *Error.
func (h *Handler) Deliver(ctx context.Context, d Delivery) (Result, error) {
	ctx, span := h.startSpan(ctx, spanDeliver)
	start := h.now()
	res, err := h.deliver(ctx, d)
	outcome := OutcomeAccepted
	var ie *Error
	switch {
	case errors.As(err, &ie):
		outcome = ie.Outcome
	case err != nil:
		outcome = OutcomeUnavailable
	case res.Duplicate:
		outcome = OutcomeDuplicate
	case res.Ignored:
		outcome = OutcomeIgnored
	}
	label := d.WebhookID
	if outcome == OutcomeUnknown {
		label = "unknown" // unregistered ids must not grow the label set
	}
	h.metrics.observe(label, outcome, res.Event, h.now().Sub(start), h.exemplar(ctx))
	endDeliverSpan(span, label, outcome, res.Event, err)
	return res, err
}

func (h *Handler) deliver(ctx context.Context, d Delivery) (Result, error) {
	w, ok := h.regs.Get(d.WebhookID)
	if !ok {
		return Result{}, &Error{Kind: ErrUnknownWebhook, Outcome: OutcomeUnknown, Message: "unknown webhook"}
	}
	if !w.Active {
		return Result{}, &Error{Kind: ErrInactive, Outcome: OutcomeInactive, Message: "webhook is inactive"}
	}
	if int64(len(d.Body)) > h.maxBody {
		return Result{}, tooLarge(h.maxBody)
	}
	_, span := h.startSpan(ctx, spanVerify)
	deliveryID, err := h.authenticate(w, d)
	endSpan(span, err)
	if err != nil {
		return Result{}, err
	}
	// Charged only after authentication: otherwise anyone who knows a
	// webhook id (and `default` is public) could drain its bucket with
	// forged requests and lock Kling out.
	if wait, ok := h.limits.allow(w.ID, h.now()); !ok {
		return Result{}, &Error{Kind: ErrRateLimited, Outcome: OutcomeRateLimited, Message: "rate limit exceeded, retry later", retryAfter: wait}
	}
	_, span = h.startSpan(ctx, spanNormalize)
	ev, err := normalize.Parse(d.Body)
	endSpan(span, nil) // a parse error is the outcome, recorded on the delivery span
	if err != nil {
		// A verified delivery of a known shape is kept even when a field
		// that does not identify it cannot be read: with its raw body and
		// what identifies it, rather than a 400 the sender will not retry.
		partial, ierr := normalize.Identify(d.Body)
		if ierr != nil {
			return Result{}, &Error{Kind: ErrMalformed, Outcome: OutcomeMalformed, Message: publicParseMessage(err), Err: err}
		}
		h.log.WarnContext(ctx, "delivery normalized partially; the raw body keeps everything", "webhook", w.ID, "problem", err.Error())
		h.metrics.partial.Inc()
		ev = partial
	}
	if deliveryID == "" {
		sum := sha256.Sum256(d.Body)
		deliveryID = "sha256:" + hex.EncodeToString(sum[:])
	}
	ev.WebhookId = w.ID
	ev.DeliveryId = deliveryID
	ev.Id = EventID(w.ID, deliveryID)
	ev.ReceivedAt = timestamppb.New(h.now())
	ev.Test = d.Test
	ev.Traceparent = h.traceparent(ctx, d.Header)
	if !w.Accepts(ev.Type) {
		return Result{Event: ev, Ignored: true}, nil
	}
	ev.RawBody = d.Body

	actx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	actx, span = h.startSpan(actx, spanAppend)
	seq, dup, err := h.app.Append(actx, ev)
	endSpan(span, err)
	if errors.Is(err, store.ErrInvalidEvent) {
		// Retrying cannot help: say so rather than invite retries with 503.
		return Result{}, &Error{Kind: ErrMalformed, Outcome: OutcomeMalformed, Message: "event cannot be stored: " + err.Error(), Err: err}
	}
	if err != nil {
		if ctx.Err() == nil {
			h.log.WarnContext(ctx, "log append failed", "webhook", w.ID, "error", err)
		}
		return Result{}, &Error{Kind: ErrUnavailable, Outcome: OutcomeUnavailable, Message: "event log unavailable, retry later", Err: err}
	}
	ev.Sequence = seq
	return Result{Event: ev, Duplicate: dup}, nil
}

// authenticate checks the delivery against the registration's valid
// secrets, on the raw bytes, and returns the sender's delivery id when the
// scheme has one.
func (h *Handler) authenticate(w *registry.Webhook, d Delivery) (string, error) {
	now := h.now()
	keys := w.Keys(now)
	var (
		id  string
		err error
	)
	if sch, ok := verify.Lookup(w.Scheme); ok {
		id, err = sch.Verify(verify.Message{Header: d.Header, Token: d.Token, Body: d.Body}, keys, now, w.Tolerance)
	} else {
		err = fmt.Errorf("ingest: registration %q has no usable scheme", w.ID)
	}
	switch {
	case err == nil:
		return id, nil
	case errors.Is(err, verify.ErrStale):
		return "", &Error{Kind: ErrUnauthorized, Outcome: OutcomeStale, Message: "timestamp outside tolerance", Err: err}
	case errors.Is(err, verify.ErrMissingSignature):
		return "", &Error{Kind: ErrUnauthorized, Outcome: OutcomeBadSignature, Message: "missing signature", Err: err}
	default:
		return "", &Error{Kind: ErrUnauthorized, Outcome: OutcomeBadSignature, Message: "invalid signature", Err: err}
	}
}

func tooLarge(limit int64) *Error {
	return &Error{Kind: ErrTooLarge, Outcome: OutcomeTooLarge, Message: fmt.Sprintf("body exceeds %d bytes", limit)}
}

// publicParseMessage keeps the parser's explanation (it names fields, never
// values) so a sender can fix its payload.
func publicParseMessage(err error) string {
	if errors.Is(err, normalize.ErrUnknownShape) {
		return "unrecognised payload: not a Kling event or task callback"
	}
	return err.Error()
}

// EventID derives an event's id from its registration and delivery id, so
// the same delivery always gets the same id, even when it arrives again
// after the duplicate window.
func EventID(webhookID, deliveryID string) string {
	h := sha256.New()
	h.Write([]byte(webhookID))
	h.Write([]byte{0})
	h.Write([]byte(deliveryID))
	return "evt_" + ids.Encoding.EncodeToString(h.Sum(nil)[:16])
}
