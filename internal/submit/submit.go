// Package submit creates Kling tasks on behalf of klingfan's callers
// (JobService.CreateJob), so that every job is known from its birth: its
// callback URL points at klingfan, its family is recorded, and the
// reconciler knows where to ask about it.
//
// A create is idempotent by request id, across replicas and restarts. A
// record keyed by the request id is written with compare-and-set before
// Kling is called (a claim with a deadline) and completed after; only the
// writer of the claim calls Kling. A second request with the same id waits
// for the claim to complete and answers the same job. A claim whose
// deadline passed (its owner crashed, or its call ended without an answer)
// is taken over with compare-and-set, and its new owner first looks the
// external task id up at Kling, so a task Kling created before the crash is
// recorded rather than created twice.
package submit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/errkind"
	"github.com/klingfan/klingfan/internal/ids"
	"github.com/klingfan/klingfan/internal/jobs"
	"github.com/klingfan/klingfan/internal/jobstate"
	"github.com/klingfan/klingfan/internal/klingapi"
	"github.com/klingfan/klingfan/internal/klingfamily"
	"github.com/klingfan/klingfan/internal/registry"
)

// Defaults of Config.
const (
	// defaultClaimTimeout outlasts the API client's 30s timeout with room
	// for the log append and the record write after it.
	defaultClaimTimeout = time.Minute
	// defaultFoldTimeout bounds how long an answer waits for the job
	// projection to fold the created event.
	defaultFoldTimeout = 10 * time.Second
	// maxAttempts bounds the rounds of one Submit that keep finding the
	// record changed by someone else.
	maxAttempts = 8
	// maxRequestID bounds a request id, which becomes Kling's
	// external_task_id.
	maxRequestID = 128
)

// API is the part of Kling's API a create uses; *klingapi.Client
// implements it.
type API interface {
	Create(ctx context.Context, f klingfamily.Family, body []byte) (klingapi.Task, error)
	// GetTask queries one task of a family by id, or by external task id
	// when external is set, as the family table says.
	GetTask(ctx context.Context, f klingfamily.Family, id string, external bool) (klingapi.Task, error)
}

// Appender is the guarded append path of the log (outcome.Guard).
type Appender interface {
	Append(ctx context.Context, ev *gatewayv1.Event) (seq uint64, duplicate bool, err error)
}

// Jobs is the job projection: the answer is the state GetJob returns.
type Jobs interface {
	Get(ctx context.Context, webhookID, jobID string) (*gatewayv1.JobState, error)
	WaitFolded(ctx context.Context, seq uint64) error
}

// Registrations finds the webhook registration whose URL Kling calls back.
type Registrations interface {
	Get(id string) (*registry.Webhook, bool)
}

// Config configures New.
type Config struct {
	// API is Kling's API signed with the account's credentials; nil when
	// none are configured, and every create then fails with
	// ErrNoCredentials.
	API API
	// Credential names the credentials in errors, never their secret.
	Credential string
	// KV is the create-record bucket (OpenBucket).
	KV       jetstream.KeyValue
	Append   Appender
	Jobs     Jobs
	Webhooks Registrations
	// TaskEvent normalizes a task as Kling's API returns it into an event,
	// like a callback of its shape.
	TaskEvent func(raw []byte) (*gatewayv1.Event, error)
	// PublicURL is --public-url as the operator set it, without a trailing
	// slash; empty when unset, and every create then fails with
	// ErrNoPublicURL.
	PublicURL string
	// Budget bounds what each token may create.
	Budget Budget
	// ClaimTimeout is how long a claim may stay in flight before another
	// attempt takes it over; 1m when zero.
	ClaimTimeout time.Duration
	// FoldTimeout bounds the wait for the projection; 10s when zero.
	FoldTimeout time.Duration
	// Registerer receives klingfan_job_creates_total; none when nil.
	Registerer prometheus.Registerer
	Now        func() time.Time
	Logger     *slog.Logger
}

// Submitter creates Kling tasks. It is safe for concurrent use.
type Submitter struct {
	cfg     Config
	kv      jetstream.KeyValue
	log     *slog.Logger
	now     func() time.Time
	creates *prometheus.CounterVec
}

// New returns a Submitter.
func New(cfg Config) *Submitter {
	if cfg.ClaimTimeout <= 0 {
		cfg.ClaimTimeout = defaultClaimTimeout
	}
	if cfg.FoldTimeout <= 0 {
		cfg.FoldTimeout = defaultFoldTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Submitter{cfg: cfg, kv: cfg.KV, log: cfg.Logger.With("component", "submit"), now: cfg.Now, creates: newCreates(cfg.Registerer)}
}

// Request is one create.
type Request struct {
	// Endpoint is Kling's create path, e.g. "/v1/videos/text2video".
	Endpoint string
	// Body is Kling's request body, passed through.
	Body *structpb.Struct
	// RequestID is the idempotency key; it becomes external_task_id unless
	// the body sets one.
	RequestID string
	// WebhookID is the registration Kling calls back; "default" when empty.
	WebhookID string
	// Token is the caller's token name, whose budget the create counts on.
	Token string
}

// Submit creates the task, or returns the job an earlier request with the
// same request id created.
func (s *Submitter) Submit(ctx context.Context, req Request) (*gatewayv1.JobState, error) {
	f, prep, err := s.check(&req)
	if err != nil {
		return nil, err
	}
	key := requestPrefix + keyToken(req.RequestID)
	for range maxAttempts {
		rec, rev, err := s.load(ctx, key)
		if err != nil {
			return nil, err
		}
		switch {
		case rec == nil:
			if err := s.reserve(ctx, req.Token, req.RequestID); err != nil {
				var be *BudgetError
				if errors.As(err, &be) {
					s.creates.WithLabelValues(outcomeBudget).Inc()
				}
				return nil, err
			}
			claim := &record{
				State: statePending, RequestID: req.RequestID, Fingerprint: prep.fingerprint,
				Endpoint: f.Create, WebhookID: req.WebhookID, ExternalID: prep.externalID, Token: req.Token,
				Deadline: s.now().Add(s.cfg.ClaimTimeout),
			}
			newRev, ok, err := s.store(ctx, key, claim, 0)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue // another replica claimed it first
			}
			return s.owned(ctx, key, newRev, claim, f, prep, false)
		case rec.Fingerprint != prep.fingerprint:
			return nil, ErrRequestReused
		case rec.State == stateCreated:
			s.creates.WithLabelValues(outcomeReplayed).Inc()
			return s.answer(ctx, rec.WebhookID, rec.TaskID, rec.Sequence, nil)
		case s.now().Before(rec.Deadline):
			if err := s.waitChange(ctx, key, rev, rec.Deadline); err != nil {
				return nil, err
			}
		default:
			// The claim's owner is gone, or its call ended without an
			// answer: take the claim over, then ask Kling before creating.
			claim := *rec
			claim.Deadline = s.now().Add(s.cfg.ClaimTimeout)
			newRev, ok, err := s.store(ctx, key, &claim, rev)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			s.log.Info("taking over an unfinished create", "request_id", req.RequestID, "external_id", claim.ExternalID)
			return s.owned(ctx, key, newRev, &claim, f, prep, true)
		}
	}
	return nil, fmt.Errorf("submit: the record of request %q kept changing: %w", req.RequestID, ErrUnavailable)
}

// check validates req, fills in its defaults and prepares the body.
func (s *Submitter) check(req *Request) (family, prepared, error) {
	if req.RequestID == "" {
		return family{}, prepared{}, errkind.Invalid("request_id", "required: the idempotency key of the create")
	}
	if len(req.RequestID) > maxRequestID || strings.IndexFunc(req.RequestID, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
		return family{}, prepared{}, errkind.Invalid("request_id", fmt.Sprintf("at most %d printable ASCII characters without spaces", maxRequestID))
	}
	if req.Endpoint == "" {
		return family{}, prepared{}, errkind.Invalid("endpoint", "required; known: "+strings.Join(klingfamily.Endpoints(), ", "))
	}
	f, err := familyOf(req.Endpoint)
	if err != nil {
		return family{}, prepared{}, err
	}
	if req.Body == nil {
		return family{}, prepared{}, errkind.Invalid("body", "required: Kling's request body for "+f.Create)
	}
	if err := checkNumbers("body", structpb.NewStructValue(req.Body)); err != nil {
		return family{}, prepared{}, err
	}
	if s.cfg.API == nil {
		return family{}, prepared{}, ErrNoCredentials
	}
	if s.cfg.PublicURL == "" {
		return family{}, prepared{}, ErrNoPublicURL
	}
	if req.WebhookID == "" {
		req.WebhookID = "default"
	}
	w, ok := s.cfg.Webhooks.Get(req.WebhookID)
	if !ok {
		return family{}, prepared{}, fmt.Errorf("submit: webhook %q: %w", req.WebhookID, registry.ErrNotFound)
	}
	if !w.Active {
		return family{}, prepared{}, fmt.Errorf("submit: webhook %q: %w", req.WebhookID, registry.ErrInactive)
	}
	cb, err := callbackURL(s.cfg.PublicURL, w)
	if err != nil {
		return family{}, prepared{}, err
	}
	prep, err := prepare(f, req.WebhookID, req.Body, req.RequestID, cb)
	return f, prep, err
}

// owned finishes a create whose claim this call holds at rev: it asks
// Kling for the task first when resolving a taken-over claim, creates it
// otherwise, and records it. The work runs detached from the caller's
// cancellation, bounded by the claim, so a task Kling accepts is recorded
// even when the caller goes away.
func (s *Submitter) owned(ctx context.Context, key string, rev uint64, claim *record, f family, prep prepared, resolve bool) (*gatewayv1.JobState, error) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ClaimTimeout*3/4)
	defer cancel()
	if resolve {
		task, found, err := s.lookup(wctx, f, claim.ExternalID)
		if err != nil {
			s.expire(wctx, key, rev, claim)
			s.creates.WithLabelValues(outcomeUnknown).Inc()
			return nil, s.klingError(err)
		}
		if found {
			s.creates.WithLabelValues(outcomeResolved).Inc()
			return s.complete(ctx, wctx, key, rev, claim, f, task)
		}
	}
	task, err := s.cfg.API.Create(wctx, f.Family, prep.body)
	if err != nil {
		if refused(err) {
			// Kling answered and created nothing: forget the request id,
			// so it can be sent again once the request is fixed.
			if rerr := s.remove(wctx, key, rev); rerr != nil {
				s.log.Warn("forgetting a refused create failed; its request id stays claimed until the claim expires", "request_id", claim.RequestID, "error", rerr)
			}
			s.release(wctx, claim.Token, claim.RequestID)
			s.creates.WithLabelValues(outcomeRefused).Inc()
			return nil, s.klingError(err)
		}
		// Whether Kling created the task is unknown: the next attempt
		// with this request id looks the external id up first.
		s.expire(wctx, key, rev, claim)
		s.creates.WithLabelValues(outcomeUnknown).Inc()
		return nil, s.klingError(err)
	}
	s.creates.WithLabelValues(outcomeCreated).Inc()
	return s.complete(ctx, wctx, key, rev, claim, f, task)
}

// complete logs the created task's event and marks the record created.
func (s *Submitter) complete(ctx, wctx context.Context, key string, rev uint64, claim *record, f family, task klingapi.Task) (*gatewayv1.JobState, error) {
	ev, err := s.event(task, claim, f)
	if err != nil {
		s.expire(wctx, key, rev, claim)
		return nil, err
	}
	seq, _, err := s.cfg.Append.Append(wctx, ev)
	if err != nil {
		// Kling holds the task but the log does not: the next attempt
		// finds the task by its external id and logs it then.
		s.expire(wctx, key, rev, claim)
		return nil, fmt.Errorf("submit: log created task %q: %w", task.ID, err)
	}
	done := *claim
	done.State, done.TaskID, done.Sequence, done.Deadline = stateCreated, task.ID, seq, time.Time{}
	if _, ok, err := s.store(wctx, key, &done, rev); err != nil || !ok {
		// The event is logged; a later attempt that finds the claim
		// expired looks the task up and logs the same event id again,
		// which the log recognises.
		s.log.Warn("completing a create record failed", "request_id", claim.RequestID, "task", task.ID, "error", err)
	}
	s.log.Info("created a Kling task", "task", task.ID, "endpoint", f.Create, "webhook_id", claim.WebhookID, "request_id", claim.RequestID, "sequence", seq)
	return s.answer(ctx, claim.WebhookID, task.ID, seq, ev)
}

// event builds the created event from Kling's answer: the task as
// submitted, normalized like a callback of its shape, with the family's
// create path. Its delivery id is a function of the task, so logging it
// twice (a crash between the append and the record) logs it once.
func (s *Submitter) event(task klingapi.Task, claim *record, f family) (*gatewayv1.Event, error) {
	ev, err := s.cfg.TaskEvent(task.Raw)
	if err != nil {
		return nil, fmt.Errorf("submit: Kling's answer for task %q: %w", task.ID, err)
	}
	deliveryID := "create:" + task.ID
	ev.WebhookId = claim.WebhookID
	ev.DeliveryId = deliveryID
	ev.Id = ids.EventID(claim.WebhookID, deliveryID)
	ev.SourceFormat = gatewayv1.SourceFormat_SOURCE_FORMAT_CREATE_ANSWER
	ev.ReceivedAt = timestamppb.New(s.now())
	if ev.OccurredAt == nil {
		ev.OccurredAt = ev.ReceivedAt
	}
	ev.RawBody = task.Raw
	if ev.Job == nil {
		ev.Job = &gatewayv1.Job{}
	}
	if ev.Job.JobId == "" {
		ev.Job.JobId = task.ID
	}
	if ev.Job.ExternalId == "" {
		ev.Job.ExternalId = claim.ExternalID
	}
	if ev.Job.Status == gatewayv1.JobStatus_JOB_STATUS_UNSPECIFIED && ev.Job.RawStatus == "" {
		// An answer without a status is a task just submitted.
		ev.Job.Status = gatewayv1.JobStatus_JOB_STATUS_SUBMITTED
		ev.Type = gatewayv1.EventType_EVENT_TYPE_VIDEO_CREATED
	}
	ev.Job.CreateEndpoint = f.Create
	return ev, nil
}

// answer returns the job's state as GetJob would, once the projection has
// folded the created event (sequence seq). When the projection is slow, it
// answers the state the event alone folds into, which is what the
// projection will hold once it catches up (ev nil: no fallback).
func (s *Submitter) answer(ctx context.Context, webhookID, taskID string, seq uint64, ev *gatewayv1.Event) (*gatewayv1.JobState, error) {
	wctx, cancel := context.WithTimeout(ctx, s.cfg.FoldTimeout)
	defer cancel()
	err := s.cfg.Jobs.WaitFolded(wctx, seq)
	if err == nil {
		var st *gatewayv1.JobState
		if st, err = s.cfg.Jobs.Get(ctx, webhookID, taskID); err == nil {
			return st, nil
		}
	}
	if ev != nil {
		ev.Sequence = seq
		st, _ := jobstate.Fold(nil, ev)
		return st, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return nil, fmt.Errorf("submit: job %q not folded yet: %w", taskID, jobs.ErrUnavailable)
	}
	return nil, err
}

// lookup asks Kling for the task created with an external id. A family
// Kling documents no such lookup for answers "not found": creating again
// is then the only way on, and Kling keeps external ids unique within an
// account, so it refuses a second task with the same one.
func (s *Submitter) lookup(ctx context.Context, f family, external string) (klingapi.Task, bool, error) {
	if !f.lookupByExternal() {
		return klingapi.Task{}, false, nil
	}
	t, err := s.cfg.API.GetTask(ctx, f.Family, external, true)
	if notFound(err) {
		return klingapi.Task{}, false, nil
	}
	if err != nil {
		return klingapi.Task{}, false, err
	}
	return t, t.ID != "", nil
}

// notFound reports Kling's "no such task" (code 1203, HTTP 404).
func notFound(err error) bool { return errors.Is(err, klingapi.ErrNotFound) }

// expire ends a claim now, so the next attempt with its request id
// resolves it by asking Kling instead of waiting out the deadline.
func (s *Submitter) expire(ctx context.Context, key string, rev uint64, claim *record) {
	c := *claim
	c.Deadline = s.now()
	if _, _, err := s.store(ctx, key, &c, rev); err != nil {
		s.log.Warn("expiring a create claim failed; it expires at its deadline", "request_id", claim.RequestID, "error", err)
	}
}

// waitChange waits until the record at key moves past rev, the deadline
// passes or ctx ends.
func (s *Submitter) waitChange(ctx context.Context, key string, rev uint64, deadline time.Time) error {
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	w, err := s.kv.Watch(wctx, key)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("submit: watch %s: %w", key, classify(err))
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-wctx.Done():
			return ctx.Err() // nil when only the deadline passed
		case e, ok := <-w.Updates():
			if !ok {
				return ctx.Err()
			}
			if e != nil && e.Revision() > rev {
				return nil
			}
		}
	}
}

// refused reports whether Kling answered a create with a refusal, so
// certainly created nothing: a code of its table that says what to fix
// (credentials, account, permissions, parameters, policy) or to come back
// later (rate and concurrency limits). A server error, no answer, or an
// answer in a shape the pages do not document leaves it unknown.
func refused(err error) bool {
	switch klingapi.Classify(err).Class {
	case klingapi.ClassAuth, klingapi.ClassAccount, klingapi.ClassPermission, klingapi.ClassInvalid,
		klingapi.ClassNotFound, klingapi.ClassPolicy, klingapi.ClassRateLimited:
		return true
	}
	return false
}

// klingError is a failed Kling call as CreateJob's caller is told it: an
// authentication refusal names the credentials, and a call that may have
// created the task says what retrying with the same request id does.
func (s *Submitter) klingError(err error) error {
	var ae *klingapi.APIError
	switch {
	case errors.Is(err, klingapi.ErrAuth):
		return &CredentialError{Credential: s.cfg.Credential, Err: err}
	case errors.Is(err, klingapi.ErrShape):
		return fmt.Errorf("%w: %w", errKlingShape, err)
	case errors.As(err, &ae):
		if errors.Is(ae, errkind.Unavailable) {
			return klingFailed{ae}
		}
		return err
	case errors.Is(err, klingapi.ErrUnavailable):
		return fmt.Errorf("%w: %w", errKlingUnreachable, err)
	}
	return err
}
