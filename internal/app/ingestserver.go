package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
)

// newIngestHTTP returns the server for --ingest-addr: only the ingest
// routes, with connection limits of their own, so REST clients, scrapers
// and idle connections on --http-addr cannot lock Kling's deliveries out.
func (s *server) newIngestHTTP() *http.Server {
	mux := http.NewServeMux()
	s.ingest.Routes(mux)
	return &http.Server{
		Handler:           mux,
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
