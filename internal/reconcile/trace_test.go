package reconcile

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/klingfan/klingfan/internal/klingapi"
	"github.com/klingfan/klingfan/internal/klingfamily"
	"github.com/klingfan/klingfan/internal/klingsim"
)

// TestPassSpanParentsAPICallSpans: with a tracer, a pass is one
// reconcile.pass span, and every Kling API call the pass makes (through an
// otelhttp transport, as the app wires it) is a client span under it, in
// the same trace.
func TestPassSpanParentsAPICallSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	sim, err := klingsim.New(klingsim.Config{APIKey: "sim-key"})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(sim.Handler())
	t.Cleanup(api.Close)
	client, err := klingapi.New(klingapi.Config{
		BaseURL:     api.URL,
		Credentials: klingapi.Credentials{APIKey: "sim-key"},
		HTTPClient: &http.Client{Timeout: 10 * time.Second, Transport: otelhttp.NewTransport(http.DefaultTransport,
			otelhttp.WithTracerProvider(tp),
			otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return "kling.api " + r.Method }))},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Two legacy families, and one of the newer API, listed at POST /tasks.
	fams := append(klingfamily.All()[:2], klingfamily.MustByName("text-to-video/kling-2.6"))
	r := New(Config{API: client, Append: &countingAppender{}, History: nothingLogged{},
		Families: fams, WebhookID: "w", Lookback: time.Hour,
		Tracer: tp.Tracer("test")})
	if _, err := r.RunOnce(context.Background(), 0, true); err != nil {
		t.Fatalf("pass: %v", err)
	}

	var pass sdktrace.ReadOnlySpan
	var calls []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		switch {
		case s.Name() == "reconcile.pass":
			if pass != nil {
				t.Fatal("two reconcile.pass spans for one pass")
			}
			pass = s
		case strings.HasPrefix(s.Name(), "kling.api "):
			calls = append(calls, s)
		}
	}
	if pass == nil {
		t.Fatal("no reconcile.pass span")
	}
	// Two legacy families and the tasks listing: at least one call each.
	if len(calls) < 3 {
		t.Fatalf("got %d Kling API call spans, want at least 3", len(calls))
	}
	for _, c := range calls {
		if c.Parent().SpanID() != pass.SpanContext().SpanID() || c.SpanContext().TraceID() != pass.SpanContext().TraceID() {
			t.Errorf("API call span %q (parent %s) is not a child of the pass span %s", c.Name(), c.Parent().SpanID(), pass.SpanContext().SpanID())
		}
	}
}

// TestPassWithoutTracer: with no tracer (tracing off) a pass runs and
// records nothing, since Config.Tracer is nil and the client's transport is
// plain.
func TestPassWithoutTracer(t *testing.T) {
	r := New(Config{API: oneTaskAPI{updated: time.Now().Add(-time.Hour)}, Append: &countingAppender{}, History: nothingLogged{},
		Families: klingfamily.All()[:1], WebhookID: "w", Lookback: 2 * time.Hour})
	rep, err := r.RunOnce(context.Background(), 0, false)
	if err != nil || rep.TasksChecked != 1 {
		t.Fatalf("pass without a tracer: checked %d, err %v", rep.TasksChecked, err)
	}
}
