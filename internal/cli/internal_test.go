package cli

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

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
