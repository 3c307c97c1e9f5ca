package app

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/net/netutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/test/bufconn"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/api"
	"github.com/klingfan/klingfan/internal/auth"
	"github.com/klingfan/klingfan/internal/config"
	"github.com/klingfan/klingfan/internal/console"
	"github.com/klingfan/klingfan/internal/groups"
	"github.com/klingfan/klingfan/internal/hub"
	"github.com/klingfan/klingfan/internal/ingest"
	"github.com/klingfan/klingfan/internal/jobs"
	"github.com/klingfan/klingfan/internal/klingapi"
	"github.com/klingfan/klingfan/internal/openapi"
	"github.com/klingfan/klingfan/internal/outcome"
	"github.com/klingfan/klingfan/internal/reconcile"
	"github.com/klingfan/klingfan/internal/registry"
	"github.com/klingfan/klingfan/internal/store"
	"github.com/klingfan/klingfan/internal/submit"
	"github.com/klingfan/klingfan/internal/telemetry"
	"github.com/klingfan/klingfan/internal/verify"
)

// eventOverhead is the room a stored event needs beyond its raw body and
// the normalized copy of it: ids, timestamps, enum values, headers.
const eventOverhead = 64 << 10

// maxStreamsPerConn bounds concurrent gRPC streams on one connection.
const maxStreamsPerConn = 1000

// maxRecvMsg bounds a gRPC request message; it matches the REST body cap.
const maxRecvMsg = 1 << 20

// httpIdleTimeout closes keep-alive HTTP connections left idle, so idle
// connections cannot hold --max-http-conns slots for long.
const httpIdleTimeout = 20 * time.Second

// grpcMaxConnIdle closes gRPC connections that carry no stream.
const grpcMaxConnIdle = 5 * time.Minute

// server holds the running parts. Fields are set once by newServer and only
// read afterwards.
type server struct {
	cfg     config.Config
	log     *slog.Logger
	now     func() time.Time
	metrics *prometheus.Registry
	tracing *telemetry.Tracing // nil when tracing is off

	store    *store.Store
	groups   *groups.Groups
	registry *registry.Registry
	hub      *hub.Hub
	jobs     *jobs.Projection
	ingest   *ingest.Handler
	authn    *auth.Authenticator
	health   *health.Server
	grpc     *grpc.Server
	http     *http.Server
	// ingestHTTP serves ingest alone on --ingest-addr, when set.
	ingestHTTP *http.Server
	// metricsHTTP serves /metrics alone on --metrics-addr; metricsApart
	// is set when it does, and /metrics is then not on --http-addr.
	metricsHTTP  *http.Server
	metricsApart bool

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

	// outcomes is the append path of ingest and the reconciler: a job's
	// terminal status is logged once. reconciler is nil when disabled.
	outcomes   *outcome.Guard
	reconciler *reconcile.Reconciler
	// kling is Kling's API signed with the account's credentials, shared
	// by the reconciler and CreateJob; nil without credentials.
	kling *klingapi.Client
	// submitter creates Kling tasks for CreateJob.
	submitter *submit.Submitter
}

func newServer(ctx context.Context, cfg config.Config, opts Options, tracing *telemetry.Tracing) (_ *server, err error) {
	s := &server{cfg: cfg, log: opts.Logger, now: opts.Now, metrics: prometheus.NewRegistry(), tracing: tracing}
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
		// Storage budget (budget.go in store; reload in reload.go here).
		MaxStoreBytes:      cfg.MaxStoreBytes,
		RetentionBytes:     cfg.RetentionBytes,
		RefuseWhenFull:     cfg.RetentionPolicy == config.RetentionRefuse,
		SpaceCheckInterval: cfg.StoreCheckInterval,
	})
	if err != nil {
		return nil, err
	}
	s.registerStoreMetrics()
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
	regCfg := registry.Config{KV: s.store.KV(), Logger: s.log, Schemes: verify.SchemeTable{}}
	var keySealer store.KeySealer
	if cfg.SecretKey != "" {
		sealer, err := registry.NewSealer(cfg.SecretKey)
		if err != nil {
			return nil, err
		}
		regCfg.Sealer = sealer
		keySealer = sealer
		s.log.Info("registration secrets are encrypted at rest", "key_id", sealer.KeyID())
	} else {
		s.log.Warn("registration secrets are stored unencrypted in the KV bucket; set KLINGFAN_SECRET_KEY to encrypt them")
	}
	s.registry, err = registry.Open(ctx, regCfg)
	if err != nil {
		return nil, err
	}
	if err := s.checkSecretsAtRest(ctx); err != nil {
		return nil, err
	}
	if cfg.KlingaiSecret != "" {
		if len(cfg.KlingaiSecret) < 16 {
			s.log.Warn("KLINGAI_WEBHOOK_SECRET is shorter than 16 characters: a short secret can be guessed from one captured delivery")
		}
		if err := s.registry.EnsureDefault(ctx, cfg.KlingaiSecret, s.now()); err != nil {
			return nil, err
		}
	}
	s.groups, err = groups.Open(ctx, s.store, groups.Config{Logger: s.log, Now: s.now})
	if err != nil {
		return nil, err
	}
	pageKey, err := s.store.SealedSharedKey(ctx, "page-token", keySealer)
	if err != nil {
		return nil, err
	}
	_, last, err := s.store.Bounds(ctx)
	if err != nil {
		return nil, err
	}
	s.hub = hub.New(hub.Config{
		Log:              s.store,
		Last:             last,
		Buffer:           cfg.StreamBuffer,
		MaxSubscriptions: cfg.MaxStreams,
		CatchUpBytes:     catchUpBytes(cfg.CatchUpBytes),
		Registerer:       s.metrics,
	})
	s.tailFrom = last
	s.jobs, err = jobs.Open(ctx, jobs.Config{
		Store:   s.store,
		Log:     s.hub,
		Metrics: jobs.NewMetrics(s.metrics),
		Logger:  s.log,
	})
	if err != nil {
		return nil, err
	}
	if err := s.setupOutcomes(ctx); err != nil {
		return nil, err
	}
	if err := s.setupCreate(ctx); err != nil {
		return nil, err
	}
	s.ingest = ingest.New(ingest.Config{
		Logger:         s.log,
		Registrations:  s.registry,
		Events:         s.outcomes,
		Now:            s.now,
		MaxBodyBytes:   cfg.MaxBodyBytes,
		RateLimit:      cfg.IngestRate,
		RequestTimeout: cfg.IngestTimeout,
		RateBurst:      cfg.IngestBurst,
		MaxEventAge:    cfg.MaxEventAge,
		Metrics:        ingest.NewMetrics(s.metrics),
		Tracer:         tracing.Tracer(),
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
	s.metrics.MustRegister(grpcMetrics, newLogReadyGauge(s.store))
	var promOpts []grpcprom.Option
	if tracing.Enabled() {
		promOpts = append(promOpts, grpcprom.WithExemplarFromContext(telemetry.Exemplar))
	}
	// Subscribe and Consume streams share the per-token and total quotas.
	quota := api.NewStreamQuota(cfg.MaxStreamsPerToken, cfg.MaxStreams)
	events := api.NewEventService(api.EventConfig{
		Log: s.store, Hub: s.hub, Logger: s.log, Now: s.now, PageKey: pageKey, Quota: quota,
		SendDeadline: cfg.SendDeadline, PageBudget: cfg.ListPageBudget,
	})
	webhooks := api.NewWebhookService(api.WebhookConfig{
		Registry:    s.registry,
		Tester:      s.ingest,
		Logger:      s.log,
		Now:         s.now,
		PublicURL:   cfg.PublicURL,
		PageKey:     pageKey,
		DedupWindow: cfg.DedupWindow,
	})
	jobService := api.NewJobService(api.JobConfig{States: s.jobs, Creator: s.submitter, PageKey: pageKey})
	consumerGroups := api.NewConsumerGroupService(api.ConsumerGroupConfig{
		Groups: s.groups, Logger: s.log, Now: s.now, PageKey: pageKey, SendDeadline: cfg.SendDeadline, Quota: quota,
	})
	adminCfg := api.AdminConfig{Backup: s.store, Logger: s.log}
	if s.reconciler != nil {
		adminCfg.Reconcile = s.reconciler
	}
	admin := api.NewAdminService(adminCfg)
	s.health = health.NewServer()
	common := []grpc.ServerOption{
		// The error mapping runs right inside the metrics, so the metrics
		// see its codes and the authentication and the stream cap return
		// errors of a kind, as the handlers do.
		grpc.ChainUnaryInterceptor(grpcMetrics.UnaryServerInterceptor(promOpts...), api.UnaryErrors(s.log), s.authn.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(withoutMessageMetrics(grpcMetrics.StreamServerInterceptor(promOpts...)), api.StreamErrors(s.log), s.authn.StreamInterceptor(), auxStreamCap(maxAuxStreams, auxLifetime(cfg))),
		// A missing or unknown token is refused before a stream exists.
		grpc.InTapHandle(api.TapErrors(s.log, s.authn.TapHandle())),
		// The largest request the API takes (a filter of 1,000 job ids)
		// is far below this; REST bodies are bounded the same.
		grpc.MaxRecvMsgSize(maxRecvMsg),
		grpc.MaxSendMsgSize(16 << 20),
		grpc.ForceServerCodecV2(api.ServerCodec()),
	}
	common = append(common, tracing.GRPCServerOptions()...)
	newGRPC := func(opts ...grpc.ServerOption) *grpc.Server {
		g := grpc.NewServer(append(slices.Clone(common), opts...)...)
		gatewayv1.RegisterEventServiceServer(g, events)
		gatewayv1.RegisterWebhookServiceServer(g, webhooks)
		gatewayv1.RegisterJobServiceServer(g, jobService)
		gatewayv1.RegisterConsumerGroupServiceServer(g, consumerGroups)
		gatewayv1.RegisterAdminServiceServer(g, admin)
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
			// A connection with no stream for this long is closed, so
			// idle connections cannot hold --max-grpc-conns slots.
			MaxConnectionIdle: grpcMaxConnIdle,
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

	s.metricsApart = cfg.MetricsAddr != "" || opts.MetricsListener != nil
	mux, err := s.gatewayMux(ctx)
	if err != nil {
		return nil, err
	}
	// No ReadTimeout or WriteTimeout here: the same server carries REST
	// subscription streams that live for hours. Ingest sets per-request
	// deadlines itself; headers and idle connections are bounded for all.
	s.http = &http.Server{
		Handler:           tracing.HTTPHandler(requireClientCert(s.tlsConfig, s.routes(mux))),
		ReadHeaderTimeout: cfg.HeaderTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.ingestHTTP = s.newIngestHTTP()
	s.metricsHTTP = s.newMetricsHTTP()
	return s, nil
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
	if !s.metricsApart {
		mux.Handle("GET /metrics", s.metricsHandler())
	}
	return mux
}

// readyz answers whether this replica can take events. Anyone may ask (a
// load balancer has no token), so the answer is a status and short codes;
// the detail (the store's sizes, unreadable registrations, the reconcile
// pass's error, which can carry Kling's message, hosts and proxy
// addresses) only goes to a caller with a valid token.
func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	detail := s.authn.Recognize(ctx, r.Header) == nil
	w.Header().Set("Content-Type", "application/json")
	if err := s.store.Ready(ctx); err != nil {
		writeNotReady(w, err, detail)
		return
	}
	if err := unreadableError(s.registry.Unreadable()); err != nil {
		body := map[string]string{"status": "unavailable", "reason": "registrations_unreadable"}
		if detail {
			body["error"] = err.Error()
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(body)
		return
	}
	var rec any = s.reconcileStatus()
	if detail {
		rec = s.reconcileDetail()
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "ok", "reconcile": rec})
}

// runBackground runs the goroutines that live as long as the server. It
// returns when ctx ends.
func (s *server) runBackground(ctx context.Context) error {
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	err := s.store.Tail(ctx, s.tailFrom, s.fanOut(s.hub.Publish))
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
	return serveHTTPOn(s.http, s.limitHTTP(ln), s.tlsConfig)
}

// limitHTTP bounds an HTTP listener's connections in all and per client
// address.
func (s *server) limitHTTP(ln net.Listener) net.Listener {
	return netutil.LimitListener(limitPerAddr(ln, s.cfg.MaxHTTPConnsPerAddr), s.cfg.MaxHTTPConns)
}

func serveHTTPOn(srv *http.Server, ln net.Listener, tlsConfig *tls.Config) error {
	if tlsConfig != nil {
		return srv.Serve(tls.NewListener(ln, tlsConfig))
	}
	return srv.Serve(ln)
}

// shutdown stops accepting work and ends what is running, waiting at most
// grace for in-flight requests. It runs once ctx has ended, so the grace
// period keeps ctx's values but not its cancellation.
func (s *server) shutdown(ctx context.Context, grace time.Duration) {
	s.health.Shutdown()
	// End streams first, with UNAVAILABLE, so clients reconnect and resume
	// elsewhere; GracefulStop would otherwise wait for them forever.
	s.hub.Close()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	_ = s.http.Shutdown(ctx)
	s.shutdownIngest(ctx)
	_ = s.metricsHTTP.Shutdown(ctx)
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

// catchUpBytes turns --catch-up-memory (0: no bound) into the hub's
// option (0: its default, negative: no bound).
func catchUpBytes(n int64) int64 {
	if n == 0 {
		return -1
	}
	return n
}
