package verify_test

import (
	"encoding/base64"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/klingfan/klingfan/internal/verify"
)

func TestDecodeStandardSecret(t *testing.T) {
	const plain = "testsecrettestsecrettestsecret12"
	const b64 = "dGVzdHNlY3JldHRlc3RzZWNyZXR0ZXN0c2VjcmV0MTI="

	tests := []struct {
		name   string
		secret string
		want   string // empty means an error is expected
	}{
		{name: "with prefix", secret: "whsec_" + b64, want: plain},
		{name: "without prefix", secret: b64, want: plain},
		{name: "unpadded", secret: "whsec_" + strings.TrimRight(b64, "="), want: plain},
		{name: "unpadded without prefix", secret: strings.TrimRight(b64, "="), want: plain},
		{name: "invalid base64", secret: "whsec_not*base64!"},
		{name: "url alphabet rejected", secret: "whsec_-_-_"},
		{name: "only line breaks", secret: "whsec_\r\n"},
		{name: "empty", secret: ""},
		{name: "prefix only", secret: "whsec_"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key, err := verify.DecodeStandardSecret(tc.secret)
			if tc.want != "" {
				if err != nil {
					t.Fatalf("DecodeStandardSecret = %v, want nil", err)
				}
				if string(key) != tc.want {
					t.Fatalf("key = %q, want %q", key, tc.want)
				}
				return
			}
			if !errors.Is(err, verify.ErrInvalidSecret) {
				t.Fatalf("DecodeStandardSecret = %v, want ErrInvalidSecret", err)
			}
			if key != nil {
				t.Fatalf("key = %q on error, want nil", key)
			}
			assertNoLeak(t, err, strings.TrimPrefix(tc.secret, "whsec_"))
		})
	}
}

func TestNewStandardSecret(t *testing.T) {
	a, b := verify.NewStandardSecret(), verify.NewStandardSecret()
	if a == b {
		t.Fatal("two calls returned the same secret")
	}
	for _, s := range []string{a, b} {
		if !strings.HasPrefix(s, "whsec_") || len(s) != len("whsec_")+44 {
			t.Fatalf("secret %q: want whsec_ + 44 base64 chars", s)
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
		if err != nil || len(raw) != 32 {
			t.Fatalf("secret %q does not decode to 32 bytes: %v", s, err)
		}
		key, err := verify.DecodeStandardSecret(s)
		if err != nil || string(key) != string(raw) {
			t.Fatalf("DecodeStandardSecret(new secret) = %v", err)
		}
	}
}

func TestNewKlingSecret(t *testing.T) {
	a, b := verify.NewKlingSecret(), verify.NewKlingSecret()
	if a == b {
		t.Fatal("two calls returned the same secret")
	}
	assertRawURL32(t, a)
	// The string itself is the HMAC key.
	body := []byte(`{"ok":true}`)
	if err := verify.KlingSignature(verify.SignKling([]byte(a), body), body, [][]byte{[]byte(a)}); err != nil {
		t.Fatalf("generated secret does not sign and verify: %v", err)
	}
}

func TestNewURLToken(t *testing.T) {
	a, b := verify.NewURLToken(), verify.NewURLToken()
	if a == b {
		t.Fatal("two calls returned the same token")
	}
	assertRawURL32(t, a)
	if url.QueryEscape(a) != a {
		t.Fatalf("token %q needs escaping in a query string", a)
	}
	if err := verify.URLToken(a, [][]byte{[]byte(a)}); err != nil {
		t.Fatalf("generated token does not verify: %v", err)
	}
}

func assertRawURL32(t *testing.T, s string) {
	t.Helper()
	if len(s) != 43 || strings.ContainsAny(s, "=+/") {
		t.Fatalf("%q: want 43 unpadded URL-safe base64 chars", s)
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(raw) != 32 {
		t.Fatalf("%q does not decode to 32 bytes: %v", s, err)
	}
}
