package submit

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/url"
	"slices"
	"strconv"

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

// maxExactInteger is the largest magnitude up to which every integer is a
// float64 of its own (2^53-1). The create body travels in a
// google.protobuf.Struct, whose numbers are float64, so an integer beyond
// it may already be another number than the caller wrote: REST's JSON
// 9007199254740993 arrives as 9007199254740992.
const maxExactInteger = 1<<53 - 1

// checkNumbers refuses, naming its path, a number of the body that may not
// be the one the caller wrote (beyond ±maxExactInteger), or that JSON
// cannot carry (NaN and the infinities, which Struct.AsMap would turn into
// strings): passed on, Kling would act on another value than the caller's
// without either of them knowing. Numbers within the range (fractions
// included) are exactly what the caller sent, and pass.
func checkNumbers(path string, v *structpb.Value) error {
	switch k := v.GetKind().(type) {
	case *structpb.Value_NumberValue:
		n := k.NumberValue
		switch {
		case math.IsNaN(n) || math.IsInf(n, 0):
			return errkind.Invalid(path, "not a JSON number")
		case math.Abs(n) > maxExactInteger:
			return errkind.Invalid(path, fmt.Sprintf(
				"%s is beyond ±%d: the body travels as a google.protobuf.Struct, whose numbers are float64, so it may not be the number sent (JSON's 9007199254740993 arrives as 9007199254740992), and Kling would get it rounded",
				strconv.FormatFloat(n, 'f', -1, 64), maxExactInteger))
		}
	case *structpb.Value_StructValue:
		fields := k.StructValue.GetFields()
		for _, name := range slices.Sorted(maps.Keys(fields)) {
			if err := checkNumbers(path+"."+name, fields[name]); err != nil {
				return err
			}
		}
	case *structpb.Value_ListValue:
		for i, e := range k.ListValue.GetValues() {
			if err := checkNumbers(path+"["+strconv.Itoa(i)+"]", e); err != nil {
				return err
			}
		}
	}
	return nil
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
