package console_test

import (
	"context"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
)

// TestScreenshots writes a PNG of every console page at a laptop size and a
// phone size into $KLINGFAN_SCREENSHOTS (`make screenshots` sets it to
// docs/console). It is skipped when the variable is unset.
func TestScreenshots(t *testing.T) {
	dir := os.Getenv("KLINGFAN_SCREENSHOTS")
	if dir == "" {
		t.Skip("KLINGFAN_SCREENSHOTS not set: run make screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	media := mediaServer(t)
	srv := startServer(t)
	// The previews come from a local https server with a throwaway
	// certificate, standing in for Kling's CDN.
	p := newPage(t, srv, chromedp.Flag("ignore-certificate-errors", true))
	seed(t, srv, media)
	// Two consumer groups over the seeded events, so the groups page shows
	// cards with counters rather than its empty state.
	groups := newGroupAPI(t, srv).c.ConsumerGroups()
	for _, g := range []struct {
		id string
		cg *gatewayv1.ConsumerGroup
	}{
		{"thumbnailers", &gatewayv1.ConsumerGroup{DisplayName: "Thumbnail service",
			EventTypes: []gatewayv1.EventType{gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED},
			Start:      &gatewayv1.ConsumerGroup_FromBeginning{FromBeginning: true}}},
		{"billing-sync", &gatewayv1.ConsumerGroup{DisplayName: "Billing sync", MaxDeliveries: 3,
			Start: &gatewayv1.ConsumerGroup_FromBeginning{FromBeginning: true}}},
	} {
		if _, err := groups.CreateConsumerGroup(context.Background(), &gatewayv1.CreateConsumerGroupRequest{ConsumerGroupId: g.id, ConsumerGroup: g.cg}); err != nil {
			t.Fatal(err)
		}
	}

	shots := func(hookID string) []struct {
		name, route, ready string
		prepare            func()
	} {
		return []struct {
			name, route, ready string
			prepare            func()
		}{
			{name: "signin", route: "#/", ready: `document.querySelector("#token")`, prepare: func() {
				eval[bool](p, `(sessionStorage.clear(), true)`)
			}},
			{name: "tail", route: "#/?token=" + apptest.AdminToken, ready: `document.querySelectorAll("[data-testid=events] li").length >= 8 && document.querySelector("[data-testid=bounds]").textContent.startsWith("#")`},
			{name: "event", route: "#/events/6", ready: `document.querySelector("#raw-body")`},
			{name: "jobs", route: "#/jobs", ready: `document.querySelector("table, .notice")`},
			{name: "job", route: "#/jobs/vid-7f3a21", ready: `document.querySelector("[data-testid=job-status]") && document.querySelector(".output img, .output video")`},
			{name: "webhooks", route: "#/webhooks", ready: `document.querySelector("[data-testid=secret-once]")`, prepare: func() {
				p.open("/console/#/webhooks")
				p.waitFor("the create form", `document.querySelector("input[name=webhook-id]")`, 5*time.Second)
				p.typeInto("input[name=webhook-id]", hookID)
				p.typeInto("input[name=display-name]", "Billing service")
				p.click("form.create button[type=submit]")
			}},
			{name: "groups", route: "#/groups", ready: `document.querySelectorAll("[data-group]").length === 2`},
		}
	}
	sizes := []struct {
		suffix        string
		width, height int64
		mobile        bool
		hookID        string
	}{{"", 1280, 800, false, "billing"}, {"-phone", 390, 844, true, "billing-eu"}}
	for _, size := range sizes {
		vp := []chromedp.EmulateViewportOption{}
		if size.mobile {
			vp = append(vp, chromedp.EmulateMobile, chromedp.EmulatePortrait)
		}
		p.run("viewport", chromedp.EmulateViewport(size.width, size.height, vp...))
		for _, s := range shots(size.hookID) {
			p.open("/console/")
			if s.prepare != nil {
				s.prepare()
			}
			p.open("/console/" + s.route)
			p.waitFor(s.name, s.ready, 10*time.Second)
			shoot(t, p, filepath.Join(dir, s.name+size.suffix+".png"))
		}
	}
	// One in the dark theme, to show it exists.
	p.run("viewport", chromedp.EmulateViewport(1280, 800))
	p.run("dark", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}},
		})
		return err
	}))
	p.open("/console/#/jobs/vid-7f3a21")
	p.waitFor("job page", shots("")[4].ready, 10*time.Second)
	shoot(t, p, filepath.Join(dir, "job-dark.png"))
}

// shoot waits for images to settle and writes a viewport screenshot.
func shoot(t *testing.T, p *page, path string) {
	t.Helper()
	p.waitFor("images to load", `[...document.images].every((i) => i.complete)`, 5*time.Second)
	// Blur whatever has focus so no focus ring is captured, and let the
	// arrival highlight of the tail fade.
	eval[bool](p, `(document.activeElement?.blur(), true)`)
	p.waitFor("animations to end", `document.getAnimations().every((a) => a.playState !== "running")`, 5*time.Second)
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", path, err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", path, len(png))
}

// mediaServer serves stand-in job outputs over https: a gradient PNG for
// thumbnails and images.
func mediaServer(t *testing.T) *httptest.Server {
	img := image.NewRGBA(image.Rect(0, 0, 640, 360))
	for y := 0; y < 360; y++ {
		for x := 0; x < 640; x++ {
			img.Set(x, y, color.RGBA{R: uint8(40 + x/6), G: uint8(60 + y/4), B: uint8(160 + x/10), A: 255})
		}
	}
	var buf strings.Builder
	if err := png.Encode(&stringWriter{&buf}, img); err != nil {
		t.Fatal(err)
	}
	body := buf.String()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

type stringWriter struct{ b *strings.Builder }

func (w *stringWriter) Write(p []byte) (int, error) { return w.b.Write(p) }

// seed fills the log with a plausible morning of Kling traffic.
func seed(t *testing.T, srv *apptest.Server, media *httptest.Server) {
	t.Helper()
	create := func(body string) map[string]any {
		req, _ := http.NewRequest("POST", srv.HTTPURL+"/v1/webhooks", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+apptest.AdminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
			t.Fatalf("create registration: %d %v", resp.StatusCode, err)
		}
		return out
	}
	create(`{"webhookId":"orders","webhook":{"displayName":"Orders service","signatureScheme":"SIGNATURE_SCHEME_STANDARD_WEBHOOKS"}}`)
	renders := create(`{"webhookId":"renders","webhook":{"displayName":"Render farm","signatureScheme":"SIGNATURE_SCHEME_URL_TOKEN"}}`)
	callback, _ := renders["callbackUrl"].(string)
	thumb := media.URL + "/thumb.png"

	postKling(t, srv, "video.created", "vid-7f3a21", map[string]any{"progress": 0})
	postKling(t, srv, "video.processing", "vid-7f3a21", map[string]any{"progress": 45})
	postKling(t, srv, "video.created", "vid-81c2e0", map[string]any{"prompt": "a paper boat drifting down a rainy street"})
	postKling(t, srv, "video.failed", "vid-0d44b9", map[string]any{"error": "content policy: prompt rejected", "prompt": "…"})
	postKling(t, srv, "video.processing", "vid-81c2e0", map[string]any{"progress": 30, "prompt": "a paper boat drifting down a rainy street"})
	postKling(t, srv, "video.completed", "vid-7f3a21", map[string]any{
		"video_url": media.URL + "/vid-7f3a21.mp4", "thumbnail_url": thumb, "duration": 5.1, "progress": 100,
		"created_at": time.Now().Add(-3 * time.Minute).UTC().Format(time.RFC3339), "completed_at": time.Now().UTC().Format(time.RFC3339),
	})
	if callback != "" {
		legacy := map[string]any{
			"task_id": "img-2b90c4", "task_status": "succeed", "task_status_msg": "", "created_at": time.Now().Add(-time.Minute).UnixMilli(),
			"updated_at": time.Now().UnixMilli(), "final_unit_deduction": "2",
			"task_result": map[string]any{"images": []map[string]any{{"index": 0, "url": thumb}, {"index": 1, "url": thumb}}},
		}
		b, _ := json.Marshal(legacy)
		path := strings.TrimPrefix(callback, srv.HTTPURL)
		if code, out := srv.Post(t, path, nil, b); code != 200 {
			t.Fatalf("post legacy callback: %d %s", code, out)
		}
	}
	postKling(t, srv, "video.processing", "vid-81c2e0", map[string]any{"progress": 70, "prompt": "a paper boat drifting down a rainy street"})
	req, _ := http.NewRequest("POST", srv.HTTPURL+"/v1/webhooks/orders:sendTestEvent", strings.NewReader(`{"eventType":"EVENT_TYPE_VIDEO_COMPLETED"}`))
	req.Header.Set("Authorization", "Bearer "+apptest.AdminToken)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("send test event: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}
