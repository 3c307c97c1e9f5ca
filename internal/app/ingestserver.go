package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"
)

// newIngestHTTP returns the server for --ingest-addr: only the ingest
// routes, with connection limits of their own, so REST clients, scrapers
// and idle connections on --http-addr cannot lock Kling's deliveries out.
func (s *server) newIngestHTTP() *http.Server {
	mux := http.NewServeMux()
	s.ingest.Routes(mux)
	return &http.Server{
		Handler:           s.tracing.HTTPHandler(mux),
		ReadHeaderTimeout: s.cfg.HeaderTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// serveIngest serves --ingest-addr (or the listener given in Options) until
// the server is shut down; it does nothing when neither is set.
func (s *server) serveIngest(given net.Listener) error {
	if given == nil && s.cfg.IngestAddr == "" {
		return nil
	}
	ln, err := listen(given, s.cfg.IngestAddr)
	if err != nil {
		return err
	}
	s.log.Info("ingest serving on its own listener", "addr", ln.Addr().String())
	if err := serveHTTPOn(s.ingestHTTP, s.limitHTTP(ln), s.tlsConfig); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("app: ingest HTTP server: %w", err)
	}
	return nil
}

// shutdownIngest stops the ingest listener, waiting for deliveries in flight
// until ctx ends.
func (s *server) shutdownIngest(ctx context.Context) {
	_ = s.ingestHTTP.Shutdown(ctx)
}

// metricsHandler serves the server's metrics.
func (s *server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.metrics, promhttp.HandlerOpts{
		Registry: s.metrics,
		// OpenMetrics, when the scraper asks for it, is the format that
		// carries exemplars (trace ids on latency buckets).
		EnableOpenMetrics: true,
	})
}

// newMetricsHTTP returns the server for --metrics-addr: /metrics alone.
// Its labels name registrations, which the public port must not reveal.
func (s *server) newMetricsHTTP() *http.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metricsHandler())
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: s.cfg.HeaderTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// serveMetrics serves --metrics-addr (or the listener given in Options)
// until the server is shut down; it does nothing when neither is set.
// Plain HTTP with a small connection cap: it is meant for a private
// address only the scraper reaches.
func (s *server) serveMetrics(given net.Listener) error {
	if !s.metricsApart {
		return nil
	}
	ln, err := listen(given, s.cfg.MetricsAddr)
	if err != nil {
		return err
	}
	s.log.Info("metrics serving on their own listener", "addr", ln.Addr().String())
	if err := s.metricsHTTP.Serve(netutil.LimitListener(ln, maxMetricsConns)); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("app: metrics HTTP server: %w", err)
	}
	return nil
}

// maxMetricsConns bounds connections to --metrics-addr.
const maxMetricsConns = 64
