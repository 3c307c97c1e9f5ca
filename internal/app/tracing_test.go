package app_test

import (
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/verify"
)

// otlpReceiver is an OTLP/HTTP trace receiver on loopback: it decodes
// each protobuf export request and keeps the spans with their service.
type otlpReceiver struct {
	mu       sync.Mutex
	spans    []*tracepb.Span
	services map[string]bool
}

func startOTLPReceiver(t *testing.T) (*otlpReceiver, string) {
	t.Helper()
	r := &otlpReceiver{services: map[string]bool{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "want protobuf on /v1/traces", http.StatusBadRequest)
			return
		}
		body, err := io.ReadAll(req.Body)
		var export collectortrace.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(body, &export)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rs := range export.GetResourceSpans() {
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.GetKey() == "service.name" {
					r.services[kv.GetValue().GetStringValue()] = true
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				r.spans = append(r.spans, ss.GetSpans()...)
			}
		}
		r.mu.Unlock()
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(srv.Close)
	return r, srv.URL
}

// inTrace returns the received spans of the trace, by name.
func (r *otlpReceiver) inTrace(traceID string) map[string]*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]*tracepb.Span{}
	for _, s := range r.spans {
		if hex.EncodeToString(s.GetTraceId()) == traceID {
			out[s.GetName()] = s
		}
	}
	return out
}

func (r *otlpReceiver) named(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.spans {
		if s.GetName() == name {
			return true
		}
	}
	return false
}

func (r *otlpReceiver) hasService(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.services[name]
}

const (
	senderTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	senderSpan  = "00f067aa0ba902b7"
)

// With OTEL_EXPORTER_OTLP_ENDPOINT set, a delivery sent with a
// traceparent produces spans under the sender's trace id (the HTTP server
// span, the ingest span and its verify, normalize and append steps, the
// fan-out) and the event a subscriber receives carries a traceparent in
// that trace naming the ingest span. Log lines of the request carry the
// trace id, and the ingest latency histogram an exemplar.
func TestDeliveryTraceReachesSubscriber(t *testing.T) {
	recv, endpoint := startOTLPReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_SERVICE_NAME", "klingfan-under-test")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
	logs := &apptest.SyncBuffer{}
	f := startFanout(t, apptest.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream := f.subscribe(ctx, &gatewayv1.SubscribeRequest{})
	body := []byte(`{"event":"video.completed","timestamp":"2026-11-26T12:00:00Z","data":{"job_id":"traced-1"}}`)
	h := signed(body)
	h.Set("traceparent", "00-"+senderTrace+"-"+senderSpan+"-01")
	if status, out := f.srv.Post(t, "/webhooks/klingai", h, body); status != http.StatusOK {
		t.Fatalf("post: %d %s", status, out)
	}
	msg, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	tp := msg.GetEvent().GetTraceparent()
	parts := strings.Split(tp, "-")
	if len(parts) != 4 || parts[0] != "00" || parts[1] != senderTrace || parts[2] == senderSpan || parts[3] != "01" {
		t.Fatalf("event traceparent %q: want version 00, trace %s, a klingfan span, sampled", tp, senderTrace)
	}
	ingestSpan := parts[2]

	want := []string{"POST /webhooks/klingai", "klingfan.ingest", "klingfan.ingest.verify", "klingfan.ingest.normalize", "klingfan.ingest.append", "klingfan.fanout"}
	var spans map[string]*tracepb.Span
	apptest.Eventually(t, 10*time.Second, "every span of the delivery exported", func() bool {
		spans = recv.inTrace(senderTrace)
		for _, name := range want {
			if spans[name] == nil {
				return false
			}
		}
		return true
	})
	id := func(name string) string { return hex.EncodeToString(spans[name].GetSpanId()) }
	parent := func(name string) string { return hex.EncodeToString(spans[name].GetParentSpanId()) }
	for _, c := range []struct{ span, parent string }{
		{"POST /webhooks/klingai", senderSpan},
		{"klingfan.ingest", id("POST /webhooks/klingai")},
		{"klingfan.ingest.verify", ingestSpan},
		{"klingfan.ingest.normalize", ingestSpan},
		{"klingfan.ingest.append", ingestSpan},
		{"klingfan.fanout", ingestSpan},
	} {
		if got := parent(c.span); got != c.parent {
			t.Errorf("span %s: parent %s, want %s", c.span, got, c.parent)
		}
	}
	if id("klingfan.ingest") != ingestSpan {
		t.Errorf("the event's traceparent names span %s, the ingest span is %s", ingestSpan, id("klingfan.ingest"))
	}
	if !recv.hasService("klingfan-under-test") {
		t.Error("spans were not exported under OTEL_SERVICE_NAME")
	}
	// gRPC calls are traced by otelgrpc; a REST call continues its
	// caller's trace through the gateway into the gRPC service.
	if _, err := f.events().GetEvent(ctx, &gatewayv1.GetEventRequest{Sequence: msg.GetEvent().GetSequence()}); err != nil {
		t.Fatal(err)
	}
	const restTrace = "0af7651916cd43dd8448eb211c80319c"
	req, _ := http.NewRequest(http.MethodGet, f.srv.HTTPURL+"/v1/events?pageSize=1", nil)
	req.Header.Set("Authorization", "Bearer "+apptest.AdminToken)
	req.Header.Set("traceparent", "00-"+restTrace+"-b7ad6b7169203331-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	apptest.Eventually(t, 10*time.Second, "the gRPC and REST spans", func() bool {
		rest := recv.inTrace(restTrace)
		return recv.named("kling.gateway.v1.EventService/GetEvent") &&
			rest["GET /v1/"] != nil && rest["kling.gateway.v1.EventService/ListEvents"] != nil
	})

	// A rejected delivery's log line names its trace.
	h = http.Header{verify.HeaderKlingSignature: {verify.SignKling([]byte("wrong"), body)}}
	h.Set("traceparent", "00-"+senderTrace+"-"+senderSpan+"-01")
	if status, _ := f.srv.Post(t, "/webhooks/klingai", h, body); status != http.StatusUnauthorized {
		t.Fatalf("forged delivery: status %d", status)
	}
	if line := lineWith(logs.String(), "delivery rejected"); !strings.Contains(line, "trace_id="+senderTrace) || !strings.Contains(line, "span_id=") {
		t.Errorf("rejection log line lacks trace and span ids: %q", line)
	}

	// So does a gRPC call's, through otelgrpc's span. (A call without a
	// token is refused before any stream or span exists, so the call here
	// is an accepted one that logs.)
	const grpcTrace = "5bf92f3577b34da6a3ce929d0e0e4736"
	mdctx := metadata.AppendToOutgoingContext(ctx, "traceparent", "00-"+grpcTrace+"-"+senderSpan+"-01")
	if _, err := gatewayv1.NewWebhookServiceClient(f.srv.DialAdmin(t)).CreateWebhook(mdctx, &gatewayv1.CreateWebhookRequest{
		WebhookId: "traced",
		Webhook:   &gatewayv1.Webhook{SignatureScheme: gatewayv1.SignatureScheme_SIGNATURE_SCHEME_URL_TOKEN},
	}); err != nil {
		t.Fatalf("CreateWebhook: %v", err)
	}
	if line := lineWith(logs.String(), "trace_id="+grpcTrace); !strings.Contains(line, "webhook created") {
		t.Errorf("no webhook-created log line in the gRPC call's trace: %q", line)
	}

	// OpenMetrics scrapes carry the sampled delivery's trace as an exemplar.
	req, _ = http.NewRequest(http.MethodGet, f.srv.HTTPURL+"/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if line := lineWith(string(raw), `trace_id="`+senderTrace+`"`); !strings.HasPrefix(line, "klingfan_ingest_duration_seconds_bucket") {
		t.Errorf("no ingest latency exemplar for the trace; got %q", line)
	}
}

// With no OTEL_* variable tracing is off: no span is made, and a sender's
// traceparent is passed through to the event unchanged so consumers still
// join the sender's trace.
func TestTraceparentPassesThroughWhenTracingOff(t *testing.T) {
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "OTEL_") {
			t.Skipf("the environment sets %s", kv)
		}
	}
	f := startFanout(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream := f.subscribe(ctx, &gatewayv1.SubscribeRequest{})
	for _, c := range []struct{ name, header, want string }{
		{"valid", "00-" + senderTrace + "-" + senderSpan + "-01", "00-" + senderTrace + "-" + senderSpan + "-01"},
		{"malformed", "00-nothex-" + senderSpan + "-01", ""},
		{"absent", "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			body := []byte(`{"event":"video.completed","data":{"job_id":"untraced-` + c.name + `"}}`)
			h := signed(body)
			if c.header != "" {
				h.Set("traceparent", c.header)
			}
			if status, out := f.srv.Post(t, "/webhooks/klingai", h, body); status != http.StatusOK {
				t.Fatalf("post: %d %s", status, out)
			}
			msg, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if got := msg.GetEvent().GetTraceparent(); got != c.want {
				t.Errorf("traceparent %q, want %q", got, c.want)
			}
		})
	}
}

func lineWith(text, substr string) string {
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, substr) {
			return line
		}
	}
	return ""
}
