package console_test

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/klingfan/klingfan/internal/console"
)

// The console's responses: a strict CSP on each, the right content types
// (a module script with another type does not run), no directory
// listings, no cookies.
func TestHandler(t *testing.T) {
	h := console.Handler()
	for _, c := range []struct {
		name, method, path string
		status             int
		contentType        string
	}{
		{"index", "GET", "/console/", 200, "text/html; charset=utf-8"},
		{"app module", "GET", "/console/app.js", 200, "text/javascript; charset=utf-8"},
		{"page module", "GET", "/console/pages/tail.js", 200, "text/javascript; charset=utf-8"},
		{"vendored module", "GET", "/console/vendor/htm-preact-standalone.mjs", 200, "text/javascript; charset=utf-8"},
		{"stylesheet", "GET", "/console/console.css", 200, "text/css; charset=utf-8"},
		{"icon", "GET", "/console/favicon.svg", 200, "image/svg+xml"},
		{"no directory listing", "GET", "/console/vendor/", 404, ""},
		{"missing file", "GET", "/console/nope.js", 404, ""},
		{"without the slash", "GET", "/console", 0, ""}, // any redirect to /console/
		{"not a read", "POST", "/console/", 405, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			mux := http.NewServeMux()
			mux.Handle(console.Path, h)
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
			if c.status == 0 {
				if rec.Code/100 != 3 || rec.Header().Get("Location") != console.Path {
					t.Fatalf("status %d Location %q, want a redirect to %s", rec.Code, rec.Header().Get("Location"), console.Path)
				}
				return
			}
			if rec.Code != c.status {
				t.Fatalf("status %d, want %d", rec.Code, c.status)
			}
			if c.contentType != "" && rec.Header().Get("Content-Type") != c.contentType {
				t.Errorf("Content-Type %q, want %q", rec.Header().Get("Content-Type"), c.contentType)
			}
			if rec.Code == 200 {
				csp := rec.Header().Get("Content-Security-Policy")
				for _, want := range []string{"script-src 'self'", "connect-src 'self'", "default-src 'none'"} {
					if !strings.Contains(csp, want) {
						t.Errorf("CSP %q lacks %q", csp, want)
					}
				}
				if strings.Contains(csp, "unsafe") {
					t.Errorf("CSP allows something unsafe: %q", csp)
				}
			}
			if rec.Header().Get("Set-Cookie") != "" {
				t.Errorf("sets a cookie: %q", rec.Header().Get("Set-Cookie"))
			}
		})
	}
}

// The page itself has no inline script or style for the CSP to refuse.
func TestIndexHasNoInlineCode(t *testing.T) {
	b, err := os.ReadFile("assets/index.html")
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`<script(?:[^>]*)>[^<]+</script>|<style|style=|\son[a-z]+=`).Find(b); m != nil {
		t.Errorf("index.html has inline code: %s", m)
	}
}

// The vendored library is the file recorded in VENDOR.md, byte for byte;
// `make check-console-vendor` proves that record matches npm.
func TestVendoredFileMatchesRecord(t *testing.T) {
	record, err := os.ReadFile("VENDOR.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^sha256 ([0-9a-f]{64})$`).FindSubmatch(record)
	if m == nil {
		t.Fatal("VENDOR.md has no sha256 line")
	}
	b, err := os.ReadFile("assets/vendor/htm-preact-standalone.mjs")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != string(m[1]) {
		t.Errorf("vendored file sha256 %s, VENDOR.md records %s: re-run scripts/console-vendor.sh and update the record", got, m[1])
	}
}
