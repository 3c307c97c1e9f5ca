package verify

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// Message is what a scheme signs and verifies: the headers, the ingest
// URL's `token` query parameter and the raw body of one delivery.
type Message struct {
	Header http.Header
	Token  string
	Body   []byte
}

// Scheme is everything that differs between the signature schemes. It is
// the one place a SignatureScheme is switched on: ingest verifies, the
// test delivery and `klingctl post` sign, and the registry mints and
// decodes secrets through it.
type Scheme struct {
	// ID is the proto enum value the scheme answers to.
	ID gatewayv1.SignatureScheme
	// NewSecret returns a fresh secret in the scheme's own format.
	NewSecret func() string
	// DecodeKey turns a secret into the key bytes Sign and Verify use. An
	// empty or undecodable secret yields an error wrapping
	// [ErrInvalidSecret] that never includes the secret.
	DecodeKey func(secret string) ([]byte, error)
	// Sign authenticates m with key, as a sender would. id and now are the
	// message id and time the scheme puts in headers, where it has them.
	Sign func(m *Message, key []byte, id string, now time.Time)
	// Verify checks m against keys on the raw bytes and returns the
	// sender's message id when the scheme has one.
	Verify func(m Message, keys [][]byte, now time.Time, tolerance time.Duration) (id string, err error)
}

// rawKey is the key of the schemes whose secret string is itself the key.
func rawKey(secret string) ([]byte, error) {
	if secret == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalidSecret)
	}
	return []byte(secret), nil
}

var schemes = []*Scheme{
	{
		ID:        gatewayv1.SignatureScheme_SIGNATURE_SCHEME_KLING_SIGNATURE,
		NewSecret: NewKlingSecret,
		DecodeKey: rawKey,
		Sign: func(m *Message, key []byte, _ string, _ time.Time) {
			m.Header.Set(HeaderKlingSignature, SignKling(key, m.Body))
		},
		Verify: func(m Message, keys [][]byte, _ time.Time, _ time.Duration) (string, error) {
			return "", KlingSignature(m.Header.Get(HeaderKlingSignature), m.Body, keys)
		},
	},
	{
		ID:        gatewayv1.SignatureScheme_SIGNATURE_SCHEME_STANDARD_WEBHOOKS,
		NewSecret: NewStandardSecret,
		DecodeKey: func(secret string) ([]byte, error) {
			if secret == "" {
				return nil, fmt.Errorf("%w: empty", ErrInvalidSecret)
			}
			return DecodeStandardSecret(secret)
		},
		Sign: func(m *Message, key []byte, id string, now time.Time) {
			m.Header.Set(HeaderWebhookID, id)
			m.Header.Set(HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
			m.Header.Set(HeaderWebhookSignature, SignStandard(key, id, now, m.Body))
		},
		Verify: func(m Message, keys [][]byte, now time.Time, tolerance time.Duration) (string, error) {
			return StandardWebhooks(m.Header, m.Body, keys, now, tolerance)
		},
	},
	{
		ID:        gatewayv1.SignatureScheme_SIGNATURE_SCHEME_URL_TOKEN,
		NewSecret: NewURLToken,
		DecodeKey: rawKey,
		Sign: func(m *Message, key []byte, _ string, _ time.Time) {
			m.Token = string(key)
		},
		Verify: func(m Message, keys [][]byte, _ time.Time, _ time.Duration) (string, error) {
			return "", URLToken(m.Token, keys)
		},
	},
}

// SchemeTable is the scheme table as the webhook registry and the API use
// it: to decode a registration's keys and to mint its secrets. It is
// injected (see registry.Schemes) so that those packages do not import
// verify. An unknown scheme is treated as KLING_SIGNATURE, whose secret is
// its own key; a delivery to it is still refused where it is verified.
type SchemeTable struct{}

// DecodeKey turns secret into the key bytes scheme verifies with.
func (SchemeTable) DecodeKey(scheme gatewayv1.SignatureScheme, secret string) ([]byte, error) {
	return lookupOrKling(scheme).DecodeKey(secret)
}

// NewSecret returns a fresh secret in scheme's own format.
func (SchemeTable) NewSecret(scheme gatewayv1.SignatureScheme) string {
	return lookupOrKling(scheme).NewSecret()
}

func lookupOrKling(id gatewayv1.SignatureScheme) *Scheme {
	if s, ok := Lookup(id); ok {
		return s
	}
	s, _ := Lookup(gatewayv1.SignatureScheme_SIGNATURE_SCHEME_KLING_SIGNATURE)
	return s
}

// Presented returns the first scheme whose credential m carries (one whose
// Verify would not answer [ErrMissingSignature]), or false when m carries
// none. It reads m alone, never a registration, so a refusal built on it
// ("missing signature" or not) is the same whichever registration m named,
// or none. Asking each verifier with no keys keeps the verifiers the one
// definition of a missing credential, and costs no HMAC.
func Presented(m Message) (*Scheme, bool) {
	for _, s := range schemes {
		if _, err := s.Verify(m, nil, time.Time{}, 0); !errors.Is(err, ErrMissingSignature) {
			return s, true
		}
	}
	return nil, false
}

// Lookup returns the scheme for id, or false for UNSPECIFIED and unknown
// values.
func Lookup(id gatewayv1.SignatureScheme) (*Scheme, bool) {
	for _, s := range schemes {
		if s.ID == id {
			return s, true
		}
	}
	return nil, false
}
