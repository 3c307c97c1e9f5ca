// Package ingest is the HTTP side that Kling posts to. It authenticates a
// delivery on its raw bytes, normalizes it into an Event and appends it to
// the durable log, answering 2xx only once the log has acknowledged it.
package ingest

import (
	"context"
	"crypto/rand"
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
	// Stored finds an event already logged with ev's id, over the whole
	// retention. Append itself reports such an event as a duplicate.
	Stored(ctx context.Context, ev *gatewayv1.Event) (seq uint64, found bool, err error)
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
	// MaxEventAge, when positive, refuses a delivery in the seed format
	// whose signed timestamp is further than this from now, unless its
	// registration's tolerance is 0s (opted out).
	MaxEventAge time.Duration
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
	maxAge  time.Duration
	tracer  trace.Tracer
	// decoyKeys verify deliveries to unknown ids (see refuseUnknown): a
	// random key made at start and never handed out.
	decoyKeys [][]byte
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
		limits: newLimits(c.RateLimit, c.RateBurst), metrics: c.Metrics, maxAge: c.MaxEventAge,
		tracer: c.Tracer, decoyKeys: [][]byte{decoyKey()},
	}
}

func decoyKey() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k) // never fails (crypto/rand)
	return k
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
	if int64(len(d.Body)) > h.maxBody {
		return Result{}, tooLarge(h.maxBody)
	}
	// Until the signature verifies, the answer depends on the delivery
	// alone (see refusal), never on whether the id is registered, active,
	// or which scheme it uses: the ingest URL must not let a stranger
	// enumerate registrations.
	m := verify.Message{Header: d.Header, Token: d.Token, Body: d.Body}
	_, span := h.startSpan(ctx, spanVerify)
	w, ok := h.regs.Get(d.WebhookID)
	if !ok {
		err := h.refuseUnknown(m)
		endSpan(span, err)
		return Result{}, err
	}
	deliveryID, err := h.authenticate(w, m)
	endSpan(span, err)
	switch {
	case err != nil && !w.Active:
		// Answered exactly like an unknown id: only the holder of the
		// secret may learn that the registration exists but is paused.
		return Result{}, &Error{Kind: ErrUnknownWebhook, Outcome: OutcomeBadSignature, Message: refusal(m), Err: err}
	case err != nil:
		return Result{}, err
	case !w.Active:
		return Result{}, &Error{Kind: ErrInactive, Outcome: OutcomeInactive, Message: "webhook is inactive"}
	}
	// A verified delivery of a known shape is kept even when a field that
	// does not identify it cannot be read, or holds something unknown: with
	// its raw body and what could be read, rather than a 400 the sender will
	// not retry.
	_, span = h.startSpan(ctx, spanNormalize)
	norm, err := normalize.Normalize(d.Body)
	endSpan(span, nil) // a parse error is the outcome, recorded on the delivery span
	if err != nil {
		return Result{}, &Error{Kind: ErrMalformed, Outcome: OutcomeMalformed, Message: publicParseMessage(err), Err: err}
	}
	if norm.Incomplete != nil {
		h.log.WarnContext(ctx, "delivery normalized partially; the raw body keeps everything", "webhook", w.ID, "problem", norm.Incomplete.Error())
		h.metrics.partial.Inc()
	}
	ev := norm.Event
	if err := h.checkAge(w, ev); err != nil {
		return Result{}, err
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
	actx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	// Charged only after authentication: otherwise anyone who knows a
	// webhook id (and `default` is public) could drain its bucket with
	// forged requests and lock Kling out. And charged only for a delivery
	// that is new: a retry, or a captured delivery replayed however long
	// after, is acknowledged with the original's sequence without taking
	// a token genuine deliveries need, and is never logged again (Append
	// refuses an id already on its subject over the whole retention).
	if wait, ok := h.limits.check(w.ID, h.now()); !ok {
		if seq, found, err := h.app.Stored(actx, ev); err != nil {
			return Result{}, h.appendFailed(ctx, w.ID, err)
		} else if found {
			ev.Sequence = seq
			return Result{Event: ev, Duplicate: true}, nil
		}
		return Result{}, &Error{Kind: ErrRateLimited, Outcome: OutcomeRateLimited, Message: "rate limit exceeded, retry later", retryAfter: wait}
	}
	ev.RawBody = d.Body

	actx, span = h.startSpan(actx, spanAppend)
	seq, dup, err := h.app.Append(actx, ev)
	if errors.Is(err, store.ErrEventTooLarge) {
		// The normalized copy made a body within --max-body-bytes too big
		// for the log (invalid UTF-8 grows threefold as U+FFFD, say).
		// Keep it as a partial delivery keeps it: what identifies it and
		// the raw body, rather than a 503 retried forever.
		small, ierr := h.identified(w.ID, ev, d.Body)
		if ierr != nil {
			return Result{}, ierr
		}
		ev = small
		seq, dup, err = h.app.Append(actx, ev)
	}
	endSpan(span, err)
	if err != nil {
		return Result{}, h.appendFailed(ctx, w.ID, err)
	}
	if !dup {
		h.limits.charge(w.ID, h.now())
	}
	ev.Sequence = seq
	return Result{Event: ev, Duplicate: dup}, nil
}

// identified returns ev reduced to what identifies it, with its raw body.
func (h *Handler) identified(webhookID string, ev *gatewayv1.Event, body []byte) (*gatewayv1.Event, *Error) {
	small, err := normalize.Identify(body)
	if err != nil {
		return nil, &Error{Kind: ErrTooLarge, Outcome: OutcomeTooLarge, Message: "event too large for the log once normalized", Err: err}
	}
	small.WebhookId, small.DeliveryId, small.Id = ev.WebhookId, ev.DeliveryId, ev.Id
	small.ReceivedAt, small.Test, small.RawBody = ev.ReceivedAt, ev.Test, body
	h.log.Warn("delivery too large for the log once normalized; stored with its raw body and ids only", "webhook", webhookID, "bytes", len(body))
	h.metrics.partial.Inc()
	return small, nil
}

// appendFailed turns a failed log lookup or append into the delivery's
// answer: 400-class when retrying cannot help, 503 otherwise.
func (h *Handler) appendFailed(ctx context.Context, webhookID string, err error) *Error {
	if errors.Is(err, store.ErrEventTooLarge) {
		return tooLarge(h.maxBody)
	}
	if errors.Is(err, store.ErrInvalidEvent) {
		// Retrying cannot help: say so rather than invite retries with 503.
		return &Error{Kind: ErrMalformed, Outcome: OutcomeMalformed, Message: "event cannot be stored: " + err.Error(), Err: err}
	}
	// A full store logs its state changes itself: a line per refused
	// delivery would flood the log exactly when the disk is short.
	if ctx.Err() == nil && !errors.Is(err, store.ErrStoreFull) {
		h.log.Warn("log append failed", "webhook", webhookID, "error", err)
	}
	return &Error{Kind: ErrUnavailable, Outcome: OutcomeUnavailable, Message: "event log unavailable, retry later", Err: err}
}

// authenticate checks the delivery against the registration's valid
// secrets, on the raw bytes, and returns the sender's delivery id when the
// scheme has one.
func (h *Handler) authenticate(w *registry.Webhook, m verify.Message) (string, error) {
	now := h.now()
	keys := w.Keys(now)
	var (
		id  string
		err error
	)
	if sch, ok := verify.Lookup(w.Scheme); ok {
		id, err = sch.Verify(m, keys, now, w.Tolerance)
	} else {
		err = fmt.Errorf("ingest: registration %q has no usable scheme", w.ID)
	}
	switch {
	case err == nil:
		return id, nil
	case errors.Is(err, verify.ErrStale):
		// Only a signature that verified is judged on its time.
		return "", &Error{Kind: ErrUnauthorized, Outcome: OutcomeStale, Message: "timestamp outside tolerance", Err: err}
	default:
		return "", &Error{Kind: ErrUnauthorized, Outcome: OutcomeBadSignature, Message: refusal(m), Err: err}
	}
}

// refuseUnknown refuses a delivery to an id with no registration. It
// verifies the delivery all the same, with the scheme whose credential it
// carries and a key nobody holds, so that an unknown id costs about what a
// registered one does (the body's HMAC), and answers what a registration
// answers a delivery whose signature does not verify.
func (h *Handler) refuseUnknown(m verify.Message) *Error {
	if s, ok := verify.Presented(m); ok {
		_, _ = s.Verify(m, h.decoyKeys, h.now(), verify.DefaultTolerance)
	}
	return &Error{Kind: ErrUnknownWebhook, Outcome: OutcomeUnknown, Message: refusal(m)}
}

// refusal is the answer to a delivery whose signature did not verify:
// "missing signature" when it carries no credential of any scheme, else
// "invalid signature". It reads the delivery alone, so a registered id of
// any scheme, an inactive one and an unknown one answer alike.
func refusal(m verify.Message) string {
	if _, ok := verify.Presented(m); ok {
		return msgInvalidSignature
	}
	return msgMissingSignature
}

// checkAge refuses a seed-format event whose signed timestamp is further
// than maxAge from now. The X-Kling-Signature scheme signs no time of its
// own, so the body's timestamp is what bounds how long a captured delivery
// stays usable: with maxAge within the retention, a replay either finds
// its event still in the log (a duplicate) or is refused here.
func (h *Handler) checkAge(w *registry.Webhook, ev *gatewayv1.Event) *Error {
	if h.maxAge <= 0 || w.Tolerance == 0 || ev.GetSourceFormat() != gatewayv1.SourceFormat_SOURCE_FORMAT_KLING_EVENT || ev.GetOccurredAt() == nil {
		return nil
	}
	if d := h.now().Sub(ev.GetOccurredAt().AsTime()); d > h.maxAge || d < -h.maxAge {
		return &Error{Kind: ErrUnauthorized, Outcome: OutcomeStale, Message: "timestamp outside tolerance"}
	}
	return nil
}

// The answers to a delivery whose signature did not verify (see refusal).
const (
	msgInvalidSignature = "invalid signature"
	msgMissingSignature = "missing signature"
)

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
// after the duplicate window. [ids.EventID] owns the derivation.
func EventID(webhookID, deliveryID string) string { return ids.EventID(webhookID, deliveryID) }
