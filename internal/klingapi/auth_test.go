package klingapi_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/klingfan/klingfan/internal/klingapi"
)

// TestMintJWTClaims checks the token against what Kling documents: header
// {"alg":"HS256","typ":"JWT"}, iss = access key, exp = now+1800, nbf = now-5.
func TestMintJWTClaims(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tok, err := klingapi.MintJWT("ak-123", "sk-456", now)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWS compact serialization", tok)
	}
	var header map[string]any
	decodeSegment(t, parts[0], &header)
	if header["alg"] != "HS256" || header["typ"] != "JWT" {
		t.Errorf("header = %v", header)
	}
	var claims struct {
		Iss string `json:"iss"`
		Exp int64  `json:"exp"`
		Nbf int64  `json:"nbf"`
	}
	decodeSegment(t, parts[1], &claims)
	if claims.Iss != "ak-123" || claims.Exp != now.Unix()+1800 || claims.Nbf != now.Unix()-5 {
		t.Errorf("claims = %+v", claims)
	}
	lookup := func(ak string) (string, bool) { return "sk-456", ak == "ak-123" }
	for _, tc := range []struct {
		name string
		at   time.Time
		want error
	}{
		{"valid", now.Add(time.Minute), nil},
		{"expired", now.Add(31 * time.Minute), klingapi.ErrTokenExpired},
		{"not yet valid", now.Add(-time.Minute), klingapi.ErrTokenNotYetValid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			iss, err := klingapi.ParseJWT(tok, lookup, tc.at)
			if !errors.Is(err, tc.want) || (err == nil && iss != "ak-123") {
				t.Fatalf("ParseJWT = %q, %v; want %v", iss, err, tc.want)
			}
		})
	}
	if _, err := klingapi.ParseJWT(tok, func(string) (string, bool) { return "other", true }, now); !errors.Is(err, klingapi.ErrAuth) {
		t.Errorf("wrong secret: %v, want ErrAuth", err)
	}
}

func decodeSegment(t *testing.T, seg string, v any) {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}
