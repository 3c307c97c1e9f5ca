package verify_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/klingfan/klingfan/internal/verify"
)

func TestSignKlingKnownVector(t *testing.T) {
	// RFC 4231 test case 2, an HMAC-SHA256 vector independent of this package.
	got := verify.SignKling([]byte("Jefe"), []byte("what do ya want for nothing?"))
	want := "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
	if got != want {
		t.Fatalf("SignKling = %q, want %q", got, want)
	}
}

func TestKlingSignature(t *testing.T) {
	secret := []byte("kling-secret-one")
	other := []byte("kling-secret-two")
	body := []byte(`{"task_id":"abc","task_status":"succeed"}`)
	valid := verify.SignKling(secret, body)
	hexPart := strings.TrimPrefix(valid, "sha256=")

	tests := []struct {
		name    string
		header  string
		body    []byte
		secrets [][]byte
		want    error
	}{
		{name: "valid", header: valid, body: body, secrets: [][]byte{secret}},
		{name: "upper-case hex", header: "sha256=" + strings.ToUpper(hexPart), body: body, secrets: [][]byte{secret}},
		{name: "mixed-case hex", header: "sha256=" + strings.ToUpper(hexPart[:10]) + hexPart[10:], body: body, secrets: [][]byte{secret}},
		{name: "rotation second secret matches", header: valid, body: body, secrets: [][]byte{other, secret}},
		{name: "rotation first secret matches", header: valid, body: body, secrets: [][]byte{secret, other}},
		{name: "empty body", header: verify.SignKling(secret, nil), body: nil, secrets: [][]byte{secret}},
		{name: "wrong secret", header: valid, body: body, secrets: [][]byte{other}, want: verify.ErrBadSignature},
		{name: "one-byte-flipped body", header: valid, body: flipped(body, 5), secrets: [][]byte{secret}, want: verify.ErrBadSignature},
		{name: "truncated body", header: valid, body: body[:len(body)-1], secrets: [][]byte{secret}, want: verify.ErrBadSignature},
		{name: "flipped signature digit", header: "sha256=" + flipHex(hexPart), body: body, secrets: [][]byte{secret}, want: verify.ErrBadSignature},
		{name: "no secrets", header: valid, body: body, secrets: nil, want: verify.ErrBadSignature},
		{name: "empty secret never matches", header: verify.SignKling(nil, body), body: body, secrets: [][]byte{{}}, want: verify.ErrBadSignature},
		{name: "missing header", header: "", body: body, secrets: [][]byte{secret}, want: verify.ErrMissingSignature},
		{name: "no prefix", header: hexPart, body: body, secrets: [][]byte{secret}, want: verify.ErrMalformed},
		{name: "prefix only", header: "sha256=", body: body, secrets: [][]byte{secret}, want: verify.ErrMalformed},
		{name: "other algorithm", header: "sha1=" + hexPart, body: body, secrets: [][]byte{secret}, want: verify.ErrMalformed},
		{name: "upper-case prefix", header: "SHA256=" + hexPart, body: body, secrets: [][]byte{secret}, want: verify.ErrMalformed},
		{name: "non-hex", header: "sha256=" + hexPart[:63] + "g", body: body, secrets: [][]byte{secret}, want: verify.ErrMalformed},
		{name: "too short", header: valid[:len(valid)-2], body: body, secrets: [][]byte{secret}, want: verify.ErrMalformed},
		{name: "too long", header: valid + "00", body: body, secrets: [][]byte{secret}, want: verify.ErrMalformed},
		{name: "surrounding space", header: " " + valid, body: body, secrets: [][]byte{secret}, want: verify.ErrMalformed},
		{name: "base64 instead of hex", header: "sha256=" + strings.Repeat("A", 43) + "=", body: body, secrets: [][]byte{secret}, want: verify.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := verify.KlingSignature(tc.header, tc.body, tc.secrets)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("KlingSignature = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("KlingSignature = %v, want %v", err, tc.want)
			}
			assertNoLeak(t, err, tc.header, hexPart, string(secret), string(other))
		})
	}
}

// flipHex changes the first hex digit to a different valid digit, so the
// header stays well formed but the MAC is wrong.
func flipHex(h string) string {
	c := byte('0')
	if h[0] == '0' {
		c = '1'
	}
	return string(c) + h[1:]
}
