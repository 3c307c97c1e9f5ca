package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/klingfan/klingfan/internal/app"
	"github.com/klingfan/klingfan/internal/config"
	"github.com/klingfan/klingfan/internal/verify"
)

// maxStreams is the --max-streams every harness server runs with: above
// the 10,000 idle streams of the memory scenario.
const maxStreams = 20_000

// server is a real klingfan running in this process, on loopback port 0,
// with the embedded JetStream store in its own data directory.
type server struct {
	dir      string
	grpcAddr string
	httpURL  string
	// Ready is how long app.Run took from its call until /readyz said 200.
	ready time.Duration

	cancel   context.CancelFunc
	done     chan error
	log      *slog.Logger
	stopOnce sync.Once
	stopErr  error
}

// newDataDir creates a fresh temporary data directory.
func newDataDir() (string, error) {
	return os.MkdirTemp("", "klingbench-*")
}

// startServer runs klingfan on dir and waits until it is ready. tweak may
// adjust the configuration (e.g. SyncAlways). The caller stops it.
func startServer(ctx context.Context, dir string, logger *slog.Logger, tweak func(*config.Config)) (*server, error) {
	cfg, err := config.Parse([]string{
		"--data-dir", dir,
		"--http-addr", "127.0.0.1:0",
		"--grpc-addr", "127.0.0.1:0",
		"--max-streams", fmt.Sprint(maxStreams),
		// Measure capacity, not the per-registration rate limit (which
		// would answer 429 above its default 500/s) or the per-token
		// stream cap (all harness streams share one token).
		"--ingest-rate", "0",
		"--max-streams-per-token", "0",
		"--shutdown-grace", "5s",
	}, func(string) (string, bool) { return "", false }, io.Discard)
	if err != nil {
		return nil, fmt.Errorf("bench: server config: %w", err)
	}
	cfg.AdminToken = benchToken
	cfg.KlingaiSecret = benchSecret
	if tweak != nil {
		tweak(&cfg)
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		gl.Close()
		return nil, err
	}
	cfg.PublicURL = "http://" + hl.Addr().String()
	s := &server{dir: dir, grpcAddr: gl.Addr().String(), httpURL: "http://" + hl.Addr().String(), done: make(chan error, 1), log: logger}
	runCtx, cancel := context.WithCancel(ctx)
	s.cancel = cancel

	start := time.Now()
	go func() {
		s.done <- app.Run(runCtx, cfg, app.Options{GRPCListener: gl, HTTPListener: hl, Stdout: io.Discard, Logger: logger})
	}()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := start.Add(5 * time.Minute)
	for {
		select {
		case err := <-s.done:
			cancel()
			return nil, fmt.Errorf("bench: server exited during start: %w", err)
		default:
		}
		resp, err := client.Get(s.httpURL + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				s.ready = time.Since(start)
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			_ = s.stop() // the readiness failure is the error to report
			return nil, fmt.Errorf("bench: server not ready after %s: %w", time.Since(start), err)
		}
		time.Sleep(2 * time.Millisecond) // polling readiness; bounds the start-up figure's resolution
	}
}

// stop shuts the server down and waits for it. It may be called again; the
// later calls return the first one's result.
func (s *server) stop() error {
	s.stopOnce.Do(func() { s.stopErr = s.shutdown() })
	return s.stopErr
}

func (s *server) shutdown() error {
	s.cancel()
	select {
	case err := <-s.done:
		if err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("bench: server stopped with error: %w", err)
		}
		return nil
	case <-time.After(30 * time.Second):
		return errors.New("bench: server did not stop within 30s")
	}
}

// stopLogged is stop for a defer: a run whose figures are already measured
// still says that its server did not stop well, instead of dropping it.
func (s *server) stopLogged() {
	if err := s.stop(); err != nil {
		s.log.Warn("bench: stopping the server", slog.Any("err", err))
	}
}

// baseline is the reference ingest endpoint the issue asks for: a plain
// net/http server on loopback that reads the body, checks the HMAC with
// verify.KlingSignature and answers 200 {"received": true}, nothing more.
type baseline struct {
	url string
	srv *http.Server
}

func startBaseline() (*baseline, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	secrets := [][]byte{[]byte(benchSecret)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /webhooks/klingai", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if err := verify.KlingSignature(r.Header.Get(verify.HeaderKlingSignature), body, secrets); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"invalid signature"}`+"\n")
			return
		}
		_, _ = io.WriteString(w, `{"received":true}`+"\n")
	})
	b := &baseline{url: "http://" + ln.Addr().String(), srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = b.srv.Serve(ln) }()
	return b, nil
}

func (b *baseline) stop() { _ = b.srv.Close() }

// quietLogger keeps the servers' logs out of the report unless something
// goes wrong.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}
