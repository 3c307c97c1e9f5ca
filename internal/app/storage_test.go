package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/app"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/config"
	"github.com/klingfan/klingfan/internal/verify"
)

const storageSecret = "storage-test-secret-0123456789"

// startSmallStore runs a server whose store budget is 1 MiB (the event log
// cap about half of it), checking usage every 50ms, and returns it with
// the channel that reloads its configuration.
func startSmallStore(t *testing.T, policy string, logs io.Writer) (*apptest.Server, chan config.Config) {
	t.Helper()
	reload := make(chan config.Config)
	opts := []apptest.Option{
		apptest.WithEnv("KLINGAI_WEBHOOK_SECRET", storageSecret),
		apptest.WithConfig(func(c *config.Config) {
			c.MaxStoreBytes = 1 << 20
			c.RetentionPolicy = policy
			c.StoreCheckInterval = 50 * time.Millisecond
			c.IngestRate = 0
		}),
		func(_ *config.Config, o *app.Options) { o.Reload = reload },
	}
	if logs != nil {
		opts = append(opts, apptest.WithLogger(newTextLogger(logs)))
	}
	return apptest.Start(t, "", opts...), reload
}

// postDelivery posts a signed delivery of about 8 KiB for job and returns
// the status and the Retry-After header.
func postDelivery(t *testing.T, srv *apptest.Server, job string) (int, string) {
	t.Helper()
	body := fmt.Appendf(nil, `{"event":"video.completed","timestamp":"2026-11-26T12:00:00Z","data":{"job_id":%q,"prompt":%q}}`,
		job, strings.Repeat("p", 8<<10))
	req, err := http.NewRequest(http.MethodPost, srv.HTTPURL+"/webhooks/klingai", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(verify.HeaderKlingSignature, verify.SignKling([]byte(storageSecret), body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// readyz returns /readyz's status and its error text, which only a caller
// with a token gets.
func readyz(t *testing.T, srv *apptest.Server) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.HTTPURL+"/readyz", nil)
	req.Header.Set("Authorization", "Bearer "+apptest.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Error string }
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Error
}

// listJobs returns the job ids of every event in the log, oldest first.
func listJobs(t *testing.T, srv *apptest.Server) []string {
	t.Helper()
	client := gatewayv1.NewEventServiceClient(srv.DialAdmin(t))
	var jobs []string
	req := &gatewayv1.ListEventsRequest{PageSize: 500}
	for {
		resp, err := client.ListEvents(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range resp.GetEvents() {
			jobs = append(jobs, ev.GetJob().GetJobId())
		}
		if resp.GetNextPageToken() == "" {
			return jobs
		}
		req.PageToken = resp.GetNextPageToken()
	}
}

// waitFor polls cond until it holds or 10s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, not ordering events
	}
}

// With --retention-policy refuse, deliveries past the cap get 503 with
// Retry-After, /readyz fails naming the sizes, the log says so once, the
// metrics show it, and raising the budget by a reload brings ingest back
// without a restart. Every delivery answered 200 is in the log.
func TestStoreFullRefusesAndRecoversOnReload(t *testing.T) {
	var logs apptest.SyncBuffer
	srv, reload := startSmallStore(t, config.RetentionRefuse, &logs)

	var accepted []string
	refused := 0
	for i := 0; refused < 20; i++ {
		if i > 500 {
			t.Fatalf("no 503 after %d deliveries into a 1 MiB store", i)
		}
		job := fmt.Sprintf("job-%d", i)
		status, retry := postDelivery(t, srv, job)
		switch status {
		case http.StatusOK:
			if refused > 0 {
				t.Fatalf("delivery %d accepted after a refusal with no new space", i)
			}
			accepted = append(accepted, job)
		case http.StatusServiceUnavailable:
			if retry == "" {
				t.Fatal("503 without Retry-After")
			}
			refused++
		default:
			t.Fatalf("delivery %d: status %d", i, status)
		}
	}
	status, reason := readyz(t, srv)
	t.Logf("%d accepted, %d refused; /readyz: %q", len(accepted), refused, reason)
	if status != http.StatusServiceUnavailable || !strings.HasPrefix(reason, "store full: ") || !strings.Contains(reason, " MiB of ") {
		t.Fatalf("/readyz while full: %d %q, want 503 with \"store full: X MiB of Y MiB\"", status, reason)
	}
	if got := scrape(t, srv, "klingfan_store_full"); got != 1 {
		t.Errorf("klingfan_store_full = %v, want 1", got)
	}
	if n := strings.Count(logs.String(), "event log full"); n != 1 {
		t.Errorf("logged %q %d times for %d refusals, want once", "event log full", n, refused)
	}
	if strings.Contains(logs.String(), "log append failed") {
		t.Error("each refused delivery was logged as an append failure")
	}

	more := srv.Config
	more.MaxStoreBytes = 4 << 20
	reload <- more
	waitFor(t, "/readyz to recover after the reload", func() bool { s, _ := readyz(t, srv); return s == http.StatusOK })
	for i := range 5 {
		job := fmt.Sprintf("after-%d", i)
		if status, _ := postDelivery(t, srv, job); status != http.StatusOK {
			t.Fatalf("after raising the budget: status %d", status)
		}
		accepted = append(accepted, job)
	}
	if got := strings.Join(listJobs(t, srv), ","); got != strings.Join(accepted, ",") {
		t.Fatalf("log holds %q, want exactly the accepted deliveries %q", got, strings.Join(accepted, ","))
	}
	if n := strings.Count(logs.String(), "event log has room again"); n != 1 {
		t.Errorf("logged recovery %d times, want once", n)
	}
	if got := scrape(t, srv, "klingfan_store_limit_bytes"); got != 4<<20 {
		t.Errorf("klingfan_store_limit_bytes = %v, want %d", got, 4<<20)
	}
}

// With the default policy the oldest events make room: ingest never stops,
// /readyz stays ok and the oldest retained sequence moves up.
func TestStoreFullDiscardsOldest(t *testing.T) {
	srv, _ := startSmallStore(t, config.RetentionDiscardOldest, nil)
	const n = 150 // about 1.2 MiB of events into a cap of about 0.5 MiB
	for i := range n {
		if status, _ := postDelivery(t, srv, fmt.Sprintf("job-%d", i)); status != http.StatusOK {
			t.Fatalf("delivery %d: status %d, want 200 (discard-oldest never refuses)", i, status)
		}
	}
	if status, reason := readyz(t, srv); status != http.StatusOK {
		t.Fatalf("/readyz: %d %q, want ok", status, reason)
	}
	jobs := listJobs(t, srv)
	if len(jobs) == 0 || len(jobs) >= n || jobs[len(jobs)-1] != fmt.Sprintf("job-%d", n-1) {
		t.Fatalf("log holds %d events ending %v; want the newest, fewer than %d", len(jobs), jobs[max(len(jobs)-1, 0):], n)
	}
	waitFor(t, "the first sequence metric", func() bool { return scrape(t, srv, "klingfan_store_first_sequence") > 1 })
	if got := scrape(t, srv, "klingfan_store_messages"); int(got) != len(jobs) {
		t.Errorf("klingfan_store_messages = %v, want %d", got, len(jobs))
	}
}

func newTextLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
