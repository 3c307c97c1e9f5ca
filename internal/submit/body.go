package submit

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"

	"google.golang.org/protobuf/types/known/structpb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/errkind"
	"github.com/klingfan/klingfan/internal/registry"
)

// Field names Kling documents in create bodies: at the top level in the
// legacy API, under "options" in the newer one.
const (
	fieldCallbackURL = "callback_url"
	fieldExternalID  = "external_task_id"
	fieldOptions     = "options"
)

// callbackURL is where Kling posts the task's callbacks: the registration's
// ingest URL, with its token for a URL_TOKEN registration. A registration
// checked by X-Kling-Signature cannot take Kling's task callbacks, which
// never carry that header.
func callbackURL(publicURL string, w *registry.Webhook) (string, error) {
	u := publicURL + "/webhooks/kling/" + url.PathEscape(w.ID)
	switch w.Scheme {
	case gatewayv1.SignatureScheme_SIGNATURE_SCHEME_URL_TOKEN:
		if len(w.Secrets) == 0 || w.Secrets[0].Value == "" {
			return "", precondition(fmt.Sprintf("webhook %q has no token to put in the callback URL", w.ID))
		}
		return u + "?token=" + url.QueryEscape(w.Secrets[0].Value), nil
	case gatewayv1.SignatureScheme_SIGNATURE_SCHEME_STANDARD_WEBHOOKS:
		return u, nil
	}
	return "", precondition(fmt.Sprintf(
		"webhook %q verifies X-Kling-Signature, which Kling's task callbacks do not carry; create jobs on a URL_TOKEN registration, or a STANDARD_WEBHOOKS one holding the account's webhook secret", w.ID))
}

// prepared is a request ready to post.
type prepared struct {
	body       []byte
	externalID string
	// fingerprint identifies the request as the caller sent it, so a
	// request id used again for another request is recognised.
	fingerprint string
}

// prepare fills in the callback URL and the external task id and encodes
// the body. The caller's body is not modified.
func prepare(f family, webhookID string, body *structpb.Struct, requestID, callback string) (prepared, error) {
	in := body.AsMap()
	given, err := json.Marshal(in) // encoding/json sorts map keys: a stable fingerprint
	if err != nil {
		return prepared{}, errkind.Invalid("body", "not encodable as JSON: "+err.Error())
	}
	sum := sha256.Sum256(append([]byte(f.Create+"\x00"+webhookID+"\x00"), given...))

	out := maps.Clone(in)
	target := out
	field := "body."
	if f.options() {
		opts, ok := out[fieldOptions].(map[string]any)
		if !ok && out[fieldOptions] != nil {
			return prepared{}, errkind.Invalid("body.options", "must be an object")
		}
		opts = maps.Clone(opts)
		if opts == nil {
			opts = map[string]any{}
		}
		out[fieldOptions] = opts
		target, field = opts, "body.options."
	}
	if _, ok := target[fieldCallbackURL]; ok {
		return prepared{}, errkind.Invalid(field+fieldCallbackURL, "klingfan sets the callback URL (from --public-url and webhook_id); leave it out")
	}
	target[fieldCallbackURL] = callback
	external := requestID
	switch v := target[fieldExternalID].(type) {
	case nil:
		target[fieldExternalID] = requestID
	case string:
		if v != "" {
			external = v
		} else {
			target[fieldExternalID] = requestID
		}
	default:
		return prepared{}, errkind.Invalid(field+fieldExternalID, "must be a string")
	}
	data, err := json.Marshal(out)
	if err != nil {
		return prepared{}, errkind.Invalid("body", "not encodable as JSON: "+err.Error())
	}
	return prepared{body: data, externalID: external, fingerprint: base64.RawURLEncoding.EncodeToString(sum[:])}, nil
}
