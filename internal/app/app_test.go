package app_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/verify"
)

const secret = "restart-test-secret"

// Every acknowledged delivery, in every wire format, is still in the log
// after the server restarts on the same data directory, and a redelivery
// after the restart is still recognised as a duplicate.
func TestAcknowledgedDeliveriesSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	srv := apptest.Start(t, dir, apptest.WithEnv("KLINGAI_WEBHOOK_SECRET", secret))
	var bodies [][]byte
	for _, name := range []string{"kling_event_completed.json", "legacy_succeed.json", "v2_succeeded_video.json"} {
		body, err := os.ReadFile(filepath.Join("..", "ingest", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, body)
		if status, out := srv.Post(t, "/webhooks/klingai", signed(body), body); status != http.StatusOK {
			t.Fatalf("%s: status %d: %s", name, status, out)
		}
	}
	srv.Stop(t)

	srv = apptest.Start(t, dir, apptest.WithEnv("KLINGAI_WEBHOOK_SECRET", secret))
	if status, out := srv.Post(t, "/webhooks/klingai", signed(bodies[0]), bodies[0]); status != http.StatusOK {
		t.Fatalf("redelivery after restart: status %d: %s", status, out)
	}
	events := gatewayv1.NewEventServiceClient(srv.DialAdmin(t))
	resp, err := events.ListEvents(context.Background(), &gatewayv1.ListEventsRequest{View: gatewayv1.EventView_EVENT_VIEW_FULL})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetEvents()) != len(bodies) {
		t.Fatalf("after restart the log holds %d events, want %d", len(resp.GetEvents()), len(bodies))
	}
	for i, ev := range resp.GetEvents() {
		if string(ev.GetRawBody()) != string(bodies[i]) || ev.GetSequence() != uint64(i+1) {
			t.Errorf("event %d: sequence %d, body %q", i, ev.GetSequence(), ev.GetRawBody())
		}
	}
}

func signed(body []byte) http.Header {
	return http.Header{verify.HeaderKlingSignature: {verify.SignKling([]byte(secret), body)}}
}

// A delivery just under --max-body-bytes is stored, although its event
// holds the body twice (raw and normalized): the log's message limit was
// once smaller and answered such deliveries 503 forever.
func TestLargestBodyIsAccepted(t *testing.T) {
	srv := apptest.Start(t, "", apptest.WithEnv("KLINGAI_WEBHOOK_SECRET", secret))
	prefix := `{"event":"video.completed","timestamp":"2026-11-26T12:00:00Z","data":{"job_id":"big","prompt":"`
	suffix := `"}}`
	pad := int(srv.Config.MaxBodyBytes) - len(prefix) - len(suffix)
	body := []byte(prefix + strings.Repeat("p", pad) + suffix)
	if status, out := srv.Post(t, "/webhooks/klingai", signed(body), body); status != http.StatusOK {
		t.Fatalf("body of %d bytes: status %d: %s", len(body), status, out)
	}
}
