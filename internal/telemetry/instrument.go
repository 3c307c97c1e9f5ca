package telemetry

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
)

// untraced are the operational endpoints that probes and scrapers call
// every few seconds: spans for them would drown the ones that matter.
var untraced = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// HTTPHandler wraps the whole HTTP side in otelhttp: one server span per
// request (continuing a `traceparent` the client sent), named by the
// ServeMux pattern that served it. It returns h unchanged when tracing is
// off.
func (t *Tracing) HTTPHandler(h http.Handler) http.Handler {
	if t == nil {
		return h
	}
	return otelhttp.NewHandler(h, "klingfan.http",
		otelhttp.WithTracerProvider(t.provider),
		otelhttp.WithPropagators(t.propagator),
		otelhttp.WithFilter(func(r *http.Request) bool { return !untraced[r.URL.Path] }),
	)
}

// HTTPTransport wraps base (http.DefaultTransport when nil) in otelhttp so
// every outgoing request, such as the reconciler's calls to the Kling API,
// gets a client span under the caller's span. It returns base unchanged
// when tracing is off, so the untraced client runs exactly as before.
func (t *Tracing) HTTPTransport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	if t == nil {
		return base
	}
	return otelhttp.NewTransport(base,
		otelhttp.WithTracerProvider(t.provider),
		otelhttp.WithPropagators(t.propagator),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			return "kling.api " + r.Method
		}),
	)
}

// GRPCServerOptions returns the otelgrpc stats handler that gives every
// gRPC call a server span; none when tracing is off.
func (t *Tracing) GRPCServerOptions() []grpc.ServerOption {
	if t == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(t.provider),
		otelgrpc.WithPropagators(t.propagator),
	))}
}

// GRPCDialOptions returns the otelgrpc client stats handler, so a call
// made by the REST gateway carries its HTTP span's context to the gRPC
// server; none when tracing is off.
func (t *Tracing) GRPCDialOptions() []grpc.DialOption {
	if t == nil {
		return nil
	}
	return []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler(
		otelgrpc.WithTracerProvider(t.provider),
		otelgrpc.WithPropagators(t.propagator),
	))}
}

// LogHandler adds `trace_id` and `span_id` to every record logged with a
// context that carries a span, so a log line leads to its trace. It
// returns h unchanged when tracing is off.
func (t *Tracing) LogHandler(h slog.Handler) slog.Handler {
	if t == nil {
		return h
	}
	return traceLogHandler{h}
}

type traceLogHandler struct{ slog.Handler }

func (l traceLogHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return l.Handler.Handle(ctx, r)
}

func (l traceLogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return traceLogHandler{l.Handler.WithAttrs(attrs)}
}

func (l traceLogHandler) WithGroup(name string) slog.Handler {
	return traceLogHandler{l.Handler.WithGroup(name)}
}

// Exemplar returns the exemplar labels that link a latency observation
// made under ctx to its trace, or nil when ctx carries no sampled span (an
// unsampled trace id would lead nowhere).
func Exemplar(ctx context.Context) prometheus.Labels {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() || !sc.IsSampled() {
		return nil
	}
	return prometheus.Labels{"trace_id": sc.TraceID().String(), "span_id": sc.SpanID().String()}
}
