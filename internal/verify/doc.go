// Package verify authenticates inbound webhook callbacks before klingfan
// trusts a single byte of them.
//
// Three schemes are supported, because Kling deliveries reach the gateway in
// different ways depending on how a registration was configured:
//
//   - [KlingSignature]: a single "X-Kling-Signature: sha256=<hex>" header
//     carrying HMAC-SHA256 of the raw body.
//   - [StandardWebhooks]: the Standard Webhooks scheme
//     (https://www.standardwebhooks.com), which additionally binds a message
//     id and a timestamp into the MAC so that replays can be rejected and
//     deduplicated.
//   - [URLToken]: a shared bearer token carried in the ingest URL, for senders
//     that cannot sign at all.
//
// Every verifier operates on the raw request bytes exactly as received,
// before any parsing, because re-encoding a parsed body almost never
// reproduces the signed bytes and parsing untrusted input before
// authenticating it widens the attack surface.
//
// Every verifier accepts a list of secrets so that a registration can rotate
// its secret without downtime: the old and new secret are both configured
// until every sender has switched. Zero-length secrets are never accepted as
// matching, so a missing configuration value cannot turn into an empty HMAC
// key that anyone can compute.
//
// All comparisons of secret-derived material are constant time, and all
// secrets are tried even after one matches, so response timing reveals
// neither how much of a forged signature was right nor which secret matched.
// Errors are the package's sentinel values (or wrap [ErrInvalidSecret]) and
// never contain a secret, a token or a received signature, so they are safe
// to log and to map directly to HTTP responses.
package verify

import (
	"errors"
	"time"
)

// Sentinel errors returned by the verifiers. They carry no request data so
// that callers can log them freely. Callers map [ErrStale] to 401 "stale" and
// every other error to a plain 401.
var (
	// ErrMissingSignature reports that a required header, or the URL token,
	// was absent or empty.
	ErrMissingSignature = errors.New("verify: missing signature")
	// ErrBadSignature reports that the signature was well formed but no
	// configured secret produced it.
	ErrBadSignature = errors.New("verify: signature mismatch")
	// ErrMalformed reports a header that does not follow the scheme's syntax,
	// or that exceeds the size limits that bound verification work.
	ErrMalformed = errors.New("verify: malformed signature header")
	// ErrStale reports a Standard Webhooks timestamp outside the allowed
	// tolerance, which is how replayed deliveries are rejected.
	ErrStale = errors.New("verify: timestamp outside tolerance")
	// ErrInvalidSecret reports a configured secret that cannot be turned into
	// key bytes. Errors returned by [DecodeStandardSecret] wrap it.
	ErrInvalidSecret = errors.New("verify: invalid secret")
)

// Header names used by the supported schemes. The Standard Webhooks names are
// given in the lower-case form the specification uses; [net/http.Header]
// canonicalizes them on lookup.
const (
	HeaderKlingSignature   = "X-Kling-Signature"
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
)

// DefaultTolerance is the Standard Webhooks default timestamp tolerance. It is
// wide enough to absorb ordinary clock skew and delivery latency, and narrow
// enough that a captured delivery cannot be replayed for long.
const DefaultTolerance = 5 * time.Minute
