package api

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/durationpb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/hub"
	"github.com/klingfan/klingfan/internal/ids"
	"github.com/klingfan/klingfan/internal/registry"
)

// Validation of WebhookService request fields. Each check names the field
// it rejects, so the client sees which one to fix.

// webhookIDPattern is the shape of a registration id. It cannot start with
// the registry's internal key prefix.
var webhookIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// urlTokenPattern keeps imported URL tokens to characters that survive a
// query string unescaped, so the callback URL pasted into Kling is exactly
// what the token says.
var urlTokenPattern = regexp.MustCompile(`^[A-Za-z0-9._~-]+$`)

func checkWebhookID(field, id string) error {
	switch {
	case id == "":
		return invalid(field, "required")
	case !webhookIDPattern.MatchString(id):
		return invalid(field, "must match [a-z0-9][a-z0-9-]{0,62}")
	}
	return nil
}

func checkScheme(field string, scheme gatewayv1.SignatureScheme) error {
	if scheme == gatewayv1.SignatureScheme_SIGNATURE_SCHEME_UNSPECIFIED {
		return invalid(field, "required: SIGNATURE_SCHEME_KLING_SIGNATURE, SIGNATURE_SCHEME_STANDARD_WEBHOOKS or SIGNATURE_SCHEME_URL_TOKEN")
	}
	if _, ok := gatewayv1.SignatureScheme_name[int32(scheme)]; !ok {
		return invalid(field, "unknown signature scheme "+strconv.Itoa(int(scheme)))
	}
	return nil
}

func checkDisplayName(field, name string) error {
	if n := utf8.RuneCountInString(name); n > maxDisplayNameRunes {
		return invalid(field, fmt.Sprintf("at most %d characters, got %d", maxDisplayNameRunes, n))
	}
	return nil
}

// checkEventTypes validates an event filter and returns it without
// duplicates, in the order given.
func checkEventTypes(field string, types []gatewayv1.EventType) ([]gatewayv1.EventType, error) {
	out, bad, ok := hub.UniqueEventTypes(types)
	if ok {
		return out, nil
	}
	f := fmt.Sprintf("%s[%d]", field, bad)
	if types[bad] == gatewayv1.EventType_EVENT_TYPE_UNSPECIFIED {
		return nil, invalid(f, "EVENT_TYPE_UNSPECIFIED cannot be filtered on")
	}
	return nil, invalid(f, "unknown event type "+strconv.Itoa(int(types[bad])))
}

// checkTolerance returns the signature tolerance: the default when unset,
// zero to disable the check. It must not exceed limit, the duplicate
// window: a delivery is only ever refused as stale or recognized as a
// duplicate, and a longer tolerance would leave a stretch where it is
// neither.
func checkTolerance(field string, d *durationpb.Duration, limit time.Duration) (time.Duration, error) {
	if d == nil {
		return registry.DefaultTolerance, nil
	}
	if err := d.CheckValid(); err != nil {
		return 0, invalid(field, "not a valid duration")
	}
	tol := d.AsDuration()
	switch {
	case tol < 0:
		return 0, invalid(field, "must not be negative (0s disables the timestamp check)")
	case tol > maxTolerance:
		return 0, invalid(field, "must be at most 24h")
	case limit > 0 && tol > limit:
		return 0, invalid(field, fmt.Sprintf("must be at most the duplicate window (--dedup-window %s)", limit))
	}
	return tol, nil
}

// checkSecret validates an imported secret for scheme. Its reasons never
// quote the secret.
func (s *WebhookService) checkSecret(field string, scheme gatewayv1.SignatureScheme, secret string) error {
	switch {
	case len(secret) > maxSecretBytes:
		return invalid(field, fmt.Sprintf("at most %d bytes", maxSecretBytes))
	case strings.TrimSpace(secret) != secret:
		return invalid(field, "has leading or trailing whitespace")
	case len(secret) < minSecretLength:
		// A short shared secret can be guessed from one captured delivery.
		return invalid(field, fmt.Sprintf("at least %d characters", minSecretLength))
	}
	if _, err := s.reg.Key(scheme, secret); err != nil {
		if scheme == gatewayv1.SignatureScheme_SIGNATURE_SCHEME_STANDARD_WEBHOOKS {
			return invalid(field, `not a Standard Webhooks secret: want "whsec_" followed by base64`)
		}
		return invalid(field, "not a usable secret")
	}
	if scheme == gatewayv1.SignatureScheme_SIGNATURE_SCHEME_URL_TOKEN {
		if len(secret) < minURLTokenLength {
			return invalid(field, fmt.Sprintf("a URL token needs at least %d characters", minURLTokenLength))
		}
		if !urlTokenPattern.MatchString(secret) {
			return invalid(field, "a URL token may use only letters, digits, '-', '_', '.' and '~'")
		}
	}
	return nil
}

// newWebhookID returns a fresh registration id, "wh-" and 10 random
// characters (50 bits).
func newWebhookID() string { return "wh-" + ids.Random(10) }
