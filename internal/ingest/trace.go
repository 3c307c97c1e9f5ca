package ingest

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/telemetry"
)

// Span names of a delivery: the parent, whose context every subscriber
// receives in Event.traceparent, and its steps.
const (
	spanDeliver   = "klingfan.ingest"
	spanVerify    = "klingfan.ingest.verify"
	spanNormalize = "klingfan.ingest.normalize"
	spanAppend    = "klingfan.ingest.append"
)

// startSpan starts a child span of ctx when tracing is on. With tracing
// off it returns ctx and a nil span, and costs nothing.
func (h *Handler) startSpan(ctx context.Context, name string) (context.Context, trace.Span) {
	if h.tracer == nil {
		return ctx, nil
	}
	return h.tracer.Start(ctx, name)
}

// endSpan records err, if any, on span and ends it; a nil span is ignored.
func endSpan(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// endDeliverSpan describes the delivery's outcome on its span and ends it.
func endDeliverSpan(span trace.Span, webhookID, outcome string, ev *gatewayv1.Event, err error) {
	if span == nil {
		return
	}
	span.SetAttributes(
		attribute.String("klingfan.webhook_id", webhookID),
		attribute.String("klingfan.ingest.outcome", outcome),
	)
	if ev != nil {
		span.SetAttributes(
			attribute.String("klingfan.event.type", ev.GetType().String()),
			attribute.String("klingfan.job_id", ev.GetJob().GetJobId()),
			attribute.Int64("klingfan.event.sequence", int64(ev.GetSequence())), //nolint:gosec // sequences stay far below 2^63
		)
	}
	endSpan(span, err)
}

// exemplar links the latency observation to the delivery's trace when
// tracing is on and the trace is sampled.
func (h *Handler) exemplar(ctx context.Context) prometheus.Labels {
	if h.tracer == nil {
		return nil
	}
	return telemetry.Exemplar(ctx)
}

// traceparent is what Event.traceparent carries: the delivery span's
// context when tracing is on; otherwise the sender's own `traceparent`
// header, checked and passed through unchanged as W3C asks of a
// participant that does not trace, so consumers still join the sender's
// trace.
func (h *Handler) traceparent(ctx context.Context, header http.Header) string {
	if h.tracer != nil {
		return telemetry.Traceparent(ctx)
	}
	// Indexed directly: Header.Get would canonicalize (and allocate) on
	// every delivery.
	if v := header["Traceparent"]; len(v) == 1 && v[0] != "" {
		// A parse of the header alone: a span in ctx must never stand in for a
		// malformed value.
		return telemetry.Traceparent(telemetry.ContextWithTraceparent(context.Background(), v[0])) //nolint:contextcheck // see above
	}
	return ""
}
