package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/api"
	"github.com/klingfan/klingfan/internal/auth"
	"github.com/klingfan/klingfan/internal/config"
	"github.com/klingfan/klingfan/internal/console"
	"github.com/klingfan/klingfan/internal/hub"
	"github.com/klingfan/klingfan/internal/ingest"
	"github.com/klingfan/klingfan/internal/openapi"
	"github.com/klingfan/klingfan/internal/registry"
	"github.com/klingfan/klingfan/internal/store"
)

// eventOverhead is the room a stored event needs beyond its raw body and
// the normalized copy of it: ids, timestamps, enum values, headers.
const eventOverhead = 64 << 10

// maxStreamsPerConn bounds concurrent gRPC streams on one connection.
const maxStreamsPerConn = 1000

// server holds the running parts. Fields are set once by newServer and only
// read afterwards.
type server struct {
	cfg     config.Config
	log     *slog.Logger
	now     func() time.Time
	metrics *prometheus.Registry

	store    *store.Store
	registry *registry.Registry
	hub      *hub.Hub
	ingest   *ingest.Handler
	authn    *auth.Authenticator
	health   *health.Server
	grpc     *grpc.Server
	http     *http.Server

	// gatewayLn connects the grpc-gateway to the gRPC server in memory, so
	// REST calls take exactly the gRPC path (interceptors, auth, streaming)
	// without a network hop or a second TLS set-up.
	gatewayLn   *bufconn.Listener
	gatewayConn *grpc.ClientConn
	gatewayGRPC *grpc.Server
	tlsConfig   *tls.Config

	// tailFrom is the log head when the hub was created: the tail feeds it
	// every later event.
	tailFrom uint64
}

func newServer(ctx context.Context, cfg config.Config, opts Options) (_ *server, err error) {
	s := &server{cfg: cfg, log: opts.Logger, now: opts.Now, metrics: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	s.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	s.store, err = store.Open(ctx, store.Config{
		DataDir:         cfg.DataDir,
		NATSListen:      cfg.NATSListen,
		URL:             cfg.NATSURL,
		User:            cfg.NATSUser,
		Password:        cfg.NATSPassword,
		Token:           cfg.NATSToken,
		CredsFile:       cfg.NATSCreds,
		NKeyFile:        cfg.NATSNKey,
		TLSCAFile:       cfg.NATSTLSCA,
		TLSCertFile:     cfg.NATSTLSCert,
		TLSKeyFile:      cfg.NATSTLSKey,
		UpdateAssets:    cfg.NATSUpdateConfig,
		Replicas:        cfg.Replicas,
		Retention:       cfg.Retention,
		DuplicateWindow: cfg.DedupWindow,
		SyncAlways:      cfg.SyncAlways,
		Logger:          s.log,
	})
	if err != nil {
		return nil, err
	}
	// An event holds the raw body and a normalized copy of much of it, so
	// the server's max_payload bounds the bodies ingest can promise to
	// store. A cluster with NATS's default 1 MiB gets a smaller limit (and
	// 413s above it) rather than 503s for bodies that can never be stored.
	if limit := (s.store.MaxPayload() - eventOverhead) / 2; cfg.MaxBodyBytes > limit {
		if limit < 1024 {
			return nil, fmt.Errorf("app: the NATS server's max_payload (%d bytes) is too small to store events", s.store.MaxPayload())
		}
		s.log.Warn("the NATS server's max_payload limits ingest bodies below --max-body-bytes; raise max_payload to accept larger ones",
			"max_payload", s.store.MaxPayload(), "max_body_bytes", limit)
		s.cfg.MaxBodyBytes = limit
		cfg.MaxBodyBytes = limit
	}
	// The registry's watch lives as long as the server.
	var regOpts []registry.Option
	if cfg.SecretKey != "" {
		sealer, err := registry.NewSealer(cfg.SecretKey)
		if err != nil {
			return nil, err
		}
		regOpts = append(regOpts, registry.WithSealer(sealer))
		s.log.Info("registration secrets are encrypted at rest", "key_id", sealer.KeyID())
	} else {
		s.log.Warn("registration secrets are stored unencrypted in the KV bucket; set KLINGFAN_SECRET_KEY to encrypt them")
	}
	s.registry, err = registry.Open(ctx, s.store.KV(), s.log, regOpts...)
	if err != nil {
		return nil, err
	}
	if cfg.KlingaiSecret != "" {
		if err := s.registry.EnsureDefault(ctx, cfg.KlingaiSecret, s.now()); err != nil {
			return nil, err
		}
	}
	pageKey, err := s.store.SharedKey(ctx, "page-token")
	if err != nil {
		return nil, err
	}
	_, last, err := s.store.Bounds(ctx)
	if err != nil {
		return nil, err
	}
	s.hub = hub.New(s.store, last, hub.Options{
		Buffer:           cfg.StreamBuffer,
		MaxSubscriptions: cfg.MaxStreams,
		Registerer:       s.metrics,
	})
	s.tailFrom = last
	s.ingest = ingest.New(ingest.Config{
		Logger:         s.log,
		Registrations:  s.registry,
		Events:         s.store,
		Now:            s.now,
		MaxBodyBytes:   cfg.MaxBodyBytes,
		RateLimit:      cfg.IngestRate,
		RequestTimeout: cfg.IngestTimeout,
		RateBurst:      cfg.IngestBurst,
		Metrics:        ingest.NewMetrics(s.metrics),
	})

	s.authn, err = auth.New(auth.Config{
		AdminToken: cfg.AdminToken,
		TokensFile: cfg.TokensFile,
		DataDir:    cfg.DataDir,
		Out:        opts.Stdout,
		Logger:     s.log,
	})
	if err != nil {
		return nil, err
	}
	s.tlsConfig, err = loadTLS(cfg)
	if err != nil {
		return nil, err
	}

	grpcMetrics := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram())
	s.metrics.MustRegister(grpcMetrics)
	events := api.NewEventService(s.store, s.hub, s.log, s.now, pageKey, cfg.MaxStreamsPerToken)
	webhooks := api.NewWebhookService(api.WebhookDeps{
		Registry:  s.registry,
		Tester:    s.ingest,
		Logger:    s.log,
		Now:       s.now,
		PublicURL: cfg.PublicURL,
		PageKey:   pageKey,
	})
	s.health = health.NewServer()
	common := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(grpcMetrics.UnaryServerInterceptor(), s.authn.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(grpcMetrics.StreamServerInterceptor(), s.authn.StreamInterceptor()),
		grpc.MaxRecvMsgSize(4 << 20),
		grpc.MaxSendMsgSize(16 << 20),
		grpc.ForceServerCodecV2(api.ServerCodec()),
	}
	newGRPC := func(opts ...grpc.ServerOption) *grpc.Server {
		g := grpc.NewServer(append(slices.Clone(common), opts...)...)
		gatewayv1.RegisterEventServiceServer(g, events)
		gatewayv1.RegisterWebhookServiceServer(g, webhooks)
		healthpb.RegisterHealthServer(g, s.health)
		reflection.Register(g)
		grpcMetrics.InitializeMetrics(g)
		return g
	}
	s.grpc = newGRPC(
		grpc.KeepaliveParams(keepalive.ServerParameters{
			// Probe idle connections so dead subscribers are reaped.
			Time:    30 * time.Second,
			Timeout: 10 * time.Second,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             10 * time.Second,
			PermitWithoutStream: true,
		}),
		// Streams per connection; a client with more subscriptions opens
		// more connections, which also spreads them over the cores.
		grpc.MaxConcurrentStreams(maxStreamsPerConn),
	)
	// The REST gateway multiplexes every REST client over one in-memory
	// connection, so it gets a server of its own without the per-connection
	// stream bound (the hub's --max-streams still applies).
	s.gatewayGRPC = newGRPC()

	mux, err := s.gatewayMux(ctx)
	if err != nil {
		return nil, err
	}
	// No ReadTimeout or WriteTimeout here: the same server carries REST
	// subscription streams that live for hours. Ingest sets per-request
	// deadlines itself; headers and idle connections are bounded for all.
	s.http = &http.Server{
		Handler:           s.routes(mux),
		ReadHeaderTimeout: cfg.HeaderTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// gatewayMux builds the grpc-gateway mux over an in-memory connection to the
// gRPC server.
func (s *server) gatewayMux(ctx context.Context) (*runtime.ServeMux, error) {
	s.gatewayLn = bufconn.Listen(1 << 20)
	conn, err := grpc.NewClient("passthrough:///klingfan",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return s.gatewayLn.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	)
	if err != nil {
		return nil, fmt.Errorf("app: gateway connection: %w", err)
	}
	s.gatewayConn = conn
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
			MarshalOptions: protojson.MarshalOptions{EmitUnpopulated: false},
			// Unknown fields are a client mistake worth a 400, not silence.
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}),
		runtime.WithForwardResponseOption(flushLiveStream),
	)
	if err := gatewayv1.RegisterEventServiceHandler(ctx, mux, conn); err != nil {
		return nil, fmt.Errorf("app: register event gateway: %w", err)
	}
	if err := gatewayv1.RegisterWebhookServiceHandler(ctx, mux, conn); err != nil {
		return nil, fmt.Errorf("app: register webhook gateway: %w", err)
	}
	return mux, nil
}

// flushLiveStream sends the HTTP response headers of a REST subscription as
// soon as the gRPC stream says it is live (its header carries the head
// sequence), so a REST client, like a gRPC one, can wait for headers and
// then rely on seeing every later event.
func flushLiveStream(ctx context.Context, w http.ResponseWriter, msg proto.Message) error {
	if msg != nil {
		return nil
	}
	md, ok := runtime.ServerMetadataFromContext(ctx)
	if !ok || len(md.HeaderMD.Get(api.HeadSequenceHeader)) == 0 {
		return nil
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	return http.NewResponseController(w).Flush()
}

// REST bounds: a request body the API could ever need is small, and only
// the subscription stream may stay open.
const (
	maxRESTBody     = 1 << 20
	restReadTimeout = 30 * time.Second
	subscribePath   = "/v1/events:subscribe"
)

// guardREST checks the bearer token before grpc-gateway reads a body (it
// reads the whole body before calling gRPC, where the full check runs),
// bounds the body's size and, except on the subscription stream, the time
// to send it.
func (s *server) guardREST(gateway *runtime.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.authn.Recognize(r.Header); err != nil {
			_, out := runtime.MarshalerForRequest(gateway, r)
			runtime.HTTPError(r.Context(), gateway, out, w, r, err)
			return
		}
		if r.URL.Path != subscribePath {
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(restReadTimeout))
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxRESTBody)
		gateway.ServeHTTP(w, r)
	})
}

// routes lays out the HTTP side: REST under /v1, and the open operational
// endpoints.
func (s *server) routes(gateway *runtime.ServeMux) http.Handler {
	mux := http.NewServeMux()
	s.ingest.Routes(mux)
	mux.Handle("/v1/", s.guardREST(gateway))
	mux.Handle("GET /openapi.json", openapi.Handler())
	mux.Handle(console.Path, console.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok"}`+"\n")
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics, promhttp.HandlerOpts{Registry: s.metrics}))
	return mux
}

func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "application/json")
	if err := s.store.Ready(ctx); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"status":"unavailable","error":"log unavailable"}`+"\n")
		return
	}
	_, _ = io.WriteString(w, `{"status":"ok"}`+"\n")
}

// runBackground runs the goroutines that live as long as the server. It
// returns when ctx ends.
func (s *server) runBackground(ctx context.Context) error {
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	err := s.store.Tail(ctx, s.tailFrom, s.hub.Publish)
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("app: log tail stopped: %w", err)
}

func (s *server) wrapGRPCListener(ln net.Listener) net.Listener {
	// Bounded like the HTTP side: each connection may carry up to
	// maxStreamsPerConn streams, some of them (health, reflection) open.
	return grpcTLSListener(netutil.LimitListener(ln, s.cfg.MaxGRPCConns), s.tlsConfig)
}

func (s *server) serveHTTP(ln net.Listener) error {
	// A connection cap keeps a flood of connections from exhausting file
	// descriptors and memory; connections beyond it wait in the backlog.
	ln = netutil.LimitListener(ln, s.cfg.MaxHTTPConns)
	if s.tlsConfig != nil {
		return s.http.Serve(tls.NewListener(ln, s.tlsConfig))
	}
	return s.http.Serve(ln)
}

// shutdown stops accepting work and ends what is running, waiting at most
// grace for in-flight requests.
func (s *server) shutdown(grace time.Duration) {
	s.health.Shutdown()
	// End streams first, with UNAVAILABLE, so clients reconnect and resume
	// elsewhere; GracefulStop would otherwise wait for them forever.
	s.hub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	_ = s.http.Shutdown(ctx)
	stopped := make(chan struct{})
	go func() { s.grpc.GracefulStop(); s.gatewayGRPC.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		s.grpc.Stop()
		s.gatewayGRPC.Stop()
	}
}

// close releases what newServer acquired; safe on a partly built server.
func (s *server) close() {
	if s.gatewayConn != nil {
		_ = s.gatewayConn.Close()
	}
	if s.store != nil {
		if err := s.store.Close(); err != nil {
			s.log.Warn("closing store", "error", err)
		}
	}
}

func (s *server) printBanner(w io.Writer, grpcAddr, httpAddr net.Addr) {
	scheme, plaintext := "http", "-plaintext "
	if s.tlsConfig != nil {
		scheme, plaintext = "https", ""
	}
	base := fmt.Sprintf("%s://%s", scheme, displayAddr(httpAddr))
	token := "$KLINGFAN_ADMIN_TOKEN"
	if s.cfg.AdminToken == "" && s.cfg.TokensFile == "" {
		token = "$(cat " + filepath.Join(s.cfg.DataDir, auth.AdminTokenFile) + ")"
	}
	fmt.Fprintf(w, `
klingfan is running
  gRPC     %[1]s   (try: grpcurl %[6]s%[1]s list)
  HTTP     %[2]s   (/healthz /readyz /metrics /openapi.json)
  ingest   %[3]s/webhooks/klingai   registration "default": %[4]s
           %[3]s/webhooks/kling/{webhook_id}   for registrations made with the API
  REST     curl -H "Authorization: Bearer %[5]s" %[2]s/v1/webhooks
  stream   curl -N -H "Authorization: Bearer %[5]s" '%[2]s/v1/events:subscribe'
  CLI      ./bin/klingctl listen      (./bin/klingctl --help for more)
  console  %[2]s/console/   (sign in with the admin token)
Stop with Ctrl-C.

`, displayAddr(grpcAddr), base, strings.TrimRight(s.cfg.PublicURL, "/"), s.defaultStatus(), token, plaintext)
}

// defaultStatus says whether POST /webhooks/klingai can accept anything.
func (s *server) defaultStatus() string {
	if s.cfg.KlingaiSecret != "" {
		return "verifies X-Kling-Signature with KLINGAI_WEBHOOK_SECRET"
	}
	if _, ok := s.registry.Get(registry.DefaultID); ok {
		return "configured"
	}
	return "not configured (set KLINGAI_WEBHOOK_SECRET and restart)"
}

// displayAddr turns a wildcard listen address into one a user can paste.
func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}
