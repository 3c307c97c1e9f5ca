package app_test

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/klingfan/klingfan/internal/apptest"
)

// TestFirstRunWithoutSecret is the new user who posts to /webhooks/klingai
// before setting KLINGAI_WEBHOOK_SECRET: the answer is the 401 every
// unknown id gets (it must not reveal which ids exist), while the log line
// and the banner say what to do.
func TestFirstRunWithoutSecret(t *testing.T) {
	var logs apptest.SyncBuffer
	srv := apptest.Start(t, "", apptest.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	body := []byte(`{"event":"video.completed","data":{"job_id":"job-1"}}`)
	status, out := srv.Post(t, "/webhooks/klingai", http.Header{"X-Kling-Signature": {"sha256=00"}}, body)
	if status != 401 || strings.TrimSpace(string(out)) != `{"error":"invalid signature"}` {
		t.Fatalf("answer %d %s, want the unknown id's 401", status, out)
	}
	if !strings.Contains(srv.Stdout.String(), "KLINGAI_WEBHOOK_SECRET") {
		t.Errorf("the banner does not say how to configure \"default\":\n%s", srv.Stdout)
	}
	apptest.Eventually(t, 10*time.Second, "the rejection is logged with a hint", func() bool {
		return strings.Contains(logs.String(), `hint="registration \"default\" is not configured: start klingfan with KLINGAI_WEBHOOK_SECRET set"`)
	})
}

// TestRESTSubscriberHangingUpIsQuiet: a `curl -N` subscriber that goes
// away is routine and must not be logged as a server fault.
func TestRESTSubscriberHangingUpIsQuiet(t *testing.T) {
	var logs apptest.SyncBuffer
	srv := apptest.Start(t, "", apptest.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	for range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.HTTPURL+"/v1/events:subscribe", nil)
		req.Header.Set("Authorization", "Bearer "+apptest.AdminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("subscribe: status %d", resp.StatusCode)
		}
		cancel()
		resp.Body.Close()
	}
	srv.Stop(t) // waits for every handler to finish, so the log is complete
	for _, noise := range []string{"superfluous", "changed JetStream setting"} {
		if strings.Contains(logs.String(), noise) {
			t.Errorf("the log has %q:\n%s", noise, logs.String())
		}
	}
}
