package app

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/klingfan/klingfan/internal/config"
	"github.com/klingfan/klingfan/internal/store"
)

// writeNotReady answers /readyz when the log cannot take events, with a
// reason code, and for a caller with a token (detail) why in operator
// terms: a full store says "store full: 23.9 MiB of 24 MiB" (sizes only,
// nothing from an event); other failures stay generic.
func writeNotReady(w http.ResponseWriter, err error, detail bool) {
	body := map[string]string{"status": "unavailable", "reason": "log_unavailable"}
	var full *store.FullError
	if errors.As(err, &full) {
		body["reason"] = "store_full"
		if detail {
			body["error"] = full.Reason
		}
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	_ = json.NewEncoder(w).Encode(body)
}

// registerStoreMetrics exposes the store's size against its limits. The
// values come from the store's periodic usage check, so a scrape costs no
// round trip to JetStream.
func (s *server) registerStoreMetrics() {
	gauge := func(name, help string, value func(store.Usage) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
			func() float64 { return value(s.store.Usage()) })
	}
	s.metrics.MustRegister(
		gauge("klingfan_store_stream_bytes", "Bytes held by the events stream.",
			func(u store.Usage) float64 { return float64(u.StreamBytes) }),
		gauge("klingfan_store_stream_limit_bytes", "The events stream's size cap (--retention-bytes or the store budget); 0 when it has none.",
			func(u store.Usage) float64 { return float64(u.StreamMaxBytes) }),
		gauge("klingfan_store_messages", "Events retained in the log.",
			func(u store.Usage) float64 { return float64(u.Messages) }),
		gauge("klingfan_store_first_sequence", "The oldest retained event sequence (last+1 when the log is empty).",
			func(u store.Usage) float64 { return float64(u.FirstSeq) }),
		gauge("klingfan_store_bytes", "Bytes used by the embedded JetStream file store (events, registrations, indexes); 0 with --nats-url.",
			func(u store.Usage) float64 { return float64(u.StoreBytes) }),
		gauge("klingfan_store_limit_bytes", "The embedded JetStream file-store budget (--max-store-bytes or derived from the disk); 0 with --nats-url.",
			func(u store.Usage) float64 { return float64(u.StoreMaxBytes) }),
		gauge("klingfan_store_disk_free_bytes", "Free space on the data directory's filesystem; 0 when unknown.",
			func(u store.Usage) float64 { return float64(u.DiskFree) }),
		gauge("klingfan_store_full", "1 while appends are refused for lack of space, else 0.",
			func(u store.Usage) float64 {
				if u.Full {
					return 1
				}
				return 0
			}),
	)
	for _, reason := range store.SwitchReasons {
		s.metrics.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "klingfan_nats_forced_reconnects_total",
			Help:        "Reconnects to another NATS server forced because the connected one stopped answering JetStream while the connection was up (--nats-url only), by the kind of the last failure.",
			ConstLabels: prometheus.Labels{"reason": string(reason)},
		}, func() float64 { return float64(s.store.ServerSwitches(reason)) }))
	}
}

// runReloads applies each configuration that arrives on reload (SIGHUP in
// `klingfan serve`) until ctx ends. Only the storage limits change at
// runtime; other settings need a restart and are left as they are.
func (s *server) runReloads(ctx context.Context, reload <-chan config.Config) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case cfg, ok := <-reload:
			if !ok {
				return nil
			}
			s.log.Info("reloading storage limits",
				"max_store_bytes", cfg.MaxStoreBytes, "retention_bytes", cfg.RetentionBytes, "retention_policy", cfg.RetentionPolicy)
			if err := s.store.SetLimits(ctx, storeLimits(cfg)); err != nil {
				s.log.Warn("reloading storage limits failed; the previous limits stay", "error", err)
			}
		}
	}
}

// storeLimits picks the reloadable storage limits out of cfg.
func storeLimits(cfg config.Config) store.Limits {
	return store.Limits{
		MaxStoreBytes:  cfg.MaxStoreBytes,
		RetentionBytes: cfg.RetentionBytes,
		Refuse:         cfg.RetentionPolicy == config.RetentionRefuse,
	}
}
