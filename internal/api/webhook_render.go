package api

import (
	"net/url"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/registry"
)

// toProto renders a registration without its secrets.
func (s *WebhookService) toProto(w *registry.Webhook) *gatewayv1.Webhook {
	out := &gatewayv1.Webhook{
		Id:                 w.ID,
		DisplayName:        w.DisplayName,
		SignatureScheme:    w.Scheme,
		EventTypes:         slices.Clone(w.EventTypes),
		Active:             proto.Bool(w.Active),
		SignatureTolerance: durationpb.New(w.Tolerance),
		IngestUrl:          s.ingestURL(w.ID),
		CreateTime:         timestamppb.New(w.CreateTime),
		UpdateTime:         timestamppb.New(w.UpdateTime),
	}
	if exp := w.PreviousSecretExpireTime(s.now()); !exp.IsZero() {
		out.PreviousSecretExpireTime = timestamppb.New(exp)
	}
	return out
}

// ingestURL is where Kling posts for registration id; never with a token.
func (s *WebhookService) ingestURL(id string) string {
	return s.publicURL + "/webhooks/kling/" + url.PathEscape(id)
}

// callbackURL is the URL to give Kling: the ingest URL, plus the token for
// URL_TOKEN registrations.
func (s *WebhookService) callbackURL(w *registry.Webhook, secret string) string {
	u := s.ingestURL(w.ID)
	if w.Scheme == gatewayv1.SignatureScheme_SIGNATURE_SCHEME_URL_TOKEN {
		u += "?token=" + url.QueryEscape(secret)
	}
	return u
}
