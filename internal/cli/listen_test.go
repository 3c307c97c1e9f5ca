package cli_test

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
)

// TestListenPrintsPostedEvents is the first half of issue 6's "done when":
// listen prints an event that `klingctl post` caused in another process,
// in each output mode.
func TestListenPrintsPostedEvents(t *testing.T) {
	srv := startServer(t, "")
	cases := []struct {
		name  string
		opts  runOpts
		args  []string
		check func(t *testing.T, line, job string)
	}{
		{
			name: "json",
			args: []string{"--json"},
			check: func(t *testing.T, line, job string) {
				ev := parseEvents(t, []string{line})[0]
				if ev.GetJob().GetJobId() != job || ev.GetType() != gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED ||
					ev.GetWebhookId() != "default" || ev.GetSequence() == 0 || len(ev.GetRawBody()) != 0 {
					t.Errorf("unexpected event %v", ev)
				}
			},
		},
		{
			name: "json with raw bodies",
			args: []string{"--json", "--view", "full"},
			check: func(t *testing.T, line, job string) {
				ev := parseEvents(t, []string{line})[0]
				if !strings.Contains(string(ev.GetRawBody()), `"job_id":"`+job+`"`) {
					t.Errorf("raw body missing or wrong: %q", ev.GetRawBody())
				}
			},
		},
		{
			name: "text on a pipe has no colours",
			args: nil,
			check: func(t *testing.T, line, job string) {
				for _, want := range []string{" video.completed ", job, " succeeded ", "https://cdn.klingai.com/", ".mp4"} {
					if !strings.Contains(line, want) {
						t.Errorf("line lacks %q: %q", want, line)
					}
				}
				if strings.Contains(line, "\x1b[") {
					t.Errorf("colours on a pipe: %q", line)
				}
			},
		},
		{
			name: "text on a terminal is coloured",
			opts: runOpts{terminal: true},
			check: func(t *testing.T, line, job string) {
				if !strings.Contains(line, "\x1b[32mvideo.completed") || !strings.Contains(line, job) {
					t.Errorf("no green type in %q", line)
				}
			},
		},
		{
			name: "NO_COLOR turns colours off on a terminal",
			opts: runOpts{terminal: true, vars: map[string]string{"NO_COLOR": "1"}},
			check: func(t *testing.T, line, job string) {
				if strings.Contains(line, "\x1b[") || !strings.Contains(line, job) {
					t.Errorf("unexpected line %q", line)
				}
			},
		},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			job := "listen-" + strconv.Itoa(i)
			l := listen(t, tc.opts, with(conn(srv), append([]string{"--job", job}, tc.args...)...)...)
			post(t, srv, "completed", job)
			lines := l.waitLines(t, 1)
			if code := l.stop(t); code != 0 {
				t.Errorf("listen exited %d after Ctrl-C, want 0", code)
			}
			if len(lines) != 1 {
				t.Fatalf("got %d lines, want 1: %q", len(lines), lines)
			}
			tc.check(t, lines[0], job)
		})
	}
}

// TestListenShowsSendTest: an event made by `webhooks send-test` reaches a
// listener like any other, marked as a test.
func TestListenShowsSendTest(t *testing.T) {
	srv := startServer(t, "")
	l := listen(t, runOpts{}, with(conn(srv), "--json", "--webhook", "default", "--type", "failed")...)
	r := klingctl(t, with(conn(srv), "webhooks", "send-test", "default", "--type", "failed")...)
	skipIfUnimplemented(t, r)
	r.must(t)
	ev := parseEvents(t, l.waitLines(t, 1))[0]
	if !ev.GetTest() || ev.GetType() != gatewayv1.EventType_EVENT_TYPE_VIDEO_FAILED || ev.GetWebhookId() != "default" {
		t.Errorf("unexpected event %v", ev)
	}
	if !strings.Contains(r.stdout, "video.failed") || !strings.Contains(r.stdout, "[test]") {
		t.Errorf("send-test printed %q", r.stdout)
	}
}

// TestListenCursorFileMissesNothing is the second half of issue 6's "done
// when": killing and restarting listen with --cursor-file misses nothing
// posted in between, and repeats nothing.
func TestListenCursorFileMissesNothing(t *testing.T) {
	srv := startServer(t, "")
	cases := []struct {
		name        string
		before      []string // event types posted while the first run listens
		between     []string // posted while no listener runs
		firstArgs   []string
		wantInFirst int
	}{
		{name: "resume after the last event printed", before: []string{"created", "processing"}, between: []string{"completed", "failed", "cancelled"}, wantInFirst: 2},
		{name: "first run saw no event", before: nil, between: []string{"created", "completed"}},
		{name: "start flag applies to the first run only", before: []string{"created"}, between: []string{"processing", "failed"}, firstArgs: []string{"--from-beginning"}, wantInFirst: 1},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			job := "cursor-" + strconv.Itoa(i)
			cursor := filepath.Join(t.TempDir(), "listen.cursor")
			args := with(conn(srv), "--job", job, "--json", "--cursor-file", cursor)

			first := listen(t, runOpts{}, with(args, tc.firstArgs...)...)
			for _, typ := range tc.before {
				post(t, srv, typ, job)
				post(t, srv, typ, job+"-other") // filtered out
			}
			var seen []*gatewayv1.Event
			if tc.wantInFirst > 0 {
				seen = parseEvents(t, first.waitLines(t, tc.wantInFirst))
			}
			if code := first.stop(t); code != 0 {
				t.Fatalf("first listen exited %d", code)
			}
			if got := len(splitLines(first.stdout.String())); got != tc.wantInFirst {
				t.Fatalf("first listen printed %d events, want %d", got, tc.wantInFirst)
			}
			saved, err := os.ReadFile(cursor)
			if err != nil {
				t.Fatalf("cursor file: %v", err)
			}
			if len(seen) > 0 && strings.TrimSpace(string(saved)) != strconv.FormatUint(seen[len(seen)-1].GetSequence(), 10) {
				t.Errorf("cursor file holds %q, want the last sequence printed %d", saved, seen[len(seen)-1].GetSequence())
			}

			for _, typ := range tc.between {
				post(t, srv, typ, job)
			}

			second := listen(t, runOpts{}, with(args, tc.firstArgs...)...)
			missed := parseEvents(t, second.waitLines(t, len(tc.between)))
			post(t, srv, "completed", job+"-after")
			if code := second.stop(t); code != 0 {
				t.Fatalf("second listen exited %d", code)
			}
			if !strings.Contains(second.stderr.String(), "Resuming after sequence") {
				t.Errorf("second run did not say it resumes: %s", second.stderr.String())
			}

			// Exactly the events of the job in the log, in order, split
			// between the two runs without gap or overlap.
			got := sequences(append(seen, missed...))
			want := sequences(parseEvents(t, klingctl(t, with(conn(srv), "events", "list", "--job", job, "--json")...).must(t).lines()))
			if !slices.Equal(got, want) {
				t.Fatalf("runs printed sequences %s, the log holds %s", fmtSeqs(got), fmtSeqs(want))
			}
			for i, ev := range missed {
				if ev.GetType().String() != "EVENT_TYPE_VIDEO_"+strings.ToUpper(tc.between[i]) {
					t.Errorf("missed event %d is %v, want %s", i, ev.GetType(), tc.between[i])
				}
			}
		})
	}
}

// TestListenReconnectsAfterRestart: when the server restarts, listen
// reconnects and resumes after the last event it printed.
func TestListenReconnectsAfterRestart(t *testing.T) {
	dataDir := t.TempDir()
	first := startServer(t, dataDir)
	addr := first.GRPC
	l := listen(t, runOpts{}, "--server", addr, "--token", apptest.AdminToken, "--json", "--job", "restart")
	post(t, first, "created", "restart")
	l.waitLines(t, 1)

	first.Stop(t)
	second := startServer(t, dataDir, onGRPCAddr(t, addr))
	post(t, second, "processing", "restart")
	post(t, second, "completed", "restart")
	evs := parseEvents(t, l.waitLines(t, 3))
	l.waitStderr(t, "Reconnected")
	if code := l.stop(t); code != 0 {
		t.Fatalf("listen exited %d", code)
	}
	if len(splitLines(l.stdout.String())) != 3 {
		t.Fatalf("printed more than the 3 events: %s", l.stdout.String())
	}
	s := sequences(evs)
	if !(s[0] < s[1] && s[1] < s[2]) {
		t.Errorf("sequences %s are not strictly increasing", fmtSeqs(s))
	}
	want := []gatewayv1.EventType{gatewayv1.EventType_EVENT_TYPE_VIDEO_CREATED, gatewayv1.EventType_EVENT_TYPE_VIDEO_PROCESSING, gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED}
	for i, ev := range evs {
		if ev.GetType() != want[i] {
			t.Errorf("event %d is %v, want %v", i, ev.GetType(), want[i])
		}
	}
	if !strings.Contains(l.stderr.String(), "Connection lost") {
		t.Errorf("no reconnect notice on stderr: %s", l.stderr.String())
	}
}

// skipIfUnimplemented skips while WebhookService is not served yet.
func skipIfUnimplemented(t *testing.T, r result) {
	t.Helper()
	if r.code != 0 && strings.Contains(r.stderr, "(UNIMPLEMENTED)") {
		t.Skipf("WebhookService is not implemented by the server yet: %s", r.stderr)
	}
}

// TestListenRejectedStart: a start position the server refuses ends listen
// at once with the server's reason and a hint, not a reconnect loop.
func TestListenRejectedStart(t *testing.T) {
	srv := startServer(t, "")
	r := klingctl(t, with(conn(srv), "listen", "--after", "999999")...)
	if r.code != 1 || !strings.Contains(r.stderr, "(OUT_OF_RANGE)") || !strings.Contains(r.stderr, "--from-beginning") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}
