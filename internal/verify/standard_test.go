package verify_test

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/klingfan/klingfan/internal/verify"
)

func TestStandardWebhooksGoldenExample(t *testing.T) {
	g := loadGolden(t)
	if string(g.Key) != "testsecrettestsecrettestsecret12" {
		t.Fatalf("decoded golden key = %q", g.Key)
	}
	if got := verify.SignStandard(g.Key, g.ID, g.Time, g.Body); got != g.Signature {
		t.Fatalf("SignStandard = %q, want published %q", got, g.Signature)
	}

	h := standardHeader(g.ID, g.Timestamp, g.Signature)
	id, err := verify.StandardWebhooks(h, g.Body, [][]byte{g.Key}, g.Time, verify.DefaultTolerance)
	if err != nil {
		t.Fatalf("published example: %v", err)
	}
	if id != g.ID {
		t.Fatalf("id = %q, want %q", id, g.ID)
	}

	for i := range g.Body {
		id, err := verify.StandardWebhooks(h, flipped(g.Body, i), [][]byte{g.Key}, g.Time, verify.DefaultTolerance)
		if !errors.Is(err, verify.ErrBadSignature) || id != "" {
			t.Fatalf("flipped byte %d: id=%q err=%v, want ErrBadSignature", i, id, err)
		}
	}
}

func TestStandardWebhooks(t *testing.T) {
	g := loadGolden(t)
	other := []byte("another-32-byte-key-for-rotation")
	good := g.Signature
	bad := verify.SignStandard(other, g.ID, g.Time, g.Body)
	goodB64 := strings.TrimPrefix(good, "v1,")
	keys := [][]byte{g.Key}

	// many builds n signature entries of which only the one at validAt is
	// valid.
	many := func(n, validAt int) string {
		entries := make([]string, n)
		for i := range entries {
			entries[i] = bad
		}
		entries[validAt] = good
		return strings.Join(entries, " ")
	}

	tests := []struct {
		name      string
		id        string
		ts        string
		sig       string
		body      []byte
		keys      [][]byte
		now       time.Time
		tolerance time.Duration // zero means DefaultTolerance
		noCheck   bool          // pass tolerance 0 to disable the check
		want      error
	}{
		{name: "valid", sig: good},
		{name: "wrong key", sig: good, keys: [][]byte{other}, want: verify.ErrBadSignature},
		{name: "rotation second key matches", sig: good, keys: [][]byte{other, g.Key}},
		{name: "no keys", sig: good, keys: [][]byte{}, want: verify.ErrBadSignature},
		{name: "empty key never matches", sig: verify.SignStandard(nil, g.ID, g.Time, g.Body), keys: [][]byte{{}}, want: verify.ErrBadSignature},
		{name: "one-byte-flipped body", sig: good, body: flipped(g.Body, 10), want: verify.ErrBadSignature},
		{name: "different id", id: "9876543211", sig: good, want: verify.ErrBadSignature},
		{name: "id re-split into timestamp", id: "9876543210.1781080794", ts: "1781080794", sig: good, want: verify.ErrBadSignature},
		{name: "different timestamp", ts: "1781080795", sig: good, want: verify.ErrBadSignature},
		{name: "timestamp with leading zero is signed as sent", ts: "01781080794", sig: good, want: verify.ErrBadSignature},
		{name: "second of several signatures valid", sig: bad + " " + good},
		{name: "first of several signatures valid", sig: good + " " + bad},
		{name: "extra whitespace between entries", sig: "  " + bad + "   " + good + "  "},
		{name: "v2 entry ignored", sig: "v2," + goodB64, want: verify.ErrBadSignature},
		{name: "v1a entry ignored", sig: "v1a," + goodB64, want: verify.ErrBadSignature},
		{name: "v2 entry ignored then v1 valid", sig: "v2," + goodB64 + " " + good},
		{name: "no v1 entry", sig: "v2,abc v3,def", want: verify.ErrBadSignature},
		{name: "garbage entries", sig: "hello world ,,, v1, v1,%%%", want: verify.ErrBadSignature},
		{name: "bad base64 entry then valid", sig: "v1,!!!! " + good},
		{name: "unpadded v1 entry", sig: strings.TrimSuffix(good, "="), want: verify.ErrBadSignature},
		{name: "non-canonical base64", sig: strings.TrimSuffix(good, "4=") + "5=", want: verify.ErrBadSignature},
		{name: "valid as 16th entry", sig: many(16, 15)},
		{name: "17th entry ignored", sig: many(17, 16), want: verify.ErrBadSignature},
		{name: "signature header over 8 KiB", sig: good + strings.Repeat(" ", 8<<10), want: verify.ErrMalformed},
		{name: "id over 8 KiB", id: strings.Repeat("i", 8<<10+1), sig: good, want: verify.ErrMalformed},
		{name: "stale past", sig: good, now: g.Time.Add(verify.DefaultTolerance + time.Second), want: verify.ErrStale},
		{name: "stale future", sig: good, now: g.Time.Add(-verify.DefaultTolerance - time.Second), want: verify.ErrStale},
		{name: "wrong signature is not judged on its time", sig: bad, now: g.Time.Add(time.Hour), want: verify.ErrBadSignature},
		{name: "edge of tolerance past", sig: good, now: g.Time.Add(verify.DefaultTolerance)},
		{name: "edge of tolerance future", sig: good, now: g.Time.Add(-verify.DefaultTolerance)},
		{name: "custom tolerance", sig: good, now: g.Time.Add(2 * time.Second), tolerance: time.Second, want: verify.ErrStale},
		{name: "tolerance 0 disables", sig: good, now: g.Time.Add(365 * 24 * time.Hour), noCheck: true},
		{name: "huge timestamp is stale", ts: "9223372036854775807", sig: signedAt(g.Key, g.ID, "9223372036854775807", g.Body), want: verify.ErrStale},
		{name: "malformed timestamp letters", ts: "abc", sig: good, want: verify.ErrMalformed},
		{name: "malformed timestamp negative", ts: "-5", sig: good, want: verify.ErrMalformed},
		{name: "malformed timestamp plus sign", ts: "+1781080794", sig: good, want: verify.ErrMalformed},
		{name: "malformed timestamp fraction", ts: "1.5", sig: good, want: verify.ErrMalformed},
		{name: "malformed timestamp space", ts: " 1781080794", sig: good, want: verify.ErrMalformed},
		{name: "malformed timestamp overflow", ts: "99999999999999999999", sig: good, want: verify.ErrMalformed},
		{name: "malformed timestamp before stale", ts: "abc", sig: good, now: g.Time.Add(time.Hour), want: verify.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, ts := g.ID, g.Timestamp
			if tc.id != "" {
				id = tc.id
			}
			if tc.ts != "" {
				ts = tc.ts
			}
			body := g.Body
			if tc.body != nil {
				body = tc.body
			}
			k := keys
			if tc.keys != nil {
				k = tc.keys
			}
			now := g.Time
			if !tc.now.IsZero() {
				now = tc.now
			}
			tolerance := verify.DefaultTolerance
			if tc.tolerance > 0 {
				tolerance = tc.tolerance
			}
			if tc.noCheck {
				tolerance = 0
			}
			h := standardHeader(id, ts, tc.sig)

			gotID, err := verify.StandardWebhooks(h, body, k, now, tolerance)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("StandardWebhooks = %v, want nil", err)
				}
				if gotID != id {
					t.Fatalf("id = %q, want %q", gotID, id)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("StandardWebhooks = %v, want %v", err, tc.want)
			}
			if gotID != "" {
				t.Fatalf("id = %q on error, want empty", gotID)
			}
			assertNoLeak(t, err, goodB64, g.Secret, string(g.Key))
		})
	}
}

func TestStandardWebhooksMissingHeaders(t *testing.T) {
	g := loadGolden(t)
	names := []string{verify.HeaderWebhookID, verify.HeaderWebhookTimestamp, verify.HeaderWebhookSignature}
	for _, name := range names {
		for _, mode := range []string{"absent", "empty"} {
			t.Run(mode+" "+name, func(t *testing.T) {
				h := standardHeader(g.ID, g.Timestamp, g.Signature)
				if mode == "absent" {
					h.Del(name)
				} else {
					h.Set(name, "")
				}
				id, err := verify.StandardWebhooks(h, g.Body, [][]byte{g.Key}, g.Time, verify.DefaultTolerance)
				if !errors.Is(err, verify.ErrMissingSignature) || id != "" {
					t.Fatalf("StandardWebhooks = %q, %v; want ErrMissingSignature", id, err)
				}
			})
		}
	}
	t.Run("all absent", func(t *testing.T) {
		_, err := verify.StandardWebhooks(http.Header{}, g.Body, [][]byte{g.Key}, g.Time, verify.DefaultTolerance)
		if !errors.Is(err, verify.ErrMissingSignature) {
			t.Fatalf("StandardWebhooks = %v, want ErrMissingSignature", err)
		}
	})
	t.Run("nil header", func(t *testing.T) {
		_, err := verify.StandardWebhooks(nil, g.Body, [][]byte{g.Key}, g.Time, verify.DefaultTolerance)
		if !errors.Is(err, verify.ErrMissingSignature) {
			t.Fatalf("StandardWebhooks = %v, want ErrMissingSignature", err)
		}
	})
}

func TestStandardWebhooksNonCanonicalHeaderKeys(t *testing.T) {
	// Adapters sometimes build header maps by hand with the specification's
	// lower-case names instead of going through Header.Set.
	g := loadGolden(t)
	h := http.Header{
		verify.HeaderWebhookID:        {g.ID},
		verify.HeaderWebhookTimestamp: {g.Timestamp},
		verify.HeaderWebhookSignature: {g.Signature},
	}
	id, err := verify.StandardWebhooks(h, g.Body, [][]byte{g.Key}, g.Time, verify.DefaultTolerance)
	if err != nil || id != g.ID {
		t.Fatalf("StandardWebhooks = %q, %v; want %q, nil", id, err, g.ID)
	}
}

func TestSignStandardRoundTrip(t *testing.T) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	ts := time.Unix(1_700_000_000, 0)
	bodies := [][]byte{nil, []byte("{}"), []byte(strings.Repeat("x", 4096))}
	for _, body := range bodies {
		sig := verify.SignStandard(key, "msg_2Lh9", ts, body)
		if !strings.HasPrefix(sig, "v1,") {
			t.Fatalf("signature %q lacks v1 prefix", sig)
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sig, "v1,"))
		if err != nil || len(raw) != 32 {
			t.Fatalf("signature %q is not base64 of 32 bytes", sig)
		}
		h := standardHeader("msg_2Lh9", "1700000000", sig)
		id, err := verify.StandardWebhooks(h, body, [][]byte{key}, ts.Add(time.Minute), verify.DefaultTolerance)
		if err != nil || id != "msg_2Lh9" {
			t.Fatalf("round trip (len %d) = %q, %v", len(body), id, err)
		}
	}
	// Sub-second precision is dropped, exactly as the header carries it.
	if a, b := verify.SignStandard(key, "m", ts, nil), verify.SignStandard(key, "m", ts.Add(999*time.Millisecond), nil); a != b {
		t.Fatalf("sub-second timestamps signed differently: %q vs %q", a, b)
	}
}

func standardHeader(id, ts, sig string) http.Header {
	h := http.Header{}
	h.Set(verify.HeaderWebhookID, id)
	h.Set(verify.HeaderWebhookTimestamp, ts)
	h.Set(verify.HeaderWebhookSignature, sig)
	return h
}

// signedAt signs body with the timestamp exactly as given, for timestamps
// a time.Time cannot carry.
func signedAt(key []byte, id, ts string, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
