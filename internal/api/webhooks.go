package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/auth"
	"github.com/klingfan/klingfan/internal/registry"
)

// Limits and defaults of WebhookService requests.
const (
	defaultWebhookPageSize = 50
	maxWebhookPageSize     = 1000
	maxDisplayNameRunes    = 200
	maxTolerance           = 24 * time.Hour
	defaultGracePeriod     = 24 * time.Hour
	maxGracePeriod         = 30 * 24 * time.Hour
	maxSecretBytes         = 1024
	minSecretLength        = 16
	minURLTokenLength      = 16
	// defaultTestEventType is what SendTestEvent simulates when the request
	// names no type.
	defaultTestEventType = gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED
)

// webhookListFingerprint binds ListWebhooks page tokens to that method: no
// request field besides the page size affects the listing.
var webhookListFingerprint = fingerprint([]string{"kling.gateway.v1.WebhookService/ListWebhooks"})

// WebhookService serves kling.gateway.v1.WebhookService over the registry.
// Secrets leave it only in CreateWebhook and RotateWebhookSecret responses:
// never in Webhook messages, errors or logs.
type WebhookService struct {
	gatewayv1.UnimplementedWebhookServiceServer

	reg       *registry.Registry
	tester    TestDeliverer
	log       *slog.Logger
	now       func() time.Time
	publicURL string
	pageKey   []byte
	dedup     time.Duration
}

// TestDeliverer signs a sample delivery of typ for a registration and runs
// it through ingest, returning the event as logged. *ingest.Handler is one;
// the interface keeps api from depending on ingest, normalize and verify.
type TestDeliverer interface {
	DeliverTest(ctx context.Context, webhookID string, typ gatewayv1.EventType) (*gatewayv1.Event, error)
}

// WebhookConfig is what WebhookService needs.
type WebhookConfig struct {
	Registry *registry.Registry
	// Tester runs SendTestEvent's delivery through the real ingest path.
	Tester TestDeliverer
	Logger *slog.Logger
	Now    func() time.Time
	// PublicURL is the base URL Kling reaches the HTTP listener at, without
	// a trailing slash.
	PublicURL string
	// PageKey authenticates ListWebhooks page tokens and must be the same on
	// every replica (store.SharedKey gives one).
	PageKey []byte
	// DedupWindow bounds signature tolerances (see checkTolerance); zero
	// leaves only the 24h bound.
	DedupWindow time.Duration
}

// NewWebhookService returns the service.
func NewWebhookService(cfg WebhookConfig) *WebhookService {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &WebhookService{
		reg:       cfg.Registry,
		tester:    cfg.Tester,
		log:       cfg.Logger,
		now:       cfg.Now,
		publicURL: strings.TrimRight(cfg.PublicURL, "/"),
		pageKey:   cfg.PageKey,
		dedup:     cfg.DedupWindow,
	}
}

// warnNoTolerance says loudly that a registration accepts any timestamp:
// a captured delivery stays valid for as long as the log keeps its event
// and can be logged again once the log has dropped it.
func (s *WebhookService) warnNoTolerance(w *registry.Webhook) {
	if w.Tolerance == 0 && w.Scheme == gatewayv1.SignatureScheme_SIGNATURE_SCHEME_STANDARD_WEBHOOKS {
		s.log.Warn("signature_tolerance 0s disables the timestamp check: captured deliveries can be replayed once their event leaves the log",
			"webhook", w.ID)
	}
}

// CreateWebhook registers a new ingest URL and returns its secret once.
func (s *WebhookService) CreateWebhook(ctx context.Context, req *gatewayv1.CreateWebhookRequest) (*gatewayv1.CreateWebhookResponse, error) {
	return s.createWebhook(ctx, req)
}

func (s *WebhookService) createWebhook(ctx context.Context, req *gatewayv1.CreateWebhookRequest) (*gatewayv1.CreateWebhookResponse, error) {
	in := req.GetWebhook()
	if in == nil {
		return nil, invalid("webhook", "required")
	}
	id := req.GetWebhookId()
	switch {
	case id != "" && in.GetId() != "" && id != in.GetId():
		return nil, invalid("webhook.id", "differs from webhook_id; set one of them")
	case id == "":
		id = in.GetId()
	}
	if id != "" {
		if err := checkWebhookID("webhook_id", id); err != nil {
			return nil, err
		}
	}
	scheme := in.GetSignatureScheme()
	if err := checkScheme("webhook.signature_scheme", scheme); err != nil {
		return nil, err
	}
	if err := checkDisplayName("webhook.display_name", in.GetDisplayName()); err != nil {
		return nil, err
	}
	types, err := checkEventTypes("webhook.event_types", in.GetEventTypes())
	if err != nil {
		return nil, err
	}
	tol, err := checkTolerance("webhook.signature_tolerance", in.GetSignatureTolerance(), s.dedup)
	if err != nil {
		return nil, err
	}
	secret, origin := req.GetSecret(), "imported"
	if secret != "" {
		if err := s.checkSecret("secret", scheme, secret); err != nil {
			return nil, err
		}
	} else {
		secret, origin = s.reg.NewSecret(scheme), "generated"
	}
	now := s.now()
	w := &registry.Webhook{
		DisplayName: in.GetDisplayName(),
		Scheme:      scheme,
		EventTypes:  types,
		Active:      in.Active == nil || in.GetActive(),
		Tolerance:   tol,
		Secrets:     []registry.Secret{{Value: secret}},
		CreateTime:  now,
		UpdateTime:  now,
	}
	generated := id == ""
	for attempt := 1; ; attempt++ {
		w.ID = id
		if generated {
			w.ID = newWebhookID()
		}
		created, err := s.reg.Create(ctx, w)
		if generated && attempt < 3 && errors.Is(err, registry.ErrAlreadyExists) {
			continue // an unlucky draw: try another id
		}
		if err != nil {
			return nil, err
		}
		s.log.InfoContext(ctx, "webhook created", "webhook", created.ID, "scheme", scheme.String(), "secret", origin, "token", auth.TokenName(ctx))
		s.warnNoTolerance(created)
		return &gatewayv1.CreateWebhookResponse{
			Webhook:     s.toProto(created),
			Secret:      secret,
			CallbackUrl: s.callbackURL(created, secret),
		}, nil
	}
}

// GetWebhook returns one registration.
func (s *WebhookService) GetWebhook(ctx context.Context, req *gatewayv1.GetWebhookRequest) (*gatewayv1.GetWebhookResponse, error) {
	return s.getWebhook(req)
}

func (s *WebhookService) getWebhook(req *gatewayv1.GetWebhookRequest) (*gatewayv1.GetWebhookResponse, error) {
	w, err := s.lookup("id", req.GetId())
	if err != nil {
		return nil, err
	}
	return &gatewayv1.GetWebhookResponse{Webhook: s.toProto(w)}, nil
}

// ListWebhooks pages through registrations in id order.
func (s *WebhookService) ListWebhooks(ctx context.Context, req *gatewayv1.ListWebhooksRequest) (*gatewayv1.ListWebhooksResponse, error) {
	return s.listWebhooks(ctx, req)
}

func (s *WebhookService) listWebhooks(ctx context.Context, req *gatewayv1.ListWebhooksRequest) (*gatewayv1.ListWebhooksResponse, error) {
	size := int(req.GetPageSize())
	switch {
	case size < 0:
		return nil, invalid("page_size", "must not be negative")
	case size == 0:
		size = defaultWebhookPageSize
	case size > maxWebhookPageSize:
		size = maxWebhookPageSize
	}
	tokens := pageTokens{key: s.pageKey}
	after := ""
	if tok := req.GetPageToken(); tok != "" {
		var err error
		if after, err = tokens.decodeString(tok, webhookListFingerprint); err != nil {
			return nil, invalid("page_token", err.Error())
		}
	}
	ws, more := s.reg.List(after, size)
	resp := &gatewayv1.ListWebhooksResponse{Webhooks: make([]*gatewayv1.Webhook, len(ws))}
	for i, w := range ws {
		resp.Webhooks[i] = s.toProto(w)
	}
	if more {
		resp.NextPageToken = tokens.encodeString(ws[len(ws)-1].ID, webhookListFingerprint)
	}
	return resp, nil
}

// UpdateWebhook changes the fields named in update_mask.
func (s *WebhookService) UpdateWebhook(ctx context.Context, req *gatewayv1.UpdateWebhookRequest) (*gatewayv1.UpdateWebhookResponse, error) {
	return s.updateWebhook(ctx, req)
}

// updatableFields are the Webhook fields UpdateWebhook may change.
const updatableFields = "display_name, event_types, active, signature_tolerance"

func (s *WebhookService) updateWebhook(ctx context.Context, req *gatewayv1.UpdateWebhookRequest) (*gatewayv1.UpdateWebhookResponse, error) {
	in := req.GetWebhook()
	if in == nil {
		return nil, invalid("webhook", "required")
	}
	id := in.GetId()
	if err := checkWebhookID("webhook.id", id); err != nil {
		return nil, err
	}
	paths := req.GetUpdateMask().GetPaths()
	if len(paths) == 0 {
		return nil, invalid("update_mask", "required: name the fields to change ("+updatableFields+")")
	}
	var (
		set   = map[protoreflect.Name]bool{}
		types []gatewayv1.EventType
		tol   time.Duration
		err   error
	)
	fields := in.ProtoReflect().Descriptor().Fields()
	for i, p := range paths {
		field := fmt.Sprintf("update_mask.paths[%d]", i)
		fd := fields.ByName(protoreflect.Name(p))
		if fd == nil {
			fd = fields.ByJSONName(p)
		}
		if fd == nil {
			return nil, invalid(field, fmt.Sprintf("unknown field %q; updatable: %s", p, updatableFields))
		}
		switch name := fd.Name(); name {
		case "display_name", "event_types", "active", "signature_tolerance":
			set[name] = true
		case "id", "signature_scheme":
			// Refused rather than ignored: a client that names a field
			// expects it to change, and a 200 that changed nothing but
			// update_time would say it did.
			return nil, invalid(field, fmt.Sprintf("%q is immutable; updatable: %s", p, updatableFields))
		default:
			return nil, invalid(field, fmt.Sprintf("%q is output only; updatable: %s", p, updatableFields))
		}
	}
	if set["display_name"] {
		if err := checkDisplayName("webhook.display_name", in.GetDisplayName()); err != nil {
			return nil, err
		}
	}
	if set["event_types"] {
		if types, err = checkEventTypes("webhook.event_types", in.GetEventTypes()); err != nil {
			return nil, err
		}
	}
	if set["active"] && in.Active == nil {
		return nil, invalid("webhook.active", "named in update_mask but not set: give true or false")
	}
	if set["signature_tolerance"] {
		// An unset tolerance in the mask resets it to the default.
		if tol, err = checkTolerance("webhook.signature_tolerance", in.GetSignatureTolerance(), s.dedup); err != nil {
			return nil, err
		}
	}
	now := s.now()
	updated, err := s.reg.Update(ctx, id, func(w *registry.Webhook) error {
		if set["display_name"] {
			w.DisplayName = in.GetDisplayName()
		}
		if set["event_types"] {
			w.EventTypes = slices.Clone(types)
		}
		if set["active"] {
			w.Active = in.GetActive()
		}
		if set["signature_tolerance"] {
			w.Tolerance = tol
		}
		w.UpdateTime = now
		return nil
	})
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, string(n))
	}
	slices.Sort(names)
	s.log.InfoContext(ctx, "webhook updated", "webhook", id, "fields", strings.Join(names, ","), "token", auth.TokenName(ctx))
	if set["signature_tolerance"] {
		s.warnNoTolerance(updated)
	}
	return &gatewayv1.UpdateWebhookResponse{Webhook: s.toProto(updated)}, nil
}

// DeleteWebhook removes a registration; later deliveries to it get 404.
func (s *WebhookService) DeleteWebhook(ctx context.Context, req *gatewayv1.DeleteWebhookRequest) (*gatewayv1.DeleteWebhookResponse, error) {
	return s.deleteWebhook(ctx, req)
}

func (s *WebhookService) deleteWebhook(ctx context.Context, req *gatewayv1.DeleteWebhookRequest) (*gatewayv1.DeleteWebhookResponse, error) {
	id := req.GetId()
	if err := checkWebhookID("id", id); err != nil {
		return nil, err
	}
	if err := s.reg.Delete(ctx, id); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "webhook deleted", "webhook", id, "token", auth.TokenName(ctx))
	return &gatewayv1.DeleteWebhookResponse{}, nil
}

// RotateWebhookSecret installs a new secret and keeps the previous ones
// valid for the grace period.
func (s *WebhookService) RotateWebhookSecret(ctx context.Context, req *gatewayv1.RotateWebhookSecretRequest) (*gatewayv1.RotateWebhookSecretResponse, error) {
	return s.rotateWebhookSecret(ctx, req)
}

func (s *WebhookService) rotateWebhookSecret(ctx context.Context, req *gatewayv1.RotateWebhookSecretRequest) (*gatewayv1.RotateWebhookSecretResponse, error) {
	id := req.GetId()
	if err := checkWebhookID("id", id); err != nil {
		return nil, err
	}
	grace := defaultGracePeriod
	if g := req.GetGracePeriod(); g != nil {
		if err := g.CheckValid(); err != nil {
			return nil, invalid("grace_period", "not a valid duration")
		}
		grace = g.AsDuration()
		switch {
		case grace < 0:
			return nil, invalid("grace_period", "must not be negative")
		case grace > maxGracePeriod:
			return nil, invalid("grace_period", "must be at most 720h (30 days)")
		}
	}
	imported := req.GetSecret()
	origin := "generated"
	if imported != "" {
		origin = "imported"
	}
	now := s.now()
	var secret string
	updated, err := s.reg.Update(ctx, id, func(w *registry.Webhook) error {
		// The scheme is only known here; fn may run again on a conflict,
		// and the secret of the run that is stored is the one returned.
		secret = imported
		if secret == "" {
			secret = s.reg.NewSecret(w.Scheme)
		} else if err := s.checkSecret("secret", w.Scheme, secret); err != nil {
			return err
		}
		registry.Rotate(w, secret, now, grace)
		w.UpdateTime = now
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "webhook secret rotated", "webhook", id, "secret", origin, "grace_period", grace.String(), "token", auth.TokenName(ctx))
	return &gatewayv1.RotateWebhookSecretResponse{
		Webhook:     s.toProto(updated),
		Secret:      secret,
		CallbackUrl: s.callbackURL(updated, secret),
	}, nil
}

// SendTestEvent signs a realistic delivery with the current secret and runs
// it through the real ingest path.
func (s *WebhookService) SendTestEvent(ctx context.Context, req *gatewayv1.SendTestEventRequest) (*gatewayv1.SendTestEventResponse, error) {
	return s.sendTestEvent(ctx, req)
}

func (s *WebhookService) sendTestEvent(ctx context.Context, req *gatewayv1.SendTestEventRequest) (*gatewayv1.SendTestEventResponse, error) {
	typ := req.GetEventType()
	if typ == gatewayv1.EventType_EVENT_TYPE_UNSPECIFIED {
		typ = defaultTestEventType
	}
	if _, ok := gatewayv1.EventType_name[int32(typ)]; !ok {
		return nil, invalid("event_type", "unknown event type "+strconv.Itoa(int(typ)))
	}
	w, err := s.lookup("id", req.GetId())
	if err != nil {
		return nil, err
	}
	if !w.Active {
		return nil, failedPrecondition("webhook is inactive: activate it to send test events")
	}
	if !w.Accepts(typ) {
		return nil, failedPrecondition(fmt.Sprintf("the webhook's event_types filter excludes %s", typ))
	}
	ev, err := s.tester.DeliverTest(ctx, w.ID, typ)
	if errors.Is(err, registry.ErrFiltered) {
		// The filter changed between the check above and the delivery.
		return nil, failedPrecondition(fmt.Sprintf("the webhook's event_types filter excludes %s", typ))
	}
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "test event sent", "webhook", w.ID, "type", typ.String(), "sequence", ev.GetSequence(), "token", auth.TokenName(ctx))
	return &gatewayv1.SendTestEventResponse{Event: ev}, nil
}

// lookup returns the registration with a valid id from memory.
func (s *WebhookService) lookup(field, id string) (*registry.Webhook, error) {
	if err := checkWebhookID(field, id); err != nil {
		return nil, err
	}
	w, ok := s.reg.Get(id)
	if !ok {
		return nil, fmt.Errorf("%w: %q", registry.ErrNotFound, id)
	}
	return w, nil
}
