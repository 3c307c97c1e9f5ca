package verify_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klingfan/klingfan/internal/verify"
)

// FuzzKlingSignature checks that arbitrary headers never panic, that only the
// genuine MAC of the body under the fixed key verifies, and that signing any
// body round-trips while any tampering is detected.
func FuzzKlingSignature(f *testing.F) {
	g := loadGolden(f)
	key := []byte("fuzz-kling-key")
	secrets := [][]byte{key}
	f.Add(verify.SignKling(key, g.Body), g.Body)
	f.Add(strings.ToUpper(verify.SignKling(key, g.Body)), g.Body)
	f.Add(verify.SignKling([]byte("other"), g.Body), g.Body)
	f.Add("", []byte(nil))
	f.Add("sha256=", []byte("x"))
	f.Add("sha256="+strings.Repeat("g", 64), []byte("x"))

	f.Fuzz(func(t *testing.T, header string, body []byte) {
		err := verify.KlingSignature(header, body, secrets)
		if err == nil && !strings.EqualFold(header, verify.SignKling(key, body)) {
			t.Fatalf("header %q verified but is not the MAC of the body", header)
		}
		if err != nil && !isSentinel(err) {
			t.Fatalf("unexpected error type: %v", err)
		}

		signed := verify.SignKling(key, body)
		if err := verify.KlingSignature(signed, body, secrets); err != nil {
			t.Fatalf("own signature rejected: %v", err)
		}
		if err := verify.KlingSignature(signed, body, [][]byte{[]byte("fuzz-kling-kez")}); !errors.Is(err, verify.ErrBadSignature) {
			t.Fatalf("wrong key: %v, want ErrBadSignature", err)
		}
		if err := verify.KlingSignature(signed, append(body[:len(body):len(body)], 0), secrets); !errors.Is(err, verify.ErrBadSignature) {
			t.Fatalf("appended byte: %v, want ErrBadSignature", err)
		}
		if len(body) > 0 {
			i := len(header) % len(body)
			if err := verify.KlingSignature(signed, flipped(body, i), secrets); !errors.Is(err, verify.ErrBadSignature) {
				t.Fatalf("flipped byte %d: %v, want ErrBadSignature", i, err)
			}
		}
	})
}

// FuzzStandardWebhooks checks that arbitrary header values never panic, that
// nothing verifies unless the header carries the genuine v1 MAC of
// "{id}.{timestamp}.{body}" under the fixed key, and that signing any
// id and body round-trips while tampering with either is detected.
func FuzzStandardWebhooks(f *testing.F) {
	g := loadGolden(f)
	keys := [][]byte{g.Key}
	f.Add(g.ID, g.Timestamp, g.Signature, g.Body)
	f.Add(g.ID, g.Timestamp, "v2,"+strings.TrimPrefix(g.Signature, "v1,")+" "+g.Signature, g.Body)
	f.Add(g.ID, g.Timestamp, g.Signature, flipped(g.Body, 0))
	f.Add(g.ID, "-5", g.Signature, g.Body)
	f.Add(g.ID, "1.5", g.Signature, g.Body)
	f.Add("", "", "", []byte(nil))
	f.Add("a.b", "0", "v1,"+strings.Repeat("A", 43)+"=", []byte("{}"))

	f.Fuzz(func(t *testing.T, id, timestamp, sigHeader string, body []byte) {
		h := http.Header{}
		h.Set(verify.HeaderWebhookID, id)
		h.Set(verify.HeaderWebhookTimestamp, timestamp)
		h.Set(verify.HeaderWebhookSignature, sigHeader)
		gotID, err := verify.StandardWebhooks(h, body, keys, time.Time{}, 0)
		if err == nil {
			if gotID != id {
				t.Fatalf("id = %q, want %q", gotID, id)
			}
			mac := hmac.New(sha256.New, g.Key)
			mac.Write([]byte(id + "." + timestamp + "."))
			mac.Write(body)
			want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
			if !containsField(sigHeader, want) {
				t.Fatalf("verified without the genuine signature: id=%q ts=%q sig=%q", id, timestamp, sigHeader)
			}
		} else {
			if gotID != "" {
				t.Fatalf("id = %q on error %v", gotID, err)
			}
			if !isSentinel(err) {
				t.Fatalf("unexpected error type: %v", err)
			}
		}

		if id == "" || len(id) > 8<<10 {
			return
		}
		ts := time.Unix(1_781_080_794, 0)
		tsText := strconv.FormatInt(ts.Unix(), 10)
		signed := verify.SignStandard(g.Key, id, ts, body)
		check := func(name, id string, body []byte, keys [][]byte, want error) {
			t.Helper()
			h := http.Header{}
			h.Set(verify.HeaderWebhookID, id)
			h.Set(verify.HeaderWebhookTimestamp, tsText)
			h.Set(verify.HeaderWebhookSignature, signed)
			got, err := verify.StandardWebhooks(h, body, keys, ts, verify.DefaultTolerance)
			if !errors.Is(err, want) || (want == nil && got != id) {
				t.Fatalf("%s: id=%q err=%v, want %v", name, got, err, want)
			}
		}
		check("round trip", id, body, keys, nil)
		check("wrong key", id, body, [][]byte{[]byte("not-the-key")}, verify.ErrBadSignature)
		check("appended byte", id, append(body[:len(body):len(body)], '.'), keys, verify.ErrBadSignature)
		if len(body) > 0 {
			check("flipped byte", id, flipped(body, len(id)%len(body)), keys, verify.ErrBadSignature)
		}
		if len(id) < 8<<10 {
			check("changed id", id+"x", body, keys, verify.ErrBadSignature)
		}
	})
}

// containsField reports whether want is one of the space-separated entries
// of s.
func containsField(s, want string) bool {
	for f := range strings.FieldsSeq(s) {
		if f == want {
			return true
		}
	}
	return false
}
