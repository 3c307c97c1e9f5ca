package console_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
)

// TestConsoleInBrowser walks the console's pages in headless Chromium
// against a real server, the way an operator would: one browser and one
// server for every step, so the suite stays fast.
func TestConsoleInBrowser(t *testing.T) {
	srv := startServer(t)
	p := newPage(t, srv)

	t.Run("sign in by fragment, token leaves the address bar", func(t *testing.T) {
		p.t = t
		p.open("/console/#token=" + apptest.AdminToken)
		p.waitFor("the live tail to be live", `document.querySelector("[data-testid=conn]")?.textContent === "live"`, 10*time.Second)
		if href := eval[string](p, "location.href"); strings.Contains(href, apptest.AdminToken) {
			t.Errorf("token still in the address bar: %s", href)
		}
		if got := eval[string](p, `sessionStorage.getItem("klingfan.token")`); got != apptest.AdminToken {
			t.Errorf("sessionStorage token = %q", got)
		}
		if got := eval[string](p, "document.cookie"); got != "" {
			t.Errorf("cookies set: %q", got)
		}
		if !strings.Contains(srv.Stdout.String(), srv.HTTPURL+"/console/") {
			t.Errorf("the start-up banner does not print the console address:\n%s", srv.Stdout.String())
		}
	})

	t.Run("a posted delivery appears in the live tail within a second", func(t *testing.T) {
		p.t = t
		start := time.Now()
		postKling(t, srv, "video.completed", "job-x", map[string]any{"video_url": "https://cdn.example.com/x.mp4", "duration": 5.1})
		took := p.waitFor("job-x in the tail", `document.querySelector('[data-testid=events] a[data-job="job-x"]')`, time.Second)
		t.Logf("job-x shown %s after the post returned (%s after it started)", took, time.Since(start))
		// Newest on top: a second delivery goes above the first.
		postKling(t, srv, "video.processing", "job-y", nil)
		p.waitFor("job-y on top", `document.querySelector('[data-testid=events] a')?.dataset.job === "job-y"`, time.Second)
	})

	t.Run("an event page shows the raw body", func(t *testing.T) {
		p.t = t
		p.click(`[data-testid=events] a[data-job="job-x"]`)
		p.waitFor("the raw body", `document.querySelector("#raw-body")?.textContent.includes('"job_id": "job-x"')`, 5*time.Second)
		if !strings.HasPrefix(eval[string](p, "location.hash"), "#/events/") {
			t.Errorf("hash = %q, want #/events/N", eval[string](p, "location.hash"))
		}
		if norm := p.text("#normalized"); !strings.Contains(norm, `"jobId": "job-x"`) || strings.Contains(norm, "rawBody") {
			t.Errorf("normalized event: %s", norm)
		}
		// Headless Chromium may refuse the clipboard; then the text is
		// selected for the user to copy. Either way the button says so.
		p.click(`button[aria-label="Copy raw body"]`)
		p.waitFor("the copy button's answer", `/Copied|Selected/.test(document.querySelector('button[aria-label="Copy raw body"]').textContent)`, 2*time.Second)
	})

	t.Run("a job page shows its status", func(t *testing.T) {
		p.t = t
		p.open("/console/#/jobs/job-x")
		p.waitFor("job-x's status", `document.querySelector("[data-testid=job-status]")?.textContent.includes("succeeded")`, 5*time.Second)
		// The payload's URLs are not fetched until the user asks.
		if eval[bool](p, `!!document.querySelector(".output video, .output img, .output audio")`) {
			t.Error("an output preview loaded before it was asked for")
		}
		p.click(`[data-testid=preview]`)
		p.waitFor("job-x's video preview", `document.querySelector("video[src='https://cdn.example.com/x.mp4']")`, time.Second)
		p.waitFor("job-x's timeline", `document.querySelectorAll(".timeline li").length === 1`, time.Second)
	})

	t.Run("a job page follows the job as it changes", func(t *testing.T) {
		p.t = t
		postKling(t, srv, "video.processing", "job-live", map[string]any{"progress": 40})
		p.open("/console/#/jobs/job-live")
		p.waitFor("job-live processing and followed", `document.querySelector("[data-testid=job-status]")?.textContent.includes("processing") && document.querySelector("[data-testid=job-live]")?.textContent === "live"`, 5*time.Second)
		postKling(t, srv, "video.completed", "job-live", map[string]any{"video_url": "https://cdn.example.com/live.mp4"})
		took := p.waitFor("job-live succeeded without a reload", `document.querySelector("[data-testid=job-status]")?.textContent.includes("succeeded") && document.querySelectorAll(".timeline li").length === 2`, 2*time.Second)
		t.Logf("the job page showed the completion %s after the post returned", took)
	})

	t.Run("filters narrow the tail", func(t *testing.T) {
		p.t = t
		p.open("/console/#/")
		p.waitFor("the tail", `document.querySelector('[data-testid=events] a[data-job="job-x"]')`, 5*time.Second)
		p.typeInto("form.filters input[list]", "default")
		eval[bool](p, `(document.querySelector("form.filters label:nth-of-type(3) input").focus(), true)`)
		p.typeInto("form.filters label:nth-of-type(3) input", "job-y")
		p.click("form.filters button[type=submit]")
		p.waitFor("only job-y", `(() => { const rows = [...document.querySelectorAll("[data-testid=events] a")]; return rows.length > 0 && rows.every((a) => a.dataset.job === "job-y"); })()`, 5*time.Second)
		postKling(t, srv, "video.completed", "job-y", nil)
		postKling(t, srv, "video.completed", "job-other", nil)
		p.waitFor("job-y's new event", `document.querySelectorAll('[data-testid=events] a[data-job="job-y"]').length === 2`, 5*time.Second)
		if n := eval[int](p, `document.querySelectorAll('[data-testid=events] a:not([data-job="job-y"])').length`); n != 0 {
			t.Errorf("%d events of other jobs shown under a job filter", n)
		}
		p.click("form.filters button[type=button]") // Clear
		p.waitFor("every job again", `document.querySelector('[data-testid=events] a[data-job="job-other"]')`, 5*time.Second)
	})

	// The server may not know jobKinds and filter yet (they belong to the
	// Kling coverage work), so the console must send them only when set.
	t.Run("kind and CEL filter are sent only when set", func(t *testing.T) {
		p.t = t
		eval[bool](p, `(() => { window.sent = []; const f = window.fetch; window.fetch = (u, i) => { window.sent.push(String(u)); return f(u, i); }; return true; })()`)
		lastSubscribe := `(() => { const u = window.sent.filter((s) => s.startsWith("/v1/events:subscribe")).at(-1); return u ? Object.fromEntries(new URL(u, location.href).searchParams) : null; })()`
		p.click(".page-head button[aria-pressed]") // pause and resume: one new subscribe call
		p.click(".page-head button[aria-pressed]")
		p.waitFor("a subscribe call", lastSubscribe, 5*time.Second)
		if got := eval[map[string]string](p, lastSubscribe); got["filter"] != "" || got["jobKinds"] != "" {
			t.Errorf("unset filters were sent: %v", got)
		}
		p.typeInto("form.filters label.wide input", `event.job.job_id == "job-x"`)
		p.run("choose a kind", chromedp.SetValue(chromedp.CSS("form.filters label:nth-of-type(2) select"), "JOB_KIND_VIDEO"))
		eval[bool](p, `(document.querySelector("form.filters label:nth-of-type(2) select").dispatchEvent(new Event("change", {bubbles: true})), true)`)
		p.click("form.filters button[type=submit]")
		p.waitFor("a subscribe call with both", lastSubscribe+`?.filter === 'event.job.job_id == "job-x"' && `+lastSubscribe+`?.jobKinds === "JOB_KIND_VIDEO"`, 5*time.Second)
		p.click("form.filters button[type=button]") // Clear
		p.waitFor("live again", `document.querySelector("[data-testid=conn]").textContent === "live"`, 5*time.Second)
	})

	t.Run("pause, then resume after the last event shown", func(t *testing.T) {
		p.t = t
		p.click(".page-head button[aria-pressed]")
		p.waitFor("paused", `document.querySelector("[data-testid=conn]").textContent === "paused"`, 2*time.Second)
		postKling(t, srv, "video.processing", "job-while-paused", nil)
		if eval[bool](p, `!!document.querySelector('[data-testid=events] a[data-job="job-while-paused"]')`) {
			t.Errorf("a paused tail showed a new event")
		}
		p.click(".page-head button[aria-pressed]")
		p.waitFor("the event posted while paused", `document.querySelector('[data-testid=events] a[data-job="job-while-paused"]')`, 5*time.Second)
		p.waitFor("live again", `document.querySelector("[data-testid=conn]").textContent === "live"`, 2*time.Second)
	})

	t.Run("keyboard: Tab reaches an event, Enter opens it", func(t *testing.T) {
		p.t = t
		eval[bool](p, `(document.activeElement?.blur(), window.scrollTo(0, 0), true)`)
		reached := false
		for range 40 {
			p.run("press Tab", chromedp.KeyEvent(kb.Tab))
			if eval[bool](p, `!!document.activeElement?.closest("[data-testid=events]")`) {
				reached = true
				break
			}
		}
		if !reached {
			t.Fatalf("40 Tab presses did not reach an event row; focus is on %s", eval[string](p, `document.activeElement?.outerHTML.slice(0, 200) || "nothing"`))
		}
		p.run("press Enter", chromedp.KeyEvent(kb.Enter))
		p.waitFor("the event page", `location.hash.startsWith("#/events/") && document.querySelector("#raw-body")`, 5*time.Second)
	})

	var firstSecret string
	t.Run("create a registration and see its secret once", func(t *testing.T) {
		p.t = t
		p.open("/console/#/webhooks")
		p.waitFor("the create form", `document.querySelector("input[name=webhook-id]")`, 5*time.Second)
		p.typeInto("input[name=webhook-id]", "orders")
		p.typeInto("input[name=display-name]", "Orders service")
		p.click("form.create button[type=submit]")
		p.waitFor("the secret", `document.querySelector("[data-testid=secret]")?.textContent.length > 10`, 5*time.Second)
		firstSecret = p.text("[data-testid=secret]")
		if box := p.text("[data-testid=secret-once]"); !strings.Contains(box, "only once") || !strings.Contains(box, "/webhooks/kling/orders") {
			t.Errorf("secret box lacks the warning or the callback URL: %s", box)
		}
		p.click("[data-testid=secret-once] button.primary")
		p.waitFor("the secret box to close", `!document.querySelector("[data-testid=secret-once]")`, time.Second)
		p.open("/console/#/")
		p.open("/console/#/webhooks")
		p.waitFor("the orders card", `document.querySelector('[data-webhook="orders"]')`, 5*time.Second)
		if html := eval[string](p, "document.documentElement.outerHTML"); strings.Contains(html, firstSecret) {
			t.Errorf("the secret is shown again after the page was reopened")
		}
	})

	t.Run("rotate the secret with a grace period", func(t *testing.T) {
		p.t = t
		p.click(`[data-webhook="orders"] button[aria-label^="Rotate"]`)
		p.waitFor("the rotate dialog", `document.querySelector("dialog[open] select[name=grace]")`, 2*time.Second)
		p.click("dialog[open] button[type=submit]")
		p.waitFor("the new secret", `document.querySelector("[data-testid=secret]")?.textContent.length > 10`, 5*time.Second)
		if second := p.text("[data-testid=secret]"); second == firstSecret {
			t.Errorf("rotation showed the old secret")
		}
		p.waitFor("the grace period end", `document.querySelector("[data-testid=secret-once]").textContent.includes("keeps verifying until")`, time.Second)
		p.click("[data-testid=secret-once] button.primary")
	})

	t.Run("send a test event and see it in the tail", func(t *testing.T) {
		p.t = t
		p.click(`[data-webhook="orders"] button[aria-label^="Send a test event"]`)
		p.waitFor("the test event notice", `document.querySelector("[data-testid=test-sent] a")`, 5*time.Second)
		seq := strings.TrimPrefix(p.text("[data-testid=test-sent] a"), "#")
		p.click(`[data-testid=test-sent] a[href="#/"]`)
		p.waitFor("test event #"+seq+" in the tail", fmt.Sprintf(`document.querySelector('[data-testid=events] a[data-sequence="%s"]')`, seq), 5*time.Second)
	})

	t.Run("deactivate and delete with confirmation", func(t *testing.T) {
		p.t = t
		p.open("/console/#/webhooks")
		p.waitFor("the orders card", `document.querySelector('[data-webhook="orders"]')`, 5*time.Second)
		p.click(`[data-webhook="orders"] button[aria-label="Deactivate orders"]`)
		p.waitFor("orders inactive", `document.querySelector('[data-webhook="orders"] .badge')?.textContent === "inactive"`, 5*time.Second)
		p.click(`[data-webhook="orders"] button[aria-label="Delete orders"]`)
		p.waitFor("the delete dialog", `document.querySelector("dialog[open] button.danger")`, 2*time.Second)
		p.click("dialog[open] button.danger")
		p.waitFor("orders gone", `!document.querySelector('[data-webhook="orders"]') && document.querySelector('[data-webhook="default"]')`, 5*time.Second)
	})

	t.Run("consumer groups: counters, dead letters, redrive, seek", func(t *testing.T) {
		p.t = t
		testGroupsPage(t, p, srv)
	})

	t.Run("create a job from a JSON body", func(t *testing.T) {
		p.t = t
		hooks := gatewayv1.NewWebhookServiceClient(srv.DialAdmin(t))
		if _, err := hooks.CreateWebhook(t.Context(), &gatewayv1.CreateWebhookRequest{
			WebhookId: "kling-jobs", Webhook: &gatewayv1.Webhook{SignatureScheme: gatewayv1.SignatureScheme_SIGNATURE_SCHEME_URL_TOKEN},
		}); err != nil {
			t.Fatal(err)
		}
		p.open("/console/#/jobs")
		p.waitFor("the create form", `document.querySelector("[data-testid=create-job] summary")`, 5*time.Second)
		p.click("[data-testid=create-job] summary")
		p.typeInto("[data-testid=create-job] input[name=webhook]", "kling-jobs")
		// A body that is not JSON is refused in the page, before any call.
		eval[bool](p, `(() => { const b = document.querySelector("[data-testid=create-job] textarea[name=body]"); b.value = ""; b.dispatchEvent(new Event("input", {bubbles: true})); return true; })()`)
		p.typeInto("[data-testid=create-job] textarea[name=body]", `{"prompt": "a cat"`)
		p.click("[data-testid=create-job] button[type=submit]")
		p.waitFor("the JSON error", `document.querySelector("[data-testid=create-job] .error")?.textContent.includes("not JSON")`, 2*time.Second)
		p.typeInto("[data-testid=create-job] textarea[name=body]", `}`)
		p.click("[data-testid=create-job] button[type=submit]")
		p.waitFor("the new job's page, submitted", `location.hash === "#/jobs/console-task-1" && document.querySelector("[data-testid=job-status]")?.textContent.includes("submitted")`, 5*time.Second)
		if ext := p.text("[data-testid=job-state]"); !strings.Contains(ext, "console-") {
			t.Errorf("the job page does not show the request id as the external id: %s", ext)
		}
	})

	t.Run("jobs and groups pages answer, or say the API is missing", func(t *testing.T) {
		p.t = t
		for _, c := range []struct{ route, ready string }{
			{"#/jobs", `document.querySelector("table a[href='#/jobs/job-x']") || document.body.textContent.includes("Jobs are not available on this server")`},
			{"#/groups", `document.querySelector(".hooks, .empty") || document.body.textContent.includes("Consumer groups are not available on this server")`},
		} {
			p.open("/console/" + c.route)
			p.waitFor(c.route, c.ready, 5*time.Second)
			if e := p.text(".error"); e != "" {
				t.Errorf("%s shows an error: %s", c.route, e)
			}
		}
	})

	t.Run("status bar", func(t *testing.T) {
		p.t = t
		p.waitFor("readiness", `document.querySelector("[data-testid=readiness]")?.textContent === "ready"`, 5*time.Second)
		p.waitFor("log bounds", `/^#1 … #\d+$/.test(document.querySelector("[data-testid=bounds]")?.textContent)`, 5*time.Second)
		p.waitFor("stream count", `/^\d+$/.test(document.querySelector("[data-testid=streams]")?.textContent)`, 5*time.Second)
	})

	t.Run("every control has an accessible name", func(t *testing.T) {
		p.t = t
		for _, c := range []struct{ route, ready string }{
			{"#/", `document.querySelector("[data-testid=events] a")`},
			{"#/events/1", `document.querySelector("#raw-body")`},
			{"#/jobs", `document.querySelector("table, .notice")`},
			{"#/jobs/job-x", `document.querySelector("[data-testid=job-status]")`},
			{"#/webhooks", `document.querySelector("[data-webhook=default]")`},
			{"#/groups", `document.querySelector(".hooks, .empty, .notice")`},
		} {
			p.open("/console/" + c.route)
			p.waitFor(c.route, c.ready, 5*time.Second)
			bad, checked := p.unnamedControls()
			if checked < 7 { // the header alone has seven
				t.Errorf("%s: only %d controls in the accessibility tree; is it read?", c.route, checked)
			}
			if len(bad) > 0 {
				t.Errorf("%s: controls without an accessible name: %v", c.route, bad)
			}
			t.Logf("%s: %d controls, all named", c.route, checked)
		}
	})

	t.Run("a link with another token asks before signing the tab in with it", func(t *testing.T) {
		p.t = t
		p.open("/console/#/webhooks?token=" + subscribeToken)
		p.waitFor("the question", `document.querySelector("[data-testid=link-token]")`, 5*time.Second)
		if got := eval[string](p, `sessionStorage.getItem("klingfan.token")`); got != apptest.AdminToken {
			t.Errorf("the link's token was adopted before the user said so: sessionStorage token = %q", got)
		}
		if href := eval[string](p, "location.href"); strings.Contains(href, subscribeToken) {
			t.Errorf("the link's token is still in the address bar: %s", href)
		}
		p.click(`[data-testid=link-token-keep]`)
		p.waitFor("the question gone", `!document.querySelector("[data-testid=link-token]")`, 2*time.Second)
		if got := eval[string](p, `sessionStorage.getItem("klingfan.token")`); got != apptest.AdminToken {
			t.Errorf("after keeping: sessionStorage token = %q", got)
		}
	})

	t.Run("a 403 names the missing scope", func(t *testing.T) {
		p.t = t
		p.open("/console/#/webhooks?token=" + subscribeToken)
		p.waitFor("the question", `document.querySelector("[data-testid=link-token]")`, 5*time.Second)
		p.click(`[data-testid=link-token-use]`)
		p.waitFor("the scope error", `document.querySelector(".error")?.textContent.includes('lacks the "admin" scope')`, 5*time.Second)
		// The same token may follow the log.
		p.open("/console/#/")
		p.waitFor("the tail with a subscribe token", `document.querySelector("[data-testid=conn]")?.textContent === "live"`, 5*time.Second)
	})

	t.Run("a refused token sends you to sign in, and the field signs you in", func(t *testing.T) {
		p.t = t
		p.open("/console/#/jobs/job-x?token=not-a-token")
		p.waitFor("the question", `document.querySelector("[data-testid=link-token]")`, 5*time.Second)
		p.click(`[data-testid=link-token-use]`)
		p.waitFor("the sign-in form", `document.querySelector("#token")`, 5*time.Second)
		if !strings.Contains(p.text("main"), "Sign in again") {
			t.Errorf("sign-in page does not say why: %s", p.text("main"))
		}
		if h := eval[string](p, "location.hash"); h != "#/jobs/job-x" {
			t.Errorf("hash after reading the token = %q, want #/jobs/job-x", h)
		}
		p.typeInto("#token", apptest.AdminToken)
		p.click("form button[type=submit]")
		p.waitFor("job-x's status after sign-in", `document.querySelector("[data-testid=job-status]")?.textContent.includes("succeeded")`, 5*time.Second)
	})

	// The detector itself: an inline script is a CSP violation the test
	// must see, or it could never fail on one.
	t.Run("a CSP violation is caught", func(t *testing.T) {
		p.t = t
		eval[bool](p, `(() => { const s = document.createElement("script"); s.textContent = "window.injected = 1"; document.body.append(s); return true; })()`)
		deadline := time.Now().Add(5 * time.Second)
		for {
			probs := p.takeProblems()
			if len(probs) > 0 && strings.Contains(strings.Join(probs, "\n"), "Content Security Policy") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("an inline script ran or was refused silently: problems %v", probs)
			}
			time.Sleep(10 * time.Millisecond) // polling the collector
		}
		if eval[bool](p, "window.injected === 1") {
			t.Errorf("the inline script ran despite the CSP")
		}
	})
}
