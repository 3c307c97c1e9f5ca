package cli_test

import (
	"regexp"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

var secretLine = regexp.MustCompile(`(?m)^Secret \(shown once, store it now\): (\S+)$`)
var callbackLine = regexp.MustCompile(`(?m)^Callback URL \(give it to Kling as callback_url\): (\S+)$`)

// TestWebhooksRoundTrip drives a registration through its whole life with
// the webhooks commands, checking each step against what deliveries posted
// with `klingctl post` experience.
func TestWebhooksRoundTrip(t *testing.T) {
	srv := startServer(t, "")
	c := conn(srv)

	created := klingctl(t, with(c, "webhooks", "create", "--id", "cli-std", "--name", "CLI standard", "--scheme", "standard",
		"--types", "completed,failed", "--tolerance", "2m")...)
	skipIfUnimplemented(t, created)
	created.must(t)
	m := secretLine.FindStringSubmatch(created.stdout)
	cb := callbackLine.FindStringSubmatch(created.stdout)
	if m == nil || cb == nil || !strings.HasPrefix(m[1], "whsec_") {
		t.Fatalf("create did not print the secret and callback URL clearly:\n%s", created.stdout)
	}
	secret, callback := m[1], cb[1]

	// postAs delivers a v2 callback of typ to the registration and returns
	// the run.
	postAs := func(t *testing.T, typ, secret string, extra ...string) result {
		t.Helper()
		body := klingctl(t, "example", typ, "--format", "v2").must(t).stdout
		return klingctlWith(t, runOpts{stdin: body}, with([]string{"post", "-", "--url", callback, "--scheme", "standard", "--secret", secret}, extra...)...)
	}

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"get as JSON", func(t *testing.T) {
			r := klingctl(t, with(c, "webhooks", "get", "cli-std", "--json")...).must(t)
			w := &gatewayv1.Webhook{}
			if err := protojson.Unmarshal([]byte(r.stdout), w); err != nil {
				t.Fatalf("not a protojson Webhook: %v\n%s", err, r.stdout)
			}
			if w.GetDisplayName() != "CLI standard" || w.GetSignatureScheme() != gatewayv1.SignatureScheme_SIGNATURE_SCHEME_STANDARD_WEBHOOKS ||
				len(w.GetEventTypes()) != 2 || !w.GetActive() || w.GetSignatureTolerance().AsDuration().String() != "2m0s" {
				t.Errorf("stored registration differs: %v", w)
			}
			if strings.Contains(r.stdout, secret) {
				t.Errorf("get leaked the secret")
			}
		}},
		{"get as text", func(t *testing.T) {
			r := klingctl(t, with(c, "webhooks", "get", "cli-std")...).must(t)
			for _, want := range []string{"ID:", "cli-std", "standard", "video.completed,video.failed", "Tolerance:", "2m0s", callback} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("get lacks %q:\n%s", want, r.stdout)
				}
			}
		}},
		{"deliveries verify with the secret", func(t *testing.T) {
			if r := postAs(t, "completed", secret); r.code != 0 || !strings.Contains(r.stdout, "HTTP 200") {
				t.Errorf("post exited %d: %s %s", r.code, r.stdout, r.stderr)
			}
		}},
		{"list shows a table", func(t *testing.T) {
			r := klingctl(t, with(c, "webhooks", "list")...).must(t)
			lines := r.lines()
			if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(r.stdout, "cli-std") || !strings.Contains(r.stdout, "default") {
				t.Errorf("unexpected table:\n%s", r.stdout)
			}
		}},
		{"list as JSON lines, every page", func(t *testing.T) {
			r := klingctl(t, with(c, "webhooks", "list", "--json", "--page-size", "1")...).must(t)
			var ids []string
			for _, l := range r.lines() {
				w := &gatewayv1.Webhook{}
				if err := protojson.Unmarshal([]byte(l), w); err != nil {
					t.Fatalf("not a protojson Webhook: %v\n%s", err, l)
				}
				ids = append(ids, w.GetId())
			}
			if strings.Join(ids, ",") != "cli-std,default" {
				t.Errorf("listed %v", ids)
			}
		}},
		{"update sends a mask of the flags given", func(t *testing.T) {
			r := klingctl(t, with(c, "webhooks", "update", "cli-std", "--active=false", "--json")...).must(t)
			w := &gatewayv1.Webhook{}
			if err := protojson.Unmarshal([]byte(r.stdout), w); err != nil {
				t.Fatal(err)
			}
			if w.GetActive() || w.GetDisplayName() != "CLI standard" || len(w.GetEventTypes()) != 2 {
				t.Errorf("update changed more or less than active: %v", w)
			}
			if r := postAs(t, "completed", secret); r.code == 0 || !strings.Contains(r.stdout, "403") {
				t.Errorf("inactive registration accepted a delivery: %s", r.stdout)
			}
			r = klingctl(t, with(c, "webhooks", "update", "cli-std", "--active", "--types", "", "--name", "renamed")...).must(t)
			if !strings.Contains(r.stdout, "renamed") || !regexp.MustCompile(`Event types:\s+all\n`).MatchString(r.stdout) {
				t.Errorf("update output:\n%s", r.stdout)
			}
		}},
		{"rotate-secret without grace revokes the old secret", func(t *testing.T) {
			r := klingctl(t, with(c, "webhooks", "rotate-secret", "cli-std", "--grace", "0s")...).must(t)
			m := secretLine.FindStringSubmatch(r.stdout)
			if m == nil || m[1] == secret {
				t.Fatalf("no new secret printed:\n%s", r.stdout)
			}
			if r := postAs(t, "failed", secret); r.code != 1 || !strings.Contains(r.stdout, "401") {
				t.Errorf("old secret: exit %d %s", r.code, r.stdout)
			}
			if r := postAs(t, "failed", m[1]); r.code != 0 {
				t.Errorf("new secret: exit %d %s %s", r.code, r.stdout, r.stderr)
			}
		}},
		{"send-test", func(t *testing.T) {
			r := klingctl(t, with(c, "webhooks", "send-test", "cli-std", "--json")...).must(t)
			ev := parseEvents(t, r.lines())[0]
			if !ev.GetTest() || ev.GetWebhookId() != "cli-std" || ev.GetType() != gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED {
				t.Errorf("unexpected test event %v", ev)
			}
		}},
		{"delete, then get is NotFound", func(t *testing.T) {
			r := klingctl(t, with(c, "webhooks", "delete", "cli-std")...).must(t)
			if !strings.Contains(r.stdout, "Deleted webhook cli-std") {
				t.Errorf("delete printed %q", r.stdout)
			}
			r = klingctl(t, with(c, "webhooks", "get", "cli-std")...)
			if r.code != 1 || r.stderr != "klingctl: webhook not found (NOT_FOUND)\n" {
				t.Errorf("get after delete: exit %d, stderr %q", r.code, r.stderr)
			}
		}},
	}
	for _, s := range steps {
		t.Run(s.name, s.run)
	}
}

// TestWebhooksSchemes creates one registration per scheme, imported or
// generated, and posts to each the way Kling would.
func TestWebhooksSchemes(t *testing.T) {
	srv := startServer(t, "")
	cases := []struct {
		name, scheme, secret string
	}{
		{name: "kling imported", scheme: "kling", secret: "imported-kling-secret-0123456789"},
		{name: "standard generated", scheme: "standard"},
		{name: "token generated", scheme: "token"},
		{name: "enum names accepted", scheme: "SIGNATURE_SCHEME_URL_TOKEN"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := with(conn(srv), "webhooks", "create", "--scheme", tc.scheme, "--json")
			if tc.secret != "" {
				args = append(args, "--secret", tc.secret)
			}
			r := klingctl(t, args...)
			skipIfUnimplemented(t, r)
			r.must(t)
			resp := &gatewayv1.CreateWebhookResponse{}
			if err := protojson.Unmarshal([]byte(r.stdout), resp); err != nil {
				t.Fatalf("not a protojson CreateWebhookResponse: %v\n%s", err, r.stdout)
			}
			if tc.secret != "" && resp.GetSecret() != tc.secret {
				t.Errorf("imported secret not kept")
			}
			scheme := strings.ToLower(strings.TrimPrefix(tc.scheme, "SIGNATURE_SCHEME_URL_"))
			body := klingctl(t, "example", "completed", "--format", "legacy", "--job", "scheme-"+string(rune('a'+i))).must(t).stdout
			p := klingctlWith(t, runOpts{stdin: body, vars: map[string]string{"KLINGCTL_SECRET": resp.GetSecret()}},
				"post", "-", "--url", resp.GetWebhook().GetIngestUrl(), "--scheme", scheme)
			if p.code != 0 || !strings.Contains(p.stdout, "HTTP 200") {
				t.Errorf("post: exit %d\n%s%s", p.code, p.stdout, p.stderr)
			}
		})
	}
}
