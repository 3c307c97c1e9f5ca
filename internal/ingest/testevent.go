package ingest

import (
	"context"
	"fmt"
	"net/http"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/ids"
	"github.com/klingfan/klingfan/internal/normalize"
	"github.com/klingfan/klingfan/internal/registry"
	"github.com/klingfan/klingfan/internal/verify"
)

// DeliverTest builds the delivery Kling would send for typ to the
// registration webhookID, signs it with its current secret in the wire
// format that goes with its scheme, and runs it through Deliver like any
// other. It serves SendTestEvent. A registration whose filter excludes typ
// is reported as registry.ErrFiltered, an unknown one as ErrUnknownWebhook,
// an inactive one as ErrInactive.
func (h *Handler) DeliverTest(ctx context.Context, webhookID string, typ gatewayv1.EventType) (*gatewayv1.Event, error) {
	w, ok := h.regs.Get(webhookID)
	if !ok {
		return nil, &Error{Kind: ErrUnknownWebhook, Outcome: OutcomeUnknown, Message: "unknown webhook"}
	}
	d, err := h.testDelivery(w, typ)
	if err != nil {
		return nil, err
	}
	res, err := h.Deliver(ctx, d)
	if err != nil {
		return nil, err
	}
	if res.Ignored {
		// The filter changed between the caller's check and the delivery.
		return nil, fmt.Errorf("ingest: test event %s: %w", typ, registry.ErrFiltered)
	}
	return res.Event, nil
}

// testDelivery builds the delivery Kling would send for typ to w, in the
// wire format that goes with w's scheme, authenticated with its current
// secret.
func (h *Handler) testDelivery(w *registry.Webhook, typ gatewayv1.EventType) (Delivery, error) {
	if len(w.Secrets) == 0 {
		return Delivery{}, fmt.Errorf("ingest: webhook %q has no secret", w.ID)
	}
	sch, ok := verify.Lookup(w.Scheme)
	if !ok {
		return Delivery{}, fmt.Errorf("ingest: webhook %q has unknown scheme %v", w.ID, w.Scheme)
	}
	key, err := sch.DecodeKey(w.Secrets[0].Value)
	if err != nil {
		return Delivery{}, fmt.Errorf("ingest: webhook %q: %w", w.ID, err)
	}
	// Kling's own events carry the KLING_EVENT shape; the callback schemes
	// carry task callbacks.
	format := gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_V2
	if w.Scheme == gatewayv1.SignatureScheme_SIGNATURE_SCHEME_KLING_SIGNATURE {
		format = gatewayv1.SourceFormat_SOURCE_FORMAT_KLING_EVENT
	}
	now := h.now()
	body, err := normalize.Sample(format, typ, "test-"+ids.Random(12), now)
	if err != nil {
		return Delivery{}, fmt.Errorf("ingest: test payload: %w", err)
	}
	m := verify.Message{Header: http.Header{"Content-Type": {"application/json"}}, Body: body}
	sch.Sign(&m, key, "msg_test_"+ids.Random(20), now)
	return Delivery{WebhookID: w.ID, Header: m.Header, Token: m.Token, Body: m.Body, Test: true}, nil
}
