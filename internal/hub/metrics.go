package hub

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Delivered records that it reached the subscriber at now.
func (h *Hub) Delivered(it *Item, now time.Time) {
	h.metrics.deliveries.Inc()
	if it.Event == nil {
		if it.hasReceived {
			h.metrics.lag.Observe(now.Sub(it.received).Seconds())
		}
		return
	}
	if rt := it.Event.GetReceivedAt(); rt != nil {
		h.metrics.lag.Observe(now.Sub(rt.AsTime()).Seconds())
	}
}

type metrics struct {
	subscribers    prometheus.Gauge
	deliveries     prometheus.Counter
	catchUps       prometheus.Counter
	replayed       prometheus.Counter
	replayedRecent prometheus.Counter
	undecodable    prometheus.Counter
	lag            prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		subscribers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "klingfan_hub_subscribers", Help: "Open subscriptions.",
		}),
		deliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "klingfan_hub_deliveries_total", Help: "Events sent to subscribers.",
		}),
		catchUps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "klingfan_hub_catchups_total", Help: "Times a subscriber overflowed its buffer and switched to reading the log.",
		}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "klingfan_hub_replayed_events_total", Help: "Events read from the log for subscribers catching up or resuming.",
		}),
		replayedRecent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "klingfan_hub_replayed_recent_events_total", Help: "Events served from the hub's memory of recent events to subscribers catching up.",
		}),
		undecodable: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "klingfan_hub_undecodable_events_total", Help: "Stored events a catch-up skipped because they could not be decoded.",
		}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "klingfan_hub_delivery_lag_seconds",
			Help:    "Time from receipt of a delivery to its event being sent to a subscriber.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.subscribers, m.deliveries, m.catchUps, m.replayed, m.replayedRecent, m.undecodable, m.lag)
	}
	return m
}
