package verify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	// maxStandardHeaderLen bounds each Standard Webhooks header so that a
	// hostile sender cannot make the gateway hash or scan arbitrarily large
	// values before authentication.
	maxStandardHeaderLen = 8 << 10
	// maxStandardSignatures bounds how many signature entries are examined.
	// Senders list at most a handful (one per active key during rotation);
	// entries beyond this are ignored so the comparison work stays bounded.
	maxStandardSignatures = 16
	// standardVersion is the only signature version this package verifies;
	// other versions (for example asymmetric "v1a") are skipped.
	standardVersion = "v1"
	// standardSigB64Len is the padded base64 length of a SHA-256 MAC.
	standardSigB64Len = 44
)

// standardSigEncoding is strict so that each MAC has exactly one accepted
// textual form; every conforming sender emits canonical base64.
var standardSigEncoding = base64.StdEncoding.Strict()

// StandardWebhooks verifies a delivery signed with the Standard Webhooks
// scheme (https://www.standardwebhooks.com) and returns its webhook-id, which
// callers use as the deduplication key.
//
// The webhook-id, webhook-timestamp (Unix seconds, decimal digits only) and
// webhook-signature headers are all required. The signature header is a
// space-separated list of "<version>,<base64 MAC>" entries; only "v1" entries
// are checked, and only the first 16 entries are examined. The signed content
// is "{id}.{timestamp}.{body}", with the id and timestamp exactly as received,
// and each key is already-decoded key bytes (see [DecodeStandardSecret]).
//
// The checks run in this order:
//
//  1. an absent or empty header yields [ErrMissingSignature];
//  2. a header longer than 8 KiB, or a timestamp that is not decimal digits
//     fitting in an int64, yields [ErrMalformed], before any HMAC work;
//  3. if no v1 entry matches any key (including when there is no v1 entry),
//     [ErrBadSignature] is returned;
//  4. if tolerance > 0 and the timestamp differs from now by more than
//     tolerance in either direction, [ErrStale] is returned; a tolerance of
//     zero or less disables this check.
//
// The timestamp is judged only once the MAC has verified: the time of a
// forgery says nothing, and answering "stale" to one would tell a stranger
// that the registration it named exists and uses this scheme, where any
// other registration (or none) answers a bad signature.
//
// On any error the returned id is "".
func StandardWebhooks(h http.Header, body []byte, keys [][]byte, now time.Time, tolerance time.Duration) (id string, err error) {
	id = headerValue(h, HeaderWebhookID)
	ts := headerValue(h, HeaderWebhookTimestamp)
	sigHeader := headerValue(h, HeaderWebhookSignature)
	if id == "" || ts == "" || sigHeader == "" {
		return "", ErrMissingSignature
	}
	if len(id) > maxStandardHeaderLen || len(ts) > maxStandardHeaderLen || len(sigHeader) > maxStandardHeaderLen {
		return "", ErrMalformed
	}
	sec, ok := parseUnixSeconds(ts)
	if !ok {
		return "", ErrMalformed
	}

	var candidates [maxStandardSignatures][sha256.Size]byte
	n := 0
	entries := 0
	for entry := range strings.FieldsSeq(sigHeader) {
		if entries == maxStandardSignatures {
			break
		}
		entries++
		version, sig, found := strings.Cut(entry, ",")
		if !found || version != standardVersion || len(sig) != standardSigB64Len {
			continue
		}
		var buf [standardSigB64Len / 4 * 3]byte
		m, err := standardSigEncoding.Decode(buf[:], []byte(sig))
		if err != nil || m != sha256.Size {
			continue
		}
		copy(candidates[n][:], buf[:m])
		n++
	}
	if n == 0 {
		// No usable v1 entry: nothing can match, so skip the HMAC work.
		return "", ErrBadSignature
	}

	prefix := standardPrefix(id, ts)
	var sum [sha256.Size]byte
	matched := false
	for _, key := range keys {
		if len(key) == 0 {
			continue
		}
		mac := standardMAC(key, prefix, body, sum[:0])
		// Compare against every candidate and every key, evaluating
		// hmac.Equal first, so timing reveals neither which entry nor which
		// key matched.
		for i := range n {
			matched = hmac.Equal(mac, candidates[i][:]) || matched
		}
	}
	if !matched {
		return "", ErrBadSignature
	}
	if tolerance > 0 {
		// Time.Sub saturates instead of overflowing, so absurd timestamps
		// simply come out stale.
		d := now.Sub(time.Unix(sec, 0))
		if d > tolerance || d < -tolerance {
			return "", ErrStale
		}
	}
	return id, nil
}

// SignStandard returns the webhook-signature header value "v1,<base64>" for
// the given key, id, timestamp and body. The timestamp is rendered as whole
// Unix seconds, exactly as the webhook-timestamp header must carry it.
func SignStandard(key []byte, id string, ts time.Time, body []byte) string {
	prefix := standardPrefix(id, strconv.FormatInt(ts.Unix(), 10))
	return standardVersion + "," + base64.StdEncoding.EncodeToString(standardMAC(key, prefix, body, nil))
}

// standardPrefix builds "{id}.{timestamp}." once per delivery so that it is
// not re-converted for every key.
func standardPrefix(id, ts string) []byte {
	p := make([]byte, 0, len(id)+len(ts)+2)
	p = append(p, id...)
	p = append(p, '.')
	p = append(p, ts...)
	return append(p, '.')
}

// standardMAC appends HMAC-SHA256(key, prefix || body) to dst. Hashing the
// two parts in sequence avoids copying the body into a single buffer.
func standardMAC(key, prefix, body, dst []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write(prefix)
	mac.Write(body)
	return mac.Sum(dst)
}

// parseUnixSeconds accepts only non-empty decimal digits, because
// strconv.ParseInt alone would also accept a sign, and a signed timestamp is
// not valid in the scheme.
func parseUnixSeconds(s string) (int64, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, false
	}
	return sec, true
}

// headerValue returns the first value of the named header. It falls back to
// the exact, non-canonical key so that headers built by hand with the
// specification's lower-case names (as some tests and adapters do) are still
// found.
func headerValue(h http.Header, name string) string {
	if v := h.Get(name); v != "" {
		return v
	}
	if vs := h[name]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}
