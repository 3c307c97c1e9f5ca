package verify_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/verify"
)

// TestSchemeTable covers what the registry and the API get from the table
// they are given: each scheme's own key format and secrets, and the
// KLING_SIGNATURE fallback for a scheme the table does not know.
func TestSchemeTable(t *testing.T) {
	const raw = "testsecrettestsecrettestsecret12"
	const whsec = "whsec_dGVzdHNlY3JldHRlc3RzZWNyZXR0ZXN0c2VjcmV0MTI="
	var table verify.SchemeTable
	tests := []struct {
		name    string
		scheme  gatewayv1.SignatureScheme
		secret  string
		wantKey string // empty: an error wrapping ErrInvalidSecret
		prefix  string // of a new secret
	}{
		{"kling keys are the secret itself", gatewayv1.SignatureScheme_SIGNATURE_SCHEME_KLING_SIGNATURE, raw, raw, ""},
		{"standard webhooks decodes whsec_ base64", gatewayv1.SignatureScheme_SIGNATURE_SCHEME_STANDARD_WEBHOOKS, whsec, raw, "whsec_"},
		{"standard webhooks refuses a raw secret", gatewayv1.SignatureScheme_SIGNATURE_SCHEME_STANDARD_WEBHOOKS, "not-base64!!", "", "whsec_"},
		{"an unknown scheme falls back to kling", gatewayv1.SignatureScheme(999), raw, raw, ""},
		{"an empty secret is refused", gatewayv1.SignatureScheme_SIGNATURE_SCHEME_KLING_SIGNATURE, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := table.DecodeKey(tt.scheme, tt.secret)
			switch {
			case tt.wantKey == "" && !errors.Is(err, verify.ErrInvalidSecret):
				t.Fatalf("DecodeKey = %q, %v; want ErrInvalidSecret", key, err)
			case tt.wantKey != "" && (err != nil || string(key) != tt.wantKey):
				t.Fatalf("DecodeKey = %q, %v; want %q", key, err, tt.wantKey)
			}
			s := table.NewSecret(tt.scheme)
			if !strings.HasPrefix(s, tt.prefix) {
				t.Fatalf("NewSecret = %q, want prefix %q", s, tt.prefix)
			}
			if _, err := table.DecodeKey(tt.scheme, s); err != nil {
				t.Fatalf("a new secret does not decode: %v", err)
			}
		})
	}
}

// TestPresented covers which credential a message is read as carrying; a
// message with none is what ingest answers "missing signature", whatever
// registration it names.
func TestPresented(t *testing.T) {
	const (
		kling    = gatewayv1.SignatureScheme_SIGNATURE_SCHEME_KLING_SIGNATURE
		standard = gatewayv1.SignatureScheme_SIGNATURE_SCHEME_STANDARD_WEBHOOKS
		token    = gatewayv1.SignatureScheme_SIGNATURE_SCHEME_URL_TOKEN
		none     = gatewayv1.SignatureScheme_SIGNATURE_SCHEME_UNSPECIFIED
	)
	std := func(id, ts, sig string) http.Header {
		return http.Header{verify.HeaderWebhookID: {id}, verify.HeaderWebhookTimestamp: {ts}, verify.HeaderWebhookSignature: {sig}}
	}
	tests := []struct {
		name string
		m    verify.Message
		want gatewayv1.SignatureScheme
	}{
		{"nothing", verify.Message{Header: http.Header{"Content-Type": {"application/json"}}}, none},
		{"empty X-Kling-Signature", verify.Message{Header: http.Header{verify.HeaderKlingSignature: {""}}}, none},
		{"malformed X-Kling-Signature", verify.Message{Header: http.Header{verify.HeaderKlingSignature: {"sha256=00"}}}, kling},
		{"standard headers", verify.Message{Header: std("m1", "1", "v1,x")}, standard},
		{"standard signature without an id", verify.Message{Header: std("", "1", "v1,x")}, none},
		{"standard signature with a malformed timestamp", verify.Message{Header: std("m1", "soon", "v1,x")}, standard},
		{"URL token", verify.Message{Token: "t"}, token},
		{"every scheme: the table's first", verify.Message{Header: http.Header{verify.HeaderKlingSignature: {"x"}}, Token: "t"}, kling},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ok := verify.Presented(tt.m)
			switch {
			case tt.want == none && ok:
				t.Fatalf("Presented = %v, want none", s.ID)
			case tt.want != none && (!ok || s.ID != tt.want):
				t.Fatalf("Presented = %v, %v; want %v", s, ok, tt.want)
			}
		})
	}
}
