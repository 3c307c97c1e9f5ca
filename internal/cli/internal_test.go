package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

func TestCursorFile(t *testing.T) {
	dir := t.TempDir()
	f := cursorFile{path: filepath.Join(dir, "c")}
	if _, ok, err := f.load(); ok || err != nil {
		t.Fatalf("missing file: ok=%v err=%v, want a first run", ok, err)
	}
	for _, seq := range []uint64{1, 42, 18446744073709551615} {
		if err := f.store(seq); err != nil {
			t.Fatal(err)
		}
		got, ok, err := f.load()
		if !ok || err != nil || got != seq {
			t.Fatalf("load after store(%d) = %d, %v, %v", seq, got, ok, err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	cases := []struct {
		name, content string
		wantOK        bool
		wantErr       string
	}{
		{name: "empty means first run", content: ""},
		{name: "whitespace means first run", content: " \n"},
		{name: "surrounding space tolerated", content: " 7 \n", wantOK: true},
		{name: "garbage", content: "seven\n", wantErr: `"seven" is not a sequence number`},
		{name: "negative", content: "-1", wantErr: "not a sequence number"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(f.path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, ok, err := f.load()
			if ok != tc.wantOK || (err == nil) != (tc.wantErr == "") || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("load = ok %v, err %v; want ok %v, err %q", ok, err, tc.wantOK, tc.wantErr)
			}
		})
	}
	t.Run("unwritable directory", func(t *testing.T) {
		bad := cursorFile{path: filepath.Join(dir, "missing", "c")}
		if err := bad.store(1); err == nil {
			t.Error("store into a missing directory succeeded")
		}
	})
}

func TestParseEventType(t *testing.T) {
	cases := []struct {
		in   string
		want gatewayv1.EventType
		ok   bool
	}{
		{"completed", gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED, true},
		{"video.completed", gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED, true},
		{"EVENT_TYPE_VIDEO_COMPLETED", gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED, true},
		{"VIDEO_FAILED", gatewayv1.EventType_EVENT_TYPE_VIDEO_FAILED, true},
		{" Created ", gatewayv1.EventType_EVENT_TYPE_VIDEO_CREATED, true},
		{"cancelled", gatewayv1.EventType_EVENT_TYPE_VIDEO_CANCELLED, true},
		{"EVENT_TYPE_UNSPECIFIED", 0, false},
		{"image.completed", 0, false},
		{"", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseEventType(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Errorf("parseEventType(%q) = %v, %v", tc.in, got, err)
			}
		})
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"10m", now.Add(-10 * time.Minute), true},
		{"1h30m", now.Add(-90 * time.Minute), true},
		{"2026-11-26T11:00:00Z", now.Add(-time.Hour), true},
		{"2026-11-26T13:00:00.5+02:00", now.Add(-time.Hour + 500*time.Millisecond), true},
		{"-5m", time.Time{}, false},
		{"yesterday", time.Time{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseSince(tc.in, now)
			if (err == nil) != tc.ok || !got.Equal(tc.want) {
				t.Errorf("parseSince(%q) = %v, %v", tc.in, got, err)
			}
		})
	}
}

func TestRetryable(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"server shutting down", status.Error(codes.Unavailable, "server shutting down"), true},
		{"too many streams", status.Error(codes.ResourceExhausted, "too many"), true},
		{"stream reset", status.Error(codes.Internal, "stream terminated by RST_STREAM with error code: INTERNAL_ERROR"), true},
		{"bad token", status.Error(codes.Unauthenticated, "no"), false},
		{"resume point expired", status.Error(codes.OutOfRange, "older than retention"), false},
		{"bad filter", status.Error(codes.InvalidArgument, "job_ids"), false},
		{"internal", status.Error(codes.Internal, "internal error"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := retryable(tc.err); got != tc.want {
				t.Errorf("retryable = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCodeName(t *testing.T) {
	for c, want := range map[codes.Code]string{
		codes.OK: "OK", codes.Unauthenticated: "UNAUTHENTICATED", codes.PermissionDenied: "PERMISSION_DENIED",
		codes.DeadlineExceeded: "DEADLINE_EXCEEDED", codes.NotFound: "NOT_FOUND",
	} {
		if got := codeName(c); got != want {
			t.Errorf("codeName(%v) = %q, want %q", c, got, want)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"localhost:9090": true, "127.0.0.1:9090": true, "[::1]:9090": true, "127.5.5.5:1": true,
		"192.0.2.1:9090": false, "gateway.example:443": false, "[2001:db8::1]:9090": false,
	} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// Text end users sent through Kling cannot drive the terminal: escape
// sequences and other control characters, and bidirectional overrides,
// are replaced wherever events are printed.
func TestPrintableStripsControlCharacters(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"clear screen", "a\x1b[2Jb", "a\ufffd[2Jb"},
		{"carriage return over the line", "ok\rFAILED", "ok\ufffdFAILED"},
		{"bell and newline", "x\a\ny", "x\ufffd\ufffdy"},
		{"right-to-left override", "abc\u202edef", "abc\ufffddef"},
		{"ordinary text", "猫 café", "猫 café"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := printable(tc.in); got != tc.want {
				t.Errorf("printable(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
	ev := &gatewayv1.Event{Job: &gatewayv1.Job{JobId: "j\x1b]0;pwned\a", StatusMessage: "bad\x1b[31m"}}
	var b strings.Builder
	if err := writeEventDetail(&b, ev); err != nil {
		t.Fatal(err)
	}
	if line := eventLine(ev, false); strings.ContainsAny(b.String()+line, "\x1b\a") {
		t.Errorf("an escape reached the output: %q / %q", b.String(), line)
	}
}
