package ingest

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

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
	current := w.Secrets[0].Value
	key, err := registry.Key(w.Scheme, current)
	if err != nil {
		return Delivery{}, fmt.Errorf("ingest: webhook %q: %w", w.ID, err)
	}
	now := h.now()
	jobID := "test-" + ids.Random(12)
	d := Delivery{WebhookID: w.ID, Header: http.Header{"Content-Type": {"application/json"}}, Test: true}
	switch w.Scheme {
	case gatewayv1.SignatureScheme_SIGNATURE_SCHEME_KLING_SIGNATURE:
		d.Body, err = normalize.Sample(gatewayv1.SourceFormat_SOURCE_FORMAT_KLING_EVENT, typ, jobID, now)
		if err == nil {
			d.Header.Set(verify.HeaderKlingSignature, verify.SignKling(key, d.Body))
		}
	case gatewayv1.SignatureScheme_SIGNATURE_SCHEME_STANDARD_WEBHOOKS:
		d.Body, err = normalize.Sample(gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_V2, typ, jobID, now)
		if err == nil {
			msgID := "msg_test_" + ids.Random(20)
			d.Header.Set(verify.HeaderWebhookID, msgID)
			d.Header.Set(verify.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
			d.Header.Set(verify.HeaderWebhookSignature, verify.SignStandard(key, msgID, now, d.Body))
		}
	case gatewayv1.SignatureScheme_SIGNATURE_SCHEME_URL_TOKEN:
		d.Body, err = normalize.Sample(gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_V2, typ, jobID, now)
		d.Token = current
	default:
		return Delivery{}, fmt.Errorf("ingest: webhook %q has unknown scheme %v", w.ID, w.Scheme)
	}
	if err != nil {
		return Delivery{}, fmt.Errorf("ingest: test payload: %w", err)
	}
	return d, nil
}
