// Package telemetry owns klingfan's OpenTelemetry tracing: it builds the
// tracer provider from the standard OTEL_* environment variables, and hands
// the rest of the server the instrumentation (HTTP, gRPC, logs, metric
// exemplars) and the W3C trace-context helpers that carry a trace through
// an Event.
//
// Tracing is off unless some OTEL_* variable is set. Off means free: no
// provider, no exporter, and the callers skip every wrapper (Enabled is
// false and Tracer returns nil), so the ingest path runs exactly the code
// it runs without this package.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// ErrUnsupported is returned for an OTEL_* setting klingfan cannot honour,
// so a misconfiguration fails start-up instead of silently dropping traces.
var ErrUnsupported = errors.New("telemetry: unsupported setting")

// ServiceName is the default `service.name`; OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES override it.
const ServiceName = "klingfan"

// instrumentationName names the tracer of klingfan's own spans.
const instrumentationName = "github.com/klingfan/klingfan"

// Tracing is the process's tracing set-up. A nil *Tracing is valid and
// means off.
type Tracing struct {
	provider   *sdktrace.TracerProvider
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
}

// Setup builds tracing from the environment (os.Getenv, because the OTel
// exporters read their own variables there too). It returns nil, and
// starts nothing, when no OTEL_* variable is set, when OTEL_SDK_DISABLED
// is true or when OTEL_TRACES_EXPORTER is none. The exporter is OTLP,
// over HTTP/protobuf (the specification's default) or gRPC as
// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL say;
// endpoint, headers, TLS, timeouts, sampler (OTEL_TRACES_SAMPLER) and
// batching (OTEL_BSP_*) are read by the SDK itself.
func Setup(ctx context.Context) (*Tracing, error) {
	version := buildVersion()
	if !configured(os.Environ()) {
		return nil, nil
	}
	exporter, err := newExporter(ctx)
	if err != nil {
		return nil, err
	}
	// Later detectors win: the environment overrides the defaults.
	res, err := resource.New(ctx,
		resource.WithAttributes(
			attribute.String("service.name", ServiceName),
			attribute.String("service.version", version),
		),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil && res == nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	provider := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exporter),
		sdktrace.WithResource(res),
	)
	return &Tracing{
		provider:   provider,
		tracer:     provider.Tracer(instrumentationName, trace.WithInstrumentationVersion(version)),
		propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}, nil
}

// buildVersion is the module version the binary was built from, or the
// VCS revision of a development build.
func buildVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && info.Main.Version == "(devel)" {
			return s.Value
		}
	}
	return info.Main.Version
}

// configured reports whether the environment asks for tracing.
func configured(environ []string) bool {
	seen := false
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "OTEL_") {
			continue
		}
		seen = true
		switch {
		case name == "OTEL_SDK_DISABLED" && strings.EqualFold(strings.TrimSpace(value), "true"):
			return false
		case name == "OTEL_TRACES_EXPORTER" && strings.EqualFold(strings.TrimSpace(value), "none"):
			return false
		}
	}
	return seen
}

func newExporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	if name := strings.TrimSpace(os.Getenv("OTEL_TRACES_EXPORTER")); name != "" && name != "otlp" {
		return nil, fmt.Errorf("%w: OTEL_TRACES_EXPORTER=%q (klingfan exports traces with otlp, or none)", ErrUnsupported, name)
	}
	protocol := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch strings.TrimSpace(protocol) {
	case "", "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	default:
		return nil, fmt.Errorf("%w: OTLP protocol %q (want grpc or http/protobuf)", ErrUnsupported, protocol)
	}
	if err != nil {
		return nil, fmt.Errorf("telemetry: OTLP exporter: %w", err)
	}
	return exp, nil
}

// Enabled reports whether tracing is on.
func (t *Tracing) Enabled() bool { return t != nil }

// Tracer returns the tracer for klingfan's own spans, or nil when tracing
// is off, so callers can skip span bookkeeping entirely.
func (t *Tracing) Tracer() trace.Tracer {
	if t == nil {
		return nil
	}
	return t.tracer
}

// Shutdown flushes the spans still queued and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	if err := t.provider.Shutdown(ctx); err != nil {
		return fmt.Errorf("telemetry: shutdown: %w", err)
	}
	return nil
}
