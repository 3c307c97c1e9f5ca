package app

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/store"
	"github.com/klingfan/klingfan/internal/telemetry"
)

// fanOut returns publish itself when tracing is off. When it is on, each
// event's hand-off to the hub gets a `klingfan.fanout` span in the trace
// its Event.traceparent names, so the trace of a delivery shows when this
// replica handed it to its subscribers.
func (s *server) fanOut(publish func(*gatewayv1.Event)) func(*gatewayv1.Event) {
	tracer := s.tracing.Tracer()
	if tracer == nil {
		return publish
	}
	return func(ev *gatewayv1.Event) {
		ctx := telemetry.ContextWithTraceparent(context.Background(), ev.GetTraceparent())
		_, span := tracer.Start(ctx, "klingfan.fanout", trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(
			attribute.Int64("klingfan.event.sequence", int64(ev.GetSequence())), //nolint:gosec // sequences stay far below 2^63
			attribute.String("klingfan.event.type", ev.GetType().String()),
			attribute.String("klingfan.webhook_id", ev.GetWebhookId()),
		))
		publish(ev)
		span.End()
	}
}

// newLogReadyGauge reports, at each scrape, whether the log answers (the
// same check as /readyz), so an alert can fire on an unavailable log even
// when no delivery arrives to be refused.
//
//nolint:contextcheck // a scrape brings no context; each check gets its own deadline
func newLogReadyGauge(st *store.Store) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "klingfan_log_ready",
		Help: "1 when the event log answers (the /readyz check), 0 when it does not.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if st.Ready(ctx) != nil {
			return 0
		}
		return 1
	})
}
