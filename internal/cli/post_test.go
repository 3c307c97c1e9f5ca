package cli_test

import (
	"strings"
	"testing"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/normalize"
)

func TestPost(t *testing.T) {
	srv := startServer(t, "")
	url := srv.HTTPURL + "/webhooks/klingai"
	dir := t.TempDir()
	file := writeFile(t, dir, "completed.json", klingctl(t, "example", "completed", "--job", "post-file").must(t).stdout)
	cases := []struct {
		name       string
		opts       runOpts
		args       []string
		wantCode   int
		wantStdout []string
		wantStderr string
	}{
		{
			name:       "file signed with --secret",
			args:       []string{"post", file, "--url", url, "--secret", klingSecret},
			wantStdout: []string{"HTTP 200 OK", `"received"`},
		},
		{
			name:       "stdin signed with KLINGCTL_SECRET",
			opts:       runOpts{stdin: `{"event":"video.created","timestamp":"2026-11-26T12:00:00Z","data":{"job_id":"post-stdin","status":"pending"}}`, vars: map[string]string{"KLINGCTL_SECRET": klingSecret}},
			args:       []string{"post", "-", "--url", url},
			wantStdout: []string{"HTTP 200 OK"},
		},
		{
			name:       "the gateway named by KLINGFAN_HTTP_URL",
			opts:       runOpts{vars: map[string]string{"KLINGFAN_HTTP_URL": srv.HTTPURL + "/"}},
			args:       []string{"post", file, "--secret", klingSecret},
			wantStdout: []string{"HTTP 200 OK"},
		},
		{
			name:       "wrong secret shows the 401 and fails",
			args:       []string{"post", file, "--url", url, "--secret", "not-the-secret"},
			wantCode:   1,
			wantStdout: []string{"HTTP 401 Unauthorized", `"error"`},
			wantStderr: "klingctl: the gateway answered 401 Unauthorized\n",
		},
		{
			name:       "no secret is a usage error",
			args:       []string{"post", file, "--url", url},
			wantCode:   2,
			wantStderr: "KLINGCTL_SECRET",
		},
		{
			name:       "standard scheme needs a whsec_ secret",
			args:       []string{"post", file, "--url", url, "--scheme", "standard", "--secret", "!!"},
			wantCode:   2,
			wantStderr: "whsec_",
		},
		{
			name:       "missing file",
			args:       []string{"post", dir + "/nope.json", "--url", url, "--secret", klingSecret},
			wantCode:   1,
			wantStderr: "klingctl: reading the payload:",
		},
		{
			name:       "unreachable gateway",
			args:       []string{"post", file, "--url", "http://" + closedAddr(t) + "/webhooks/klingai?token=s3cret", "--secret", klingSecret},
			wantCode:   1,
			wantStderr: "connection refused",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := klingctlWith(t, tc.opts, tc.args...)
			if r.code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tc.wantCode, r.stdout, r.stderr)
			}
			for _, want := range tc.wantStdout {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("stdout lacks %q: %q", want, r.stdout)
				}
			}
			if !strings.Contains(r.stderr, tc.wantStderr) {
				t.Errorf("stderr lacks %q: %q", tc.wantStderr, r.stderr)
			}
			if strings.Contains(r.stderr, "s3cret") {
				t.Errorf("the URL token leaked into an error: %q", r.stderr)
			}
		})
	}
}

// TestExampleParsesBack: every format × type example is a payload the
// gateway's own parser reads back as that format, type and job.
func TestExampleParsesBack(t *testing.T) {
	formats := map[string]gatewayv1.SourceFormat{
		"seed":   gatewayv1.SourceFormat_SOURCE_FORMAT_KLING_EVENT,
		"legacy": gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_LEGACY,
		"v2":     gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_V2,
	}
	types := map[string]gatewayv1.EventType{
		"created":                    gatewayv1.EventType_EVENT_TYPE_VIDEO_CREATED,
		"video.processing":           gatewayv1.EventType_EVENT_TYPE_VIDEO_PROCESSING,
		"EVENT_TYPE_VIDEO_COMPLETED": gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED,
		"failed":                     gatewayv1.EventType_EVENT_TYPE_VIDEO_FAILED,
		"Cancelled":                  gatewayv1.EventType_EVENT_TYPE_VIDEO_CANCELLED,
	}
	for fname, format := range formats {
		for tname, typ := range types {
			t.Run(fname+"/"+tname, func(t *testing.T) {
				r := klingctl(t, "example", tname, "--format", fname, "--job", "ex-1").must(t)
				ev, err := normalize.Parse([]byte(r.stdout))
				if err != nil {
					t.Fatalf("normalize.Parse: %v\n%s", err, r.stdout)
				}
				if ev.GetSourceFormat() != format || ev.GetType() != typ || ev.GetJob().GetJobId() != "ex-1" {
					t.Errorf("parsed as %v %v job %q", ev.GetSourceFormat(), ev.GetType(), ev.GetJob().GetJobId())
				}
			})
		}
	}
	t.Run("fresh job ids", func(t *testing.T) {
		a, b := klingctl(t, "example", "completed").must(t), klingctl(t, "example", "completed").must(t)
		if a.stdout == b.stdout {
			t.Errorf("two examples without --job are identical, so the second would be deduplicated")
		}
	})
}
