package client_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"testing"

	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/config"
)

// secret signs the deliveries the examples post.
const secret = "client-example-secret"

// server is the real in-process klingfan the examples run against.
var server *apptest.Server

// mainTB lets TestMain use apptest outside a test: failures panic, and
// cleanups run when the examples and tests are done.
type mainTB struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
}

func (*mainTB) Helper()                        {}
func (*mainTB) Fatal(args ...any)              { panic(fmt.Sprint(args...)) }
func (*mainTB) Fatalf(format string, a ...any) { panic(fmt.Sprintf(format, a...)) }
func (*mainTB) Errorf(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }
func (tb *mainTB) Cleanup(f func()) {
	tb.mu.Lock()
	tb.cleanups = append(tb.cleanups, f)
	tb.mu.Unlock()
}
func (tb *mainTB) runCleanups() {
	for i := len(tb.cleanups) - 1; i >= 0; i-- {
		tb.cleanups[i]()
	}
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "klingfan-client-")
	if err != nil {
		panic(err)
	}
	tb := &mainTB{}
	server = apptest.Start(tb, dir, apptest.WithEnv("KLINGAI_WEBHOOK_SECRET", secret),
		apptest.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		// The throughput measurement posts faster than the default
		// per-registration rate limit allows.
		apptest.WithConfig(func(c *config.Config) { c.IngestRate, c.IngestBurst = 1e6, 1e6 }))
	code := m.Run()
	tb.runCleanups()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// postEvent delivers a signed video.completed event for job to the shared
// server, as Kling does.
func postEvent(job string) { postEventTo(server, job) }

// postEventTo delivers a signed video.completed event for job to srv.
func postEventTo(srv *apptest.Server, job string) { postNamed(srv, "video.completed", job) }

// postNamed delivers a signed Kling event called name (video.processing,
// video.failed, ...) for job to srv.
func postNamed(srv *apptest.Server, name, job string) {
	body := fmt.Appendf(nil, `{"event":%q,"timestamp":"2026-11-26T12:00:00Z","data":{"job_id":%q,"video_url":"https://example.com/%s.mp4"}}`, name, job, job)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, srv.HTTPURL+"/webhooks/klingai", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Kling-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		panic(fmt.Sprintf("post %s: status %d", job, resp.StatusCode))
	}
}
