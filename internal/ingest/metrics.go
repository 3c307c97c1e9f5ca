package ingest

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// Metrics counts what ingest does.
type Metrics struct {
	deliveries *prometheus.CounterVec
	latency    prometheus.Histogram
	events     *prometheus.CounterVec
	partial    prometheus.Counter
}

// NewMetrics creates the ingest metrics and registers them with reg when it
// is not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "klingfan_ingest_deliveries_total",
			Help: "Deliveries received, by webhook and outcome.",
		}, []string{"webhook", "outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "klingfan_ingest_duration_seconds",
			Help:    "Time from a complete body to the answer, including the durable append.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "klingfan_ingest_events_total",
			Help: "Events appended to the log, by type.",
		}, []string{"type"}),
		partial: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "klingfan_ingest_partially_normalized_total",
			Help: "Accepted deliveries with a field normalization could not read (kept raw, identified by format, status and job id).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.deliveries, m.latency, m.events, m.partial)
	}
	return m
}

// observe counts a delivery; exemplar, when not nil, links its latency to
// its trace.
func (m *Metrics) observe(webhook, outcome string, ev *gatewayv1.Event, took time.Duration, exemplar prometheus.Labels) {
	m.deliveries.WithLabelValues(webhook, outcome).Inc()
	if outcome == OutcomeAccepted {
		m.events.WithLabelValues(ev.GetType().String()).Inc()
	}
	switch {
	case took <= 0:
	case exemplar != nil:
		m.latency.(prometheus.ExemplarObserver).ObserveWithExemplar(took.Seconds(), exemplar)
	default:
		m.latency.Observe(took.Seconds())
	}
}
