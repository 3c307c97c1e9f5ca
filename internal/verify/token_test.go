package verify_test

import (
	"errors"
	"testing"

	"github.com/klingfan/klingfan/internal/verify"
)

func TestURLToken(t *testing.T) {
	token := "Zm9vYmFyYmF6cXV4cXV1eHF1dXhmb29iYXJiYXpxdXg"
	old := "b2xkLXRva2VuLW9sZC10b2tlbi1vbGQtdG9rZW4tb2xk"

	tests := []struct {
		name   string
		given  string
		tokens [][]byte
		want   error
	}{
		{name: "right", given: token, tokens: [][]byte{[]byte(token)}},
		{name: "rotation second matches", given: token, tokens: [][]byte{[]byte(old), []byte(token)}},
		{name: "wrong", given: old, tokens: [][]byte{[]byte(token)}, want: verify.ErrBadSignature},
		{name: "one char changed", given: token[:len(token)-1] + "A", tokens: [][]byte{[]byte(token)}, want: verify.ErrBadSignature},
		{name: "shorter prefix", given: token[:10], tokens: [][]byte{[]byte(token)}, want: verify.ErrBadSignature},
		{name: "longer", given: token + "x", tokens: [][]byte{[]byte(token)}, want: verify.ErrBadSignature},
		{name: "empty", given: "", tokens: [][]byte{[]byte(token)}, want: verify.ErrMissingSignature},
		{name: "empty with empty configured", given: "", tokens: [][]byte{{}}, want: verify.ErrMissingSignature},
		{name: "no tokens configured", given: token, tokens: nil, want: verify.ErrBadSignature},
		{name: "empty configured token never matches", given: token, tokens: [][]byte{{}}, want: verify.ErrBadSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := verify.URLToken(tc.given, tc.tokens)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("URLToken = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("URLToken = %v, want %v", err, tc.want)
			}
			assertNoLeak(t, err, token, old, tc.given)
		})
	}
}
