// Package app wires klingfan together: the log, the registry, the hub, the
// gRPC services and the HTTP side, and runs them until the context ends.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/klingfan/klingfan/internal/config"
	"github.com/klingfan/klingfan/internal/datadir"
	"github.com/klingfan/klingfan/internal/telemetry"
)

// Options carries what tests and embedders replace; the zero value is what
// `klingfan serve` uses.
type Options struct {
	// GRPCListener and HTTPListener, when set, are used instead of listening
	// on the configured addresses, so tests can pass listeners on port 0.
	GRPCListener net.Listener
	HTTPListener net.Listener
	// IngestListener, when set, serves ingest on a listener of its own as
	// --ingest-addr does.
	IngestListener net.Listener
	// MetricsListener, when set, serves /metrics on a listener of its own
	// as --metrics-addr does.
	MetricsListener net.Listener
	// Now is the clock for secret expiry and timestamps; time.Now when nil.
	Now func() time.Time
	// Stdout receives the start-up banner; os.Stdout when nil.
	Stdout io.Writer
	// Logger receives the logs; built from the configuration when nil.
	Logger *slog.Logger
	// Reload delivers configurations to apply while running (`klingfan
	// serve` sends one on SIGHUP); only the storage limits are reloaded.
	Reload <-chan config.Config
}

// Run serves until ctx is cancelled, then shuts down gracefully: streams are
// ended with UNAVAILABLE so clients reconnect and resume, listeners close and
// the store is flushed. It returns the first error that stopped it.
func Run(ctx context.Context, cfg config.Config, opts Options) error {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.Logger == nil {
		opts.Logger = NewLogger(cfg, os.Stderr)
	}
	tracing, err := telemetry.Setup(ctx)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := tracing.Shutdown(sctx); err != nil {
			opts.Logger.Warn("flushing traces", "error", err)
		}
	}()
	if tracing.Enabled() {
		opts.Logger = slog.New(tracing.LogHandler(opts.Logger.Handler()))
		opts.Logger.Info("tracing on: exporting spans over OTLP as the OTEL_* environment says")
	}
	log := opts.Logger

	// The data directory is claimed, then the ports bound, and only then
	// is the store opened: a second klingfan on the same directory or the
	// same ports stops here and has touched nothing.
	if cfg.NATSURL == "" {
		lock, err := datadir.Acquire(cfg.DataDir)
		if err != nil {
			return err
		}
		defer func() { _ = lock.Release() }() // after srv.close, below
	}
	grpcLn, httpLn, err := bindListeners(cfg, &opts)
	if err != nil {
		return err
	}
	srv, err := newServer(ctx, cfg, opts, tracing)
	if err != nil {
		closeListeners(grpcLn, httpLn, opts.IngestListener, opts.MetricsListener)
		return err
	}
	defer srv.close()
	srv.printBanner(opts.Stdout, grpcLn.Addr(), httpLn.Addr())
	log.Info("klingfan serving", "grpc", grpcLn.Addr().String(), "http", httpLn.Addr().String(), "data_dir", cfg.DataDir)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.runBackground(gctx) })
	g.Go(func() error { return srv.runReloads(gctx, opts.Reload) })
	// The job projection follows the hub, which the one log tail feeds; a
	// slow bucket write makes it catch up as a slow stream does, never
	// delaying live delivery.
	g.Go(func() error { return srv.jobs.Run(gctx) })
	// The registry follows the registrations bucket, so changes made
	// through another replica reach this one's cache.
	g.Go(func() error { return srv.registry.Run(gctx) })
	g.Go(func() error { srv.runReconcile(gctx); return nil })
	g.Go(func() error {
		if err := srv.grpc.Serve(srv.wrapGRPCListener(grpcLn)); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("app: gRPC server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		// The in-memory server behind the REST gateway: owned here like the
		// others, so a failure ends the run instead of going unnoticed.
		if err := srv.gatewayGRPC.Serve(srv.gatewayLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("app: in-memory gRPC server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := srv.serveHTTP(httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("app: HTTP server: %w", err)
		}
		return nil
	})
	g.Go(func() error { return srv.serveIngest(opts.IngestListener) })
	g.Go(func() error { return srv.serveMetrics(opts.MetricsListener) })
	g.Go(func() error {
		<-gctx.Done()
		log.Info("klingfan shutting down")
		srv.shutdown(gctx, cfg.ShutdownGrace)
		return nil
	})
	err = g.Wait()
	if err == nil && ctx.Err() == nil {
		err = errors.New("app: stopped unexpectedly")
	}
	if ctx.Err() != nil && err == nil {
		return nil
	}
	return err
}

// bindListeners binds every configured address that Options does not
// already provide, so a busy port fails start-up before the store is
// opened. The optional ingest and metrics listeners go into opts.
func bindListeners(cfg config.Config, opts *Options) (grpcLn, httpLn net.Listener, err error) {
	var bound []net.Listener
	bind := func(given net.Listener, addr string) net.Listener {
		if err != nil {
			return nil
		}
		var ln net.Listener
		if ln, err = listen(given, addr); err == nil {
			bound = append(bound, ln)
		}
		return ln
	}
	grpcLn = bind(opts.GRPCListener, cfg.GRPCAddr)
	httpLn = bind(opts.HTTPListener, cfg.HTTPAddr)
	if opts.IngestListener == nil && cfg.IngestAddr != "" {
		opts.IngestListener = bind(nil, cfg.IngestAddr)
	}
	if opts.MetricsListener == nil && cfg.MetricsAddr != "" {
		opts.MetricsListener = bind(nil, cfg.MetricsAddr)
	}
	if err != nil {
		closeListeners(bound...)
		return nil, nil, err
	}
	return grpcLn, httpLn, nil
}

func closeListeners(lns ...net.Listener) {
	for _, ln := range lns {
		if ln != nil {
			_ = ln.Close()
		}
	}
}

func listen(given net.Listener, addr string) (net.Listener, error) {
	if given != nil {
		return given, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("app: listen on %s: %w", addr, err)
	}
	return ln, nil
}

// NewLogger builds the process logger from the configured level and format.
func NewLogger(cfg config.Config, w io.Writer) *slog.Logger {
	o := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}
