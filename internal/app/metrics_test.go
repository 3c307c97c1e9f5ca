package app_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/verify"
)

// /metrics is open and reports ingest outcomes by webhook, events by type,
// fan-out and gRPC server metrics, and the Go runtime.
func TestMetrics(t *testing.T) {
	f := startFanout(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream := f.subscribe(ctx, &gatewayv1.SubscribeRequest{})
	f.post("job-m", gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED)
	receive(t, stream, 1)
	body := []byte(`{"event":"video.failed","data":{"job_id":"m"}}`)
	f.srv.Post(t, "/webhooks/klingai", http.Header{verify.HeaderKlingSignature: {verify.SignKling([]byte("wrong"), body)}}, body)
	f.srv.Post(t, "/webhooks/kling/nope-1", nil, body)
	f.srv.Post(t, "/webhooks/kling/nope-2", nil, body)

	resp, err := http.Get(f.srv.HTTPURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(raw)
	for _, want := range []string{
		`klingfan_ingest_deliveries_total{outcome="accepted",webhook="default"} 1`,
		`klingfan_ingest_deliveries_total{outcome="bad_signature",webhook="default"} 1`,
		`klingfan_ingest_deliveries_total{outcome="unknown_webhook",webhook="unknown"} 2`,
		`klingfan_ingest_events_total{type="EVENT_TYPE_VIDEO_COMPLETED"} 1`,
		`klingfan_ingest_duration_seconds_count`,
		`klingfan_hub_subscribers 1`,
		`klingfan_hub_deliveries_total 1`,
		`klingfan_hub_delivery_lag_seconds_count 1`,
		`grpc_server_handled_total{grpc_code="OK",grpc_method="ListEvents"`,
		`go_goroutines`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(text, "nope-1") {
		t.Error("an unregistered webhook id became a label value")
	}
}
