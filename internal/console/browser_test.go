package console_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/chromedp"

	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/config"
)

// klingSecret signs deliveries to POST /webhooks/klingai in these tests.
const klingSecret = "console-test-secret"

// findChromium returns the browser to drive. Without one the browser tests
// skip on a developer's machine, but fail in CI (CI=true), where .ci/run
// installs Debian's chromium.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed, and CI=true requires the browser tests: .ci/run installs it with apt-get install chromium")
	}
	t.Skip("chromium not installed: the console's browser tests need it (apt-get install chromium); skipping outside CI")
	return ""
}

// drainMarker is logged by the page at the end of a test to show that
// every console message before it has been collected.
const drainMarker = "klingfan-test: end of messages"

// page is one browser tab on the console, and what its console has said.
type page struct {
	t    *testing.T
	ctx  context.Context
	base string // the server's HTTP URL

	mu       sync.Mutex
	problems []string // JavaScript errors and CSP violations
}

// newPage starts a headless Chromium with a fresh profile and opens a tab.
// Every JavaScript exception, console.error call and browser-log error that
// is not a network status (a 404 from an API the server lacks is expected)
// is recorded; the test fails on any of them at cleanup.
func newPage(t *testing.T, srv *apptest.Server, extra ...chromedp.ExecAllocatorOption) *page {
	t.Helper()
	exe := findChromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	}
	opts = append(opts, extra...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	p := &page{t: t, ctx: ctx, base: srv.HTTPURL}
	// Start the browser without a deadline: a timeout on the first run
	// would stop the browser when it fires.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	drained := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Text == drainMarker {
				close(drained)
				continue
			}
			if m.IsException() || (m.Type == chromedp.ConsoleError && m.Source != "network") ||
				strings.Contains(m.Text, "Content Security Policy") {
				p.mu.Lock()
				p.problems = append(p.problems, fmt.Sprintf("%s [%s] %s", m.Type, m.Source, m.Text))
				p.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		// Messages arrive in order: once the marker is seen, everything
		// the page said before it has been looked at.
		ctx, cancelEval := context.WithTimeout(ctx, 5*time.Second)
		_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(console.info("`+drainMarker+`"), true)`))
		cancelEval()
		if err == nil {
			select {
			case <-drained:
			case <-time.After(5 * time.Second):
				t.Errorf("the browser console was not drained within 5s")
			}
		}
		cancel()
		<-done
		for _, prob := range p.takeProblems() {
			t.Errorf("browser console: %s", prob)
		}
	})
	return p
}

func (p *page) takeProblems() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.problems
	p.problems = nil
	return out
}

// run runs browser actions with a deadline.
func (p *page) run(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
}

// open navigates to a console URL (path and fragment).
func (p *page) open(rel string) {
	p.t.Helper()
	p.run("open "+rel, chromedp.Navigate(p.base+rel))
}

// eval evaluates a JavaScript expression.
func eval[T any](p *page, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript condition every 10ms until it holds or d
// passes, and returns how long it took.
func (p *page) waitFor(what, expr string, d time.Duration) time.Duration {
	p.t.Helper()
	start := time.Now()
	deadline := start.Add(d)
	for {
		if eval[bool](p, "!!("+expr+")") {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			body := eval[string](p, `location.href + "\n" + (document.querySelector("#app")?.innerText.slice(0, 2000) || "")`)
			p.t.Fatalf("timed out after %s waiting for %s; page at %s", d, what, body)
		}
		time.Sleep(10 * time.Millisecond) // polling the DOM, not ordering events
	}
}

// text returns the text of the first element matching a CSS selector, or "".
func (p *page) text(sel string) string {
	p.t.Helper()
	return eval[string](p, fmt.Sprintf(`document.querySelector(%q)?.textContent || ""`, sel))
}

// click clicks the first element matching a CSS selector.
func (p *page) click(sel string) {
	p.t.Helper()
	p.run("click "+sel, chromedp.Click(chromedp.CSS(sel)))
}

// typeInto types into the element matching sel.
func (p *page) typeInto(sel, text string) {
	p.t.Helper()
	p.run("type into "+sel, chromedp.SendKeys(chromedp.CSS(sel), text))
}

// postKling posts a signed X-Kling-Signature delivery for jobID and
// returns when the server has logged it.
func postKling(t *testing.T, srv *apptest.Server, event, jobID string, data map[string]any) {
	t.Helper()
	d := map[string]any{"job_id": jobID, "status": strings.TrimPrefix(event, "video."), "prompt": "a red fox running through snow", "model": "kling-v2-master"}
	for k, v := range data {
		d[k] = v
	}
	body, err := json.Marshal(map[string]any{"event": event, "timestamp": time.Now().UTC().Format(time.RFC3339), "data": d})
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, []byte(klingSecret))
	mac.Write(body)
	h := http.Header{"X-Kling-Signature": {"sha256=" + hex.EncodeToString(mac.Sum(nil))}}
	if code, out := srv.Post(t, "/webhooks/klingai", h, body); code != http.StatusOK {
		t.Fatalf("post delivery: %d %s", code, out)
	}
}

// subscribeToken is a token with the subscribe scope only.
const subscribeToken = "test-subscribe-token-0123456789"

// startServer starts klingfan with the "default" registration and, besides
// the admin token, a subscribe-only token named "reader".
func startServer(t *testing.T) *apptest.Server {
	t.Helper()
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("reader subscribe "+subscribeToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kling := newKling(t)
	return apptest.Start(t, "", apptest.WithEnv("KLINGAI_WEBHOOK_SECRET", klingSecret),
		apptest.WithConfig(func(c *config.Config) {
			c.TokensFile = tokens
			c.Reconcile.APIURL = kling.URL
			c.Reconcile.APIKey = "console-api-key"
			c.Reconcile.Interval = 0
			c.PublicURLSet = true
		}))
}

// newKling stands in for Kling's create API: every create of a legacy
// family is answered with a new task, submitted, carrying the request's
// external task id.
func newKling(t *testing.T) *httptest.Server {
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			ExternalTaskID string `json:"external_task_id"`
		}
		if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&body) != nil {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"code":1201,"message":"unexpected request","request_id":"x"}`)
			return
		}
		mu.Lock()
		n++
		id := fmt.Sprintf("console-task-%d", n)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"code":0,"message":"SUCCEED","request_id":"x","data":{"task_id":%q,"task_status":"submitted","task_info":{"external_task_id":%q},"created_at":1,"updated_at":1}}`, id, body.ExternalTaskID)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// interactiveRoles are the roles a person operates; each needs a name a
// screen reader can say.
var interactiveRoles = map[string]bool{
	"button": true, "link": true, "textbox": true, "combobox": true, "checkbox": true,
	"searchbox": true, "spinbutton": true, "radio": true, "switch": true, "slider": true,
}

// unnamedControls lists the controls on the page that have no accessible
// name, from Chromium's own accessibility tree.
func (p *page) unnamedControls() (unnamed []string, checked int) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	res, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) (accessibility.GetFullAXTreeResult, error) {
		return cdp.Call(ctx, tg, accessibility.GetFullAXTree, accessibility.GetFullAXTreeParams{})
	})
	if err != nil {
		p.t.Fatalf("accessibility tree: %v", err)
	}
	for _, n := range res.Nodes {
		if n.Ignored || n.Role == nil {
			continue
		}
		var role, name string
		_ = json.Unmarshal(n.Role.Value, &role)
		if !interactiveRoles[role] {
			continue
		}
		checked++
		if n.Name != nil {
			_ = json.Unmarshal(n.Name.Value, &name)
		}
		if strings.TrimSpace(name) == "" {
			unnamed = append(unnamed, fmt.Sprintf("%s (DOM node %d)", role, n.BackendDOMNodeID))
		}
	}
	return unnamed, checked
}
