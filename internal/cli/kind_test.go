package cli_test

import (
	"strings"
	"testing"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/normalize"
)

// TestExampleEveryKind: `klingctl example completed --kind K --shape S`
// prints, for every job family in every shape Kling sends it in, a payload
// the gateway reads back as that kind, and refuses the shapes Kling does
// not use for it.
func TestExampleEveryKind(t *testing.T) {
	kinds := map[string]gatewayv1.JobKind{
		"video": gatewayv1.JobKind_JOB_KIND_VIDEO, "image": gatewayv1.JobKind_JOB_KIND_IMAGE,
		"audio": gatewayv1.JobKind_JOB_KIND_AUDIO, "voice": gatewayv1.JobKind_JOB_KIND_VOICE,
		"element": gatewayv1.JobKind_JOB_KIND_ELEMENT, "JOB_KIND_SUBTITLE": gatewayv1.JobKind_JOB_KIND_SUBTITLE,
	}
	v2Only := map[string]bool{"JOB_KIND_SUBTITLE": true}
	for kname, kind := range kinds {
		for _, shape := range []string{"seed", "legacy", "v2"} {
			t.Run(kname+"/"+shape, func(t *testing.T) {
				r := klingctl(t, "example", "completed", "--kind", kname, "--shape", shape, "--job", "ex-k")
				if shape == "legacy" && v2Only[kname] {
					if r.code == 0 || !strings.Contains(r.stderr, "only in the new callback shape") {
						t.Fatalf("exit %d, stderr %q: want a usage error", r.code, r.stderr)
					}
					return
				}
				r.must(t)
				out, err := normalize.Normalize([]byte(r.stdout))
				if err != nil || out.Incomplete != nil {
					t.Fatalf("Normalize: %v, incomplete %v\n%s", err, out.Incomplete, r.stdout)
				}
				if got := out.Event.GetJob().GetKind(); got != kind || out.Event.GetJob().GetJobId() != "ex-k" {
					t.Errorf("kind %v job %q, want %v", got, out.Event.GetJob().GetJobId(), kind)
				}
			})
		}
	}
	if r := klingctl(t, "example", "completed", "--kind", "hologram"); r.code == 0 || !strings.Contains(r.stderr, `unknown job kind "hologram"`) {
		t.Errorf("unknown kind: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestListenKindAndFilter: listen --kind and --filter show only the
// matching events, and a bad --filter fails with its position.
func TestListenKindAndFilter(t *testing.T) {
	srv := startServer(t, "")
	postKind := func(kind, job string) {
		t.Helper()
		body := klingctl(t, "example", "completed", "--kind", kind, "--shape", "v2", "--job", job).must(t).stdout
		klingctlWith(t, runOpts{stdin: body}, "post", "-", "--url", srv.HTTPURL+"/webhooks/klingai", "--secret", klingSecret).must(t)
	}
	cases := []struct {
		name string
		args []string
	}{
		{"kind", []string{"--kind", "audio"}},
		{"filter", []string{"--filter", `event.job.audios.exists(a, a.mp3_url.endsWith(".mp3")) && event.job.billing[0].currency == "USD"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := listen(t, runOpts{}, with(conn(srv), append([]string{"--json"}, tc.args...)...)...)
			postKind("video", "kf-video-"+tc.name)
			postKind("voice", "kf-voice-"+tc.name)
			postKind("audio", "kf-audio-"+tc.name)
			lines := l.waitLines(t, 1)
			if code := l.stop(t); code != 0 {
				t.Errorf("listen exited %d", code)
			}
			evs := parseEvents(t, lines)
			if len(evs) != 1 || evs[0].GetJob().GetJobId() != "kf-audio-"+tc.name || evs[0].GetJob().GetAudios()[0].GetMp3Url() == "" {
				t.Fatalf("got %v, want only the audio job", evs)
			}
		})
	}
	r := klingctl(t, with(conn(srv), "listen", "--filter", "event.job.kind ==")...)
	if r.code == 0 || !strings.Contains(r.stderr, "line 1, column") {
		t.Errorf("bad filter: exit %d, stderr %q", r.code, r.stderr)
	}
}
