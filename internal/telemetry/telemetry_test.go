package telemetry

import (
	"context"
	"errors"
	"testing"
)

func TestConfigured(t *testing.T) {
	for _, c := range []struct {
		name    string
		environ []string
		want    bool
	}{
		{"nothing set", []string{"PATH=/bin", "KLINGFAN_HTTP_ADDR=:8080"}, false},
		{"endpoint", []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318"}, true},
		{"service name alone", []string{"OTEL_SERVICE_NAME=klingfan-eu"}, true},
		{"sdk disabled", []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://c:4318", "OTEL_SDK_DISABLED=true"}, false},
		{"exporter none", []string{"OTEL_TRACES_EXPORTER=none", "OTEL_SERVICE_NAME=x"}, false},
		{"sdk disabled false", []string{"OTEL_SDK_DISABLED=false"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := configured(c.environ); got != c.want {
				t.Errorf("configured(%v) = %v, want %v", c.environ, got, c.want)
			}
		})
	}
}

func TestSetupRejectsWhatItCannotHonour(t *testing.T) {
	for _, c := range []struct{ name, key, value string }{
		{"console exporter", "OTEL_TRACES_EXPORTER", "console"},
		{"json protocol", "OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(c.key, c.value)
			if _, err := Setup(context.Background()); !errors.Is(err, ErrUnsupported) {
				t.Errorf("Setup with %s=%s: %v, want ErrUnsupported", c.key, c.value, err)
			}
		})
	}
}

func TestOffIsNil(t *testing.T) {
	var tr *Tracing
	if tr.Enabled() || tr.Tracer() != nil || tr.GRPCServerOptions() != nil || tr.GRPCDialOptions() != nil {
		t.Error("a nil Tracing must switch everything off")
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
}

func TestTraceparentRoundTrip(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if got := Traceparent(ContextWithTraceparent(context.Background(), tp)); got != tp {
		t.Errorf("round trip: %q, want %q", got, tp)
	}
	for _, bad := range []string{"", "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"} {
		if got := Traceparent(ContextWithTraceparent(context.Background(), bad)); got != "" {
			t.Errorf("%q gave %q, want nothing", bad, got)
		}
	}
}
