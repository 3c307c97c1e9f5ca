package verify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// klingPrefix names the only algorithm the X-Kling-Signature header uses.
const klingPrefix = "sha256="

// klingHeaderLen is the exact length of a well-formed X-Kling-Signature
// value; anything else is rejected before any HMAC work is done.
const klingHeaderLen = len(klingPrefix) + 2*sha256.Size

// KlingSignature checks an X-Kling-Signature header value of the form
// "sha256=<hex HMAC-SHA256(secret, body)>" against the raw body.
//
// Each secret is used as raw HMAC key bytes, and verification succeeds if any
// of them matches, which allows secret rotation. The hex digest is decoded
// before comparison, so upper-case hex is accepted as well as the lower-case
// form [SignKling] produces. An empty header yields [ErrMissingSignature], a
// header that is not "sha256=" followed by exactly 64 hex digits yields
// [ErrMalformed], and a well-formed header that no secret produced yields
// [ErrBadSignature].
func KlingSignature(header string, body []byte, secrets [][]byte) error {
	if header == "" {
		return ErrMissingSignature
	}
	if len(header) != klingHeaderLen || header[:len(klingPrefix)] != klingPrefix {
		return ErrMalformed
	}
	var got [sha256.Size]byte
	if !decodeHex(got[:], header[len(klingPrefix):]) {
		return ErrMalformed
	}

	var sum [sha256.Size]byte
	matched := false
	for _, secret := range secrets {
		if len(secret) == 0 {
			continue
		}
		mac := hmac.New(sha256.New, secret)
		mac.Write(body)
		// Evaluate hmac.Equal first so that every secret is compared and
		// timing does not reveal which one matched.
		matched = hmac.Equal(mac.Sum(sum[:0]), got[:]) || matched
	}
	if !matched {
		return ErrBadSignature
	}
	return nil
}

// SignKling returns the X-Kling-Signature header value "sha256=<hex>" for
// body under secret. It exists for tests and for tooling that replays
// deliveries against a gateway.
func SignKling(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return klingPrefix + hex.EncodeToString(mac.Sum(nil))
}

// decodeHex decodes src, which must be exactly 2*len(dst) hex digits of
// either case, into dst. It works on the string directly so that checking a
// signature does not allocate a copy of the header. The header is attacker
// supplied and not secret, so data-dependent branching here leaks nothing.
func decodeHex(dst []byte, src string) bool {
	if len(src) != 2*len(dst) {
		return false
	}
	for i := range dst {
		hi, ok1 := fromHexChar(src[2*i])
		lo, ok2 := fromHexChar(src[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

// fromHexChar converts a hex digit of either case to its value.
func fromHexChar(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
