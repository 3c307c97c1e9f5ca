package api

import (
	"bytes"
	"testing"
)

func TestPageTokenRoundTrip(t *testing.T) {
	p := pageTokens{key: bytes.Repeat([]byte{7}, 32)}
	fp := fingerprint([]string{"EVENT_TYPE_VIDEO_COMPLETED"}, []string{"job-b", "job-a"}, nil)
	if fp != fingerprint([]string{"EVENT_TYPE_VIDEO_COMPLETED"}, []string{"job-a", "job-b"}, nil) {
		t.Error("fingerprint depends on the order of a repeated field")
	}
	tok := p.encode(page{next: 42, fingerprint: fp})
	cases := []struct {
		name  string
		token string
		fp    uint64
		keys  []byte
		ok    bool
	}{
		{"same request", tok, fp, p.key, true},
		{"different filters", tok, fp + 1, p.key, false},
		{"different key", tok, fp, bytes.Repeat([]byte{8}, 32), false},
		{"truncated", tok[:len(tok)-2], fp, p.key, false},
		{"not base64", "!!!", fp, p.key, false},
		{"empty", "", fp, p.key, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pg, err := pageTokens{key: tc.keys}.decode(tc.token, tc.fp)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && pg.next != 42 {
				t.Errorf("next = %d, want 42", pg.next)
			}
		})
	}
}

// FuzzPageToken checks that no input but a token the server made decodes,
// and that decoding never panics.
func FuzzPageToken(f *testing.F) {
	p := pageTokens{key: bytes.Repeat([]byte{7}, 32)}
	good := p.encode(page{next: 9, fingerprint: 5})
	f.Add(good)
	f.Add("")
	f.Add("AAAA")
	f.Add(good[:20])
	f.Fuzz(func(t *testing.T, token string) {
		pg, err := p.decode(token, 5)
		if err == nil && (token != good || pg.next != 9) {
			t.Fatalf("forged token %q accepted as %+v", token, pg)
		}
	})
}
