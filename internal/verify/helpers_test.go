package verify_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klingfan/klingfan/internal/verify"
)

// golden is Kling's published Standard Webhooks example, stored under
// testdata so that the exact body bytes are not at the mercy of Go string
// escaping.
type golden struct {
	Secret    string `json:"secret"`
	ID        string `json:"webhook-id"`
	Timestamp string `json:"webhook-timestamp"`
	Signature string `json:"webhook-signature"`

	Key  []byte    `json:"-"`
	Body []byte    `json:"-"`
	Time time.Time `json:"-"`
}

func loadGolden(tb testing.TB) golden {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "standard_webhooks_example_headers.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(raw, &g); err != nil {
		tb.Fatal(err)
	}
	g.Body, err = os.ReadFile(filepath.Join("testdata", "standard_webhooks_example.json"))
	if err != nil {
		tb.Fatal(err)
	}
	g.Key, err = verify.DecodeStandardSecret(g.Secret)
	if err != nil {
		tb.Fatalf("decode golden secret: %v", err)
	}
	sec, err := strconv.ParseInt(g.Timestamp, 10, 64)
	if err != nil {
		tb.Fatal(err)
	}
	g.Time = time.Unix(sec, 0)
	return g
}

// flipped returns a copy of b with one bit of one byte changed, the minimal
// tampering every verifier must detect.
func flipped(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x01
	return c
}

// isSentinel reports whether err is one of the package's verification errors;
// anything else would mean an unexpected failure mode leaked out.
func isSentinel(err error) bool {
	return errors.Is(err, verify.ErrMissingSignature) ||
		errors.Is(err, verify.ErrBadSignature) ||
		errors.Is(err, verify.ErrMalformed) ||
		errors.Is(err, verify.ErrStale)
}

// assertNoLeak fails if an error message contains sensitive input. Errors are
// logged by callers, so they must never echo secrets or signatures.
func assertNoLeak(tb testing.TB, err error, sensitive ...string) {
	tb.Helper()
	if err == nil {
		return
	}
	for _, s := range sensitive {
		if len(s) >= 4 && strings.Contains(err.Error(), s) {
			tb.Errorf("error %q leaks sensitive input", err)
		}
	}
}
