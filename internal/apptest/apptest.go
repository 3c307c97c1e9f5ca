// Package apptest starts a real klingfan in-process for tests: embedded
// JetStream in a temporary directory, gRPC and HTTP on loopback port 0.
package apptest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/klingfan/klingfan/internal/app"
	"github.com/klingfan/klingfan/internal/config"
)

// AdminToken is the admin token every test server is started with.
const AdminToken = "test-admin-token-0123456789abcdef"

// Server is a running klingfan.
type Server struct {
	Config  config.Config
	GRPC    string // host:port
	HTTPURL string // http://host:port
	// Stdout is what the server printed (the banner).
	Stdout *SyncBuffer

	cancel context.CancelFunc
	done   chan error
}

// Option adjusts the configuration or options before start.
type Option func(*config.Config, *app.Options)

// WithClock makes the server read time from now.
func WithClock(now func() time.Time) Option {
	return func(_ *config.Config, o *app.Options) { o.Now = now }
}

// WithEnv sets environment variables for config parsing (e.g. KLINGAI_WEBHOOK_SECRET).
func WithEnv(kv ...string) Option {
	return func(c *config.Config, _ *app.Options) {
		for i := 0; i+1 < len(kv); i += 2 {
			switch kv[i] {
			case "KLINGAI_WEBHOOK_SECRET":
				c.KlingaiSecret = kv[i+1]
			case "KLINGFAN_ADMIN_TOKEN":
				c.AdminToken = kv[i+1]
			case "KLINGFAN_SECRET_KEY":
				c.SecretKey = kv[i+1]
			default:
				panic("apptest: unsupported env " + kv[i])
			}
		}
	}
}

// WithLogger sends the server's logs to l, e.g. a logger writing to a
// SyncBuffer, so tests can inspect what was logged.
func WithLogger(l *slog.Logger) Option {
	return func(_ *config.Config, o *app.Options) { o.Logger = l }
}

// WithConfig lets a test change any setting.
func WithConfig(fn func(*config.Config)) Option {
	return func(c *config.Config, _ *app.Options) { fn(c) }
}

// Start runs a server in dataDir (t.TempDir() when empty) and waits until
// /readyz answers 200. It is stopped by t.Cleanup.
func Start(t testing.TB, dataDir string, opts ...Option) *Server {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	cfg, err := config.Parse([]string{"--data-dir", dataDir, "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--shutdown-grace", "5s"},
		func(string) (string, bool) { return "", false }, io.Discard)
	if err != nil {
		t.Fatalf("apptest: config: %v", err)
	}
	cfg.AdminToken = AdminToken
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.PublicURL = "http://" + hl.Addr().String()
	s := &Server{GRPC: gl.Addr().String(), HTTPURL: "http://" + hl.Addr().String(), Stdout: &SyncBuffer{}, done: make(chan error, 1)}
	o := app.Options{GRPCListener: gl, HTTPListener: hl, Stdout: s.Stdout}
	for _, opt := range opts {
		opt(&cfg, &o)
	}
	if cfg.TLSCert != "" {
		s.HTTPURL = "https://" + hl.Addr().String()
		if cfg.PublicURL == "http://"+hl.Addr().String() {
			cfg.PublicURL = s.HTTPURL
		}
	}
	s.Config = cfg
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { s.done <- app.Run(ctx, cfg, o) }()
	t.Cleanup(func() { s.Stop(t) })

	deadline := time.Now().Add(20 * time.Second)
	tr := insecureTransport()
	// Leave no idle connection behind: over TLS it is HTTP/2, and the
	// server's shutdown would wait a second for the client to hang up.
	defer tr.CloseIdleConnections()
	client := &http.Client{Timeout: time.Second, Transport: tr}
	for {
		select {
		case err := <-s.done:
			s.cancel() // it has stopped: nothing for Stop to wait for
			s.cancel = nil
			t.Fatalf("apptest: server exited during start: %v", err)
		default:
		}
		resp, err := client.Get(s.HTTPURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("apptest: server not ready after 20s: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // polling for readiness, not ordering events
	}
}

// Stop shuts the server down and waits for it; safe to call twice.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("apptest: server stopped with error: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("apptest: server did not stop within 30s")
	}
}

// Dial returns a plaintext gRPC connection to the server, closed by t.Cleanup.
func (s *Server) Dial(t testing.TB, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	conn, err := grpc.NewClient(s.GRPC, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// BearerCreds attaches "authorization: Bearer <token>" to every call over a
// plaintext connection.
type BearerCreds string

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (b BearerCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (BearerCreds) RequireTransportSecurity() bool { return false }

// DialAdmin dials with the admin token attached.
func (s *Server) DialAdmin(t testing.TB) *grpc.ClientConn {
	return s.Dial(t, grpc.WithPerRPCCredentials(BearerCreds(AdminToken)))
}

// Post sends body to path on the HTTP listener with the given headers and
// returns the status and response body.
func (s *Server) Post(t testing.TB, path string, header http.Header, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.HTTPURL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	tr := insecureTransport()
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Timeout: 10 * time.Second, Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("apptest: POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// Eventually polls cond every 10ms until it holds or d passes.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("apptest: timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, not ordering events
	}
}

// SyncBuffer is a bytes.Buffer safe for concurrent use.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Clock is a controllable clock for rotation timelines.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock reading t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *Clock) String() string { return fmt.Sprint(c.Now()) }

func insecureTransport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = insecureTLS()
	return tr
}

// WithIngestListener serves ingest on ln as well, as --ingest-addr does.
func WithIngestListener(ln net.Listener) Option {
	return func(_ *config.Config, o *app.Options) { o.IngestListener = ln }
}

// WithMetricsListener serves /metrics on ln instead of the HTTP listener,
// as --metrics-addr does.
func WithMetricsListener(ln net.Listener) Option {
	return func(_ *config.Config, o *app.Options) { o.MetricsListener = ln }
}
