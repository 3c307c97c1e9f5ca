package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"slices"
	"strings"
)

// pageTokens makes page tokens opaque and tamper-evident: the position and
// a fingerprint of the request that produced it, authenticated with a key
// that every replica shares, so a client can neither forge a position nor
// reuse a token with different filters.
type pageTokens struct {
	key []byte
}

// page is what a token carries.
type page struct {
	next        uint64 // where the next page starts (inclusive)
	fingerprint uint64 // of the request's filters and order
}

const pageTokenVersion = 1

var errBadPageToken = errors.New("page_token is invalid, expired or from a different request")

func (p pageTokens) encode(pg page) string {
	var b [17]byte
	b[0] = pageTokenVersion
	binary.BigEndian.PutUint64(b[1:], pg.next)
	binary.BigEndian.PutUint64(b[9:], pg.fingerprint)
	mac := hmac.New(sha256.New, p.key)
	mac.Write(b[:])
	return base64.RawURLEncoding.EncodeToString(append(b[:], mac.Sum(nil)[:16]...))
}

func (p pageTokens) decode(token string, fingerprint uint64) (page, error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) != 33 || raw[0] != pageTokenVersion {
		return page{}, errBadPageToken
	}
	mac := hmac.New(sha256.New, p.key)
	mac.Write(raw[:17])
	if !hmac.Equal(mac.Sum(nil)[:16], raw[17:]) {
		return page{}, errBadPageToken
	}
	pg := page{next: binary.BigEndian.Uint64(raw[1:]), fingerprint: binary.BigEndian.Uint64(raw[9:])}
	if pg.fingerprint != fingerprint {
		return page{}, errBadPageToken
	}
	return pg, nil
}

// fingerprint hashes the parts of a list request that must not change
// between pages. Order within a repeated field does not matter.
func fingerprint(parts ...[]string) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		p = slices.Clone(p)
		slices.Sort(p)
		h.Write([]byte(strings.Join(p, "\x1f")))
		h.Write([]byte{0x1e})
	}
	return h.Sum64()
}

// pageTokenStringVersion marks tokens whose position is a string (an id)
// rather than a sequence, so that one kind is never taken for the other.
const pageTokenStringVersion = 2

// maxStringPageToken bounds what decodeString looks at: cursors are ids of
// at most 63 characters.
const maxStringPageToken = 256

// encodeString returns a token that resumes after the string cursor after,
// for the request with the given fingerprint.
func (p pageTokens) encodeString(after string, fingerprint uint64) string {
	b := make([]byte, 9, 9+len(after)+16)
	b[0] = pageTokenStringVersion
	binary.BigEndian.PutUint64(b[1:], fingerprint)
	b = append(b, after...)
	mac := hmac.New(sha256.New, p.key)
	mac.Write(b)
	return base64.RawURLEncoding.EncodeToString(mac.Sum(b)[:len(b)+16])
}

// decodeString returns the cursor of a token made by encodeString for a
// request with the same fingerprint.
func (p pageTokens) decodeString(token string, fingerprint uint64) (string, error) {
	if len(token) > maxStringPageToken {
		return "", errBadPageToken
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) < 9+16 || raw[0] != pageTokenStringVersion {
		return "", errBadPageToken
	}
	body, sum := raw[:len(raw)-16], raw[len(raw)-16:]
	mac := hmac.New(sha256.New, p.key)
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil)[:16], sum) {
		return "", errBadPageToken
	}
	if binary.BigEndian.Uint64(body[1:]) != fingerprint {
		return "", errBadPageToken
	}
	return string(body[9:]), nil
}
