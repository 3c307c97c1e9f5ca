package registry

import (
	"slices"
	"time"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// Webhook is one registration as stored. Values handed out by the Registry
// are snapshots: callers must not modify them, and Update gives its callback
// a private copy.
type Webhook struct {
	ID          string                    `json:"id"`
	DisplayName string                    `json:"display_name,omitempty"`
	Scheme      gatewayv1.SignatureScheme `json:"scheme"`
	EventTypes  []gatewayv1.EventType     `json:"event_types,omitempty"`
	Active      bool                      `json:"active"`
	Tolerance   time.Duration             `json:"tolerance"`
	// Secrets holds the current secret first, then previous ones that are
	// still inside their rotation grace period.
	Secrets    []Secret  `json:"secrets"`
	CreateTime time.Time `json:"create_time"`
	UpdateTime time.Time `json:"update_time"`

	// keys caches the verification keys decoded from Secrets.
	keys [][]byte
	// revision is the KV revision this snapshot was read at.
	revision uint64
}

// Secret is one verification secret of a registration.
type Secret struct {
	// Value is the secret in plain text. With a Sealer it is empty in the
	// bucket and Sealed holds it encrypted.
	Value  string `json:"value,omitempty"`
	Sealed string `json:"sealed,omitempty"`
	// ExpireTime is when the secret stops verifying; zero means never.
	ExpireTime time.Time `json:"expire_time,omitzero"`
}

// Valid reports whether the secret still verifies at now.
func (s Secret) Valid(now time.Time) bool { return s.ExpireTime.IsZero() || now.Before(s.ExpireTime) }

// Keys returns the verification keys that are valid at now, current first.
func (w *Webhook) Keys(now time.Time) [][]byte {
	out := make([][]byte, 0, len(w.Secrets))
	for i, s := range w.Secrets {
		if s.Valid(now) && i < len(w.keys) && w.keys[i] != nil {
			out = append(out, w.keys[i])
		}
	}
	return out
}

// Accepts reports whether the registration's event filter lets t through.
func (w *Webhook) Accepts(t gatewayv1.EventType) bool {
	return len(w.EventTypes) == 0 || slices.Contains(w.EventTypes, t)
}

// PreviousSecretExpireTime returns when the last still-valid previous secret
// stops verifying, or zero when only the current secret is valid.
func (w *Webhook) PreviousSecretExpireTime(now time.Time) time.Time {
	var latest time.Time
	for _, s := range w.Secrets[min(1, len(w.Secrets)):] {
		if s.Valid(now) && s.ExpireTime.After(latest) {
			latest = s.ExpireTime
		}
	}
	return latest
}

// clone returns a deep copy that Update callbacks may change freely.
func (w *Webhook) clone() *Webhook {
	c := *w
	c.EventTypes = slices.Clone(w.EventTypes)
	c.Secrets = slices.Clone(w.Secrets)
	c.keys = nil
	return &c
}

// decodeKeys derives the verification key of every secret, in the scheme's
// own format.
func (w *Webhook) decodeKeys(schemes Schemes) error {
	w.keys = make([][]byte, len(w.Secrets))
	for i, s := range w.Secrets {
		k, err := schemes.DecodeKey(w.Scheme, s.Value)
		if err != nil {
			return err
		}
		w.keys[i] = k
	}
	return nil
}

// Schemes is what the registry needs from the signature schemes: the key a
// secret stands for, and a fresh secret in a scheme's own format. The
// scheme table in verify (verify.SchemeTable) provides it; it is injected
// so that the registry, and the API above it, do not link the verifiers.
type Schemes interface {
	// DecodeKey turns a secret into the bytes the scheme verifies with; an
	// error never quotes the secret.
	DecodeKey(scheme gatewayv1.SignatureScheme, secret string) ([]byte, error)
	// NewSecret generates a secret in the scheme's own format.
	NewSecret(scheme gatewayv1.SignatureScheme) string
}

// Key turns a secret into the bytes the scheme verifies with.
func (r *Registry) Key(scheme gatewayv1.SignatureScheme, secret string) ([]byte, error) {
	return r.schemes.DecodeKey(scheme, secret)
}

// NewSecret generates a secret in the scheme's own format.
func (r *Registry) NewSecret(scheme gatewayv1.SignatureScheme) string {
	return r.schemes.NewSecret(scheme)
}
