// Package store owns klingfan's durable state in NATS JetStream: the event
// log (a stream) and the webhook registrations (a key-value bucket).
//
// By default the package embeds a NATS server with JetStream in the klingfan
// process, so a single command runs everything and the file store lives under
// the data directory. With Config.URL it connects to an external NATS cluster
// instead, so several klingfan replicas share one replicated log. Callers see
// the same API either way.
//
// The log is the source of truth for delivery guarantees: Append returns only
// after JetStream has acknowledged the write, so an ingest handler may answer
// 2xx as soon as Append returns without error. A repeated delivery is
// recognised over the whole retention by its event's subject; JetStream's
// Nats-Msg-Id window (short, because the server rebuilds it at start-up from
// every message inside it) adds a delivery id reused for another job.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klingfan/klingfan/internal/errkind"
)

// Names of the JetStream assets klingfan owns. They are part of the
// operational contract: operators inspect them with the nats CLI and several
// klingfan replicas find each other's data through them.
const (
	// StreamName is the stream that holds every accepted event, on subjects
	// "klingfan.events.<webhook_id>.<job token>.<event id>".
	StreamName = "KLINGFAN_EVENTS"
	// BucketName is the key-value bucket that holds webhook registrations.
	BucketName = "klingfan-webhooks"
)

// Defaults applied by Open to zero Config fields.
const (
	// DefaultRetention is how long events stay in the log: long enough for a
	// subscriber that was down over a weekend to resume without loss.
	DefaultRetention = 7 * 24 * time.Hour
	// DefaultDuplicateWindow is how long JetStream remembers delivery ids.
	// A repeated delivery is recognised over the whole retention by its
	// event's subject (see Append), so the window only adds a delivery id
	// reused for another job, and it costs start-up time: JetStream
	// rebuilds its table from every event inside it. Five minutes is the
	// default signature tolerance, which must not exceed the window.
	DefaultDuplicateWindow = 5 * time.Minute
)

// embeddedMaxPayload is the embedded server's max_payload.
const embeddedMaxPayload = 8 << 20

// Timeouts for steps that have no caller context of their own.
const (
	// serverReadyTimeout bounds how long Open waits for the embedded server
	// to accept connections, so a broken store fails start-up instead of
	// hanging it.
	serverReadyTimeout = 10 * time.Second
	// drainTimeout bounds Close's graceful drain of the client connection.
	drainTimeout = 5 * time.Second
	// requestTimeout is the default wait for a JetStream API round trip when
	// the caller's context carries no deadline.
	requestTimeout = 5 * time.Second
	// reapQueue bounds the read consumers awaiting deletion.
	reapQueue = 1024
)

var (
	// ErrNotFound reports that the requested event does not exist: it was
	// never written, or retention or a deletion removed it.
	ErrNotFound = errkind.New(errkind.NotFound, "store", "event not found")
	// ErrUnavailable reports that the log could not be reached: a timeout,
	// no responders, a closed or disconnected connection, or JetStream not
	// being ready. The operation may succeed when retried later, so ingest
	// answers 503 to make the sender retry.
	ErrUnavailable = errkind.New(errkind.Unavailable, "store", "event log unavailable; retry later")
	// ErrInvalidEvent reports that an event cannot be stored because a field
	// that becomes part of its subject or deduplication key is missing or is
	// not a valid NATS subject token. Retrying will not help.
	ErrInvalidEvent = errors.New("store: invalid event")
	// ErrEventTooLarge reports that an encoded event exceeds the NATS
	// server's max_payload. Retrying will not help; a smaller form of the
	// event may fit.
	ErrEventTooLarge = errors.New("store: event larger than the log's max_payload")
)

// Config configures Open. The zero value of every field except DataDir (in
// embedded mode) selects a sensible default.
type Config struct {
	// DataDir is the directory for klingfan's state. The embedded server's
	// file store lives under DataDir/jetstream. Required unless URL is set.
	DataDir string
	// NATSListen, when non-empty ("host:port"), makes the embedded server
	// also accept external NATS clients, for debugging with the nats CLI.
	// Port 0 picks a free port.
	// Empty opens no port at all, so nothing but this process can reach the
	// log.
	NATSListen string
	// URL, when non-empty, connects to this external NATS deployment
	// (comma-separated seed URLs) instead of embedding a server.
	URL string
	// Replicas is the replication factor of the stream and the bucket; 0
	// means 1. Values above 1 need an external cluster.
	Replicas int

	// User and Password, or Token, authenticate to the external
	// deployment; CredsFile (a JWT user credentials file) or NKeyFile (an
	// nkey seed file) are the decentralised alternatives. TLSCAFile
	// verifies the servers' certificates; TLSCertFile and TLSKeyFile
	// present a client certificate. All need URL. None is ever logged.
	User, Password, Token string
	CredsFile, NKeyFile   string
	TLSCAFile             string
	TLSCertFile           string
	TLSKeyFile            string
	// UpdateAssets lets Open and the Ensure methods change an existing asset's
	// settings (replicas, retention, duplicate window, ...) on an external
	// deployment to the configured ones. Without it Open fails with a
	// *DriftError listing every difference, because another replica may
	// run with other settings and overwriting them silently would make the
	// replicas fight. The embedded server is this process's own: there,
	// differences are always applied, each one logged.
	UpdateAssets bool

	// Retention is the events stream's MaxAge; 0 means DefaultRetention.
	Retention time.Duration
	// DuplicateWindow is how long JetStream remembers delivery ids for
	// deduplication; 0 means DefaultDuplicateWindow. It must not exceed
	// Retention.
	DuplicateWindow time.Duration
	// SyncAlways makes Append return only once the event is fsynced, and
	// a registration write only once it is, so a power loss loses nothing
	// acknowledged. Concurrent writes share one fsync (groupCommit).
	// Without it the embedded server fsyncs in the background every two
	// minutes. Ignored with URL, where the cluster's own setting applies.
	SyncAlways bool
	// MaxStoreBytes is the embedded server's file-store budget
	// (max_file_store); 0 derives it from the disk (what the store uses
	// plus the free space, less a reserve) and raises it as the disk
	// grows. Ignored with URL.
	MaxStoreBytes int64
	// RetentionBytes caps the events stream's size beside Retention; 0
	// leaves only the budget (embedded) or no cap (external).
	RetentionBytes int64
	// RefuseWhenFull makes a stream at its cap refuse appends (ingest
	// answers 503) instead of discarding its oldest events.
	RefuseWhenFull bool
	// SpaceCheckInterval is how often usage is re-read; 0 means
	// DefaultSpaceCheckInterval.
	SpaceCheckInterval time.Duration
	// streamMaxBytes is the stream's MaxBytes, resolved by planBudget.
	streamMaxBytes int64
	// Logger receives the store's and the embedded server's diagnostics;
	// nil means slog.Default().
	Logger *slog.Logger
	// syncedHook, when set (by tests), sees every path the group commits
	// fsync (groupCommit.synced).
	syncedHook func(path string)
}

// Store is an open connection to the event log and the registrations bucket.
// Its methods are safe for concurrent use.
type Store struct {
	log *slog.Logger
	ns  *server.Server // nil when connected to an external deployment
	// natsToken authenticates clients of the embedded server when
	// --nats-listen opens it; empty when no port is open.
	natsToken string
	nc        *nats.Conn
	closed    chan struct{} // closed by the connection's ClosedHandler
	watch     *serverWatch  // nil with the embedded server
	js        jetstream.JetStream
	stream    jetstream.Stream
	idIndex   jetstream.Stream // nil when the index could not be opened
	lookups   *lookupPacer     // paces the id lookups idIndex cannot answer
	kv        jetstream.KeyValue
	// assetOpts and updateAssets are what EnsureStream and EnsureBucket
	// configure assets from and whether they may change existing ones on
	// an external deployment (Config.UpdateAssets).
	assetOpts    AssetOptions
	updateAssets bool
	// commit and kvCommit sync the events stream and the registrations
	// bucket before a write is answered; nil unless Config.SyncAlways on
	// the embedded server.
	commit   *groupCommit
	kvCommit *groupCommit

	// reap queues finished read consumers for deletion by runReaper, which
	// runs from Open until Close closes reaperQuit and waits on reaperDone.
	reap       chan consumerRef
	reaperQuit chan struct{}
	reaperDone chan struct{}

	space       space
	recordedSeq atomic.Uint64 // the last sequence in the log-state file
	dataDir     string        // embedded only

	closeOnce sync.Once
	closeErr  error
}

// Open starts the embedded NATS server (or connects to cfg.URL), then ensures
// the assets the store owns, the events stream, the registrations bucket and
// the id index, as store.Assets configures them (see EnsureStream for the
// policy on existing ones and Config.UpdateAssets). It fails fast,
// naming the directory, when the data directory cannot be used, because the
// embedded server would otherwise only log the problem and run without
// JetStream.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Store{log: cfg.Logger, closed: make(chan struct{}), lookups: newLookupPacer(time.Now)}

	if cfg.URL == "" {
		s.dataDir = cfg.DataDir
		if err := s.startEmbedded(&cfg); err != nil {
			return nil, err
		}
	} else if err := s.planBudget(&cfg, ""); err != nil {
		return nil, err
	}
	if err := s.connect(cfg); err != nil {
		s.shutdownServer()
		return nil, err
	}
	if err := s.checkOpened(ctx, cfg); err != nil {
		_ = s.Close()
		return nil, err
	}
	s.assetOpts, s.updateAssets = cfg.assetOptions(), cfg.UpdateAssets
	if err := s.ensureAssets(ctx, cfg); err != nil {
		_ = s.Close()
		return nil, err
	}
	s.warnLowered()
	if s.ns != nil && cfg.SyncAlways {
		if err := s.startGroupCommits(cfg); err != nil {
			_ = s.Close()
			return nil, err
		}
	}
	s.reportLost(ctx, cfg.DataDir)
	s.reap = make(chan consumerRef, reapQueue)
	s.reaperQuit = make(chan struct{})
	s.reaperDone = make(chan struct{})
	go s.runReaper(context.WithoutCancel(ctx), s.reaperQuit, s.reaperDone) // runs until Close, past Open's ctx
	s.startSpaceMonitor(ctx, cfg.SpaceCheckInterval, filepath.Join(cfg.DataDir, "jetstream"))
	s.log.Info("store opened",
		slog.Bool("embedded", s.ns != nil),
		slog.String("stream", StreamName),
		slog.String("bucket", BucketName),
		slog.Int("replicas", cfg.Replicas),
		slog.Duration("retention", cfg.Retention),
		slog.Duration("duplicate_window", cfg.DuplicateWindow))
	return s, nil
}

// assetOptions are the options the assets' configurations follow.
func (cfg Config) assetOptions() AssetOptions {
	o := AssetOptions{
		Replicas: cfg.Replicas, Retention: cfg.Retention, DuplicateWindow: cfg.DuplicateWindow,
		EventsMaxBytes: cfg.streamMaxBytes, RetentionBytes: cfg.RetentionBytes, RefuseWhenFull: cfg.RefuseWhenFull,
	}
	if cfg.URL != "" && cfg.RetentionBytes == 0 {
		// The cap of a stream on a cluster is its operator's (or that of
		// the embedded store that made it), not drift to refuse.
		o.EventsMaxBytes = 0
	}
	return o
}

// withDefaults validates cfg and fills in defaults, so the rest of Open can
// rely on every field being meaningful.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch {
	case cfg.Replicas < 0:
		return cfg, fmt.Errorf("store: replicas must not be negative, got %d", cfg.Replicas)
	case cfg.Replicas == 0:
		cfg.Replicas = 1
	}
	if cfg.URL == "" {
		if cfg.DataDir == "" {
			return cfg, errors.New("store: a data directory is required for the embedded server")
		}
		if cfg.Replicas > 1 {
			return cfg, fmt.Errorf("store: %d replicas need an external NATS cluster (set the NATS URL); the embedded server is a single node", cfg.Replicas)
		}
	}
	if err := cfg.validateExternal(); err != nil {
		return cfg, fmt.Errorf("store: %w", err)
	}
	switch {
	case cfg.Retention < 0:
		return cfg, fmt.Errorf("store: retention must not be negative, got %s", cfg.Retention)
	case cfg.Retention == 0:
		cfg.Retention = DefaultRetention
	}
	switch {
	case cfg.DuplicateWindow < 0:
		return cfg, fmt.Errorf("store: duplicate window must not be negative, got %s", cfg.DuplicateWindow)
	case cfg.DuplicateWindow == 0:
		cfg.DuplicateWindow = min(DefaultDuplicateWindow, cfg.Retention)
	}
	if cfg.SpaceCheckInterval <= 0 {
		cfg.SpaceCheckInterval = DefaultSpaceCheckInterval
	}
	if cfg.DuplicateWindow > cfg.Retention {
		return cfg, fmt.Errorf("store: duplicate window %s exceeds retention %s", cfg.DuplicateWindow, cfg.Retention)
	}
	return cfg, nil
}

// startEmbedded checks the data directory, then starts an in-process NATS
// server with JetStream and waits until it accepts connections.
func (s *Store) startEmbedded(cfg *Config) error {
	storeDir := filepath.Join(cfg.DataDir, "jetstream")
	if err := checkWritableDir(storeDir); err != nil {
		return fmt.Errorf("store: data directory %q is not usable: %w", cfg.DataDir, err)
	}
	if err := s.planBudget(cfg, storeDir); err != nil {
		return err
	}

	opts := &server.Options{
		ServerName: "klingfan",
		JetStream:  true,
		StoreDir:   storeDir,
		// An explicit budget, never the server's own guess from the free
		// disk at start-up: JetStream can raise an explicit one while it
		// runs (raiseStoreMax) but never a guessed one.
		JetStreamMaxStore: s.space.storeMax,
		// An event carries its raw body twice over at worst (raw and
		// normalized), so the default 1 MiB would refuse bodies well under
		// klingfan's own limit.
		MaxPayload: embeddedMaxPayload,
		NoSigs:     true, // klingfan owns signal handling.
		NoLog:      true, // logs go through slogAdapter below instead.
		DontListen: cfg.NATSListen == "",
	}
	if cfg.NATSListen != "" {
		host, port, err := natsListenAddr(cfg.NATSListen)
		if err != nil {
			return err
		}
		tok, err := natsClientToken(cfg.DataDir)
		if err != nil {
			return err
		}
		opts.Host, opts.Port = host, port
		// Every client authenticates, this process's in-process
		// connection included (see connect).
		opts.Authorization = tok
		s.natsToken = tok
	}

	ns, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("store: configure embedded NATS server: %w", err)
	}
	s.space.opts = opts.Clone()
	ns.SetLoggerV2(slogAdapter{log: s.log.With(slog.String("component", "nats-server"))}, false, false, false)
	ns.Start()
	s.ns = ns
	if !ns.ReadyForConnections(serverReadyTimeout) {
		s.shutdownServer()
		return fmt.Errorf("store: embedded NATS server in %q not ready after %s", storeDir, serverReadyTimeout)
	}
	if !ns.JetStreamEnabled() {
		s.shutdownServer()
		return fmt.Errorf("store: embedded NATS server started without JetStream (store directory %q): %w", storeDir, ErrUnavailable)
	}
	if err := s.fitRecovered(cfg); err != nil {
		s.shutdownServer()
		return err
	}
	if cfg.NATSListen != "" {
		s.log.Warn("embedded NATS server open to clients that present the token in the data directory; use only for debugging",
			slog.String("addr", ns.ClientURL()),
			slog.String("token_file", filepath.Join(cfg.DataDir, NATSTokenFile)))
	}
	return nil
}

// checkWritableDir creates dir if needed and proves that files can be
// created and removed in it.
func checkWritableDir(dir string) error {
	// 0700: the data directory also holds klingfan's generated admin token.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".klingfan-probe-*")
	if err != nil {
		return err
	}
	name := f.Name()
	closeErr := f.Close()
	removeErr := os.Remove(name)
	return errors.Join(closeErr, removeErr)
}

// MaxPayload returns the largest message the NATS server accepts
// (max_payload), which bounds the size of a stored event.
func (s *Store) MaxPayload() int64 { return s.nc.MaxPayload() }

// KV returns the registrations bucket. The registry package owns the record
// format; the store only guarantees the bucket exists.
func (s *Store) KV() jetstream.KeyValue { return s.kv }

// JetStream returns the JetStream context, for packages that own data of
// their own next to the log (the jobs projection's bucket, the
// reconciler's position and lease, the late-outcome record, consumer
// groups' durable consumers). They create their assets through
// EnsureStream and EnsureBucket, never directly, and must treat the events
// stream as read-only.
func (s *Store) JetStream() jetstream.JetStream { return s.js }

// Ready reports whether the log can currently serve requests: the connection
// is up and the stream answers. It backs /readyz, so it is cheap and bounded
// by ctx.
func (s *Store) Ready(ctx context.Context) error {
	if st := s.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("store: NATS connection is %s: %w", st, ErrUnavailable)
	}
	op := s.watch.begin()
	_, err := s.stream.Info(ctx)
	s.watch.end(op, err)
	if err != nil {
		return classify("stream info", err)
	}
	return s.fullErr()
}

// Close drains the client connection (letting in-flight consumers finish),
// then shuts the embedded server down and waits for it, which flushes the
// file store. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.stopSpaceMonitor()
		if s.reaperQuit != nil {
			close(s.reaperQuit)
			<-s.reaperDone
		}
		s.commit.stop()
		s.kvCommit.stop()
		s.watch.stop()
		if s.nc != nil {
			if err := s.nc.Drain(); err != nil {
				s.nc.Close()
			}
			timer := time.NewTimer(drainTimeout + time.Second)
			select {
			case <-s.closed:
			case <-timer.C:
				s.log.Warn("NATS connection drain timed out; closing")
				s.nc.Close()
			}
			timer.Stop()
		}
		s.shutdownServer()
		s.log.Info("store closed")
	})
	return s.closeErr
}

// shutdownServer stops the embedded server, if any, and waits until it has
// released the store directory.
func (s *Store) shutdownServer() {
	if s.ns == nil {
		return
	}
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// classify wraps err with the failed operation and, when the failure is a
// connection-class one that a retry may cure, with ErrUnavailable.
func classify(op string, err error) error {
	if isUnavailable(err) {
		return fmt.Errorf("store: %s: %w: %w", op, ErrUnavailable, err)
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// isUnavailable reports whether err means "the log cannot be reached right
// now" as opposed to "this request is wrong".
func isUnavailable(err error) bool {
	for _, target := range []error{
		context.DeadlineExceeded,
		nats.ErrTimeout,
		nats.ErrNoResponders,
		nats.ErrConnectionClosed,
		nats.ErrConnectionDraining,
		nats.ErrConnectionReconnecting,
		nats.ErrDisconnected,
		nats.ErrNoServers,
		nats.ErrReconnectBufExceeded, // a publish while reconnecting
		nats.ErrStaleConnection,
		nats.ErrJetStreamNotEnabled,
		jetstream.ErrNoStreamResponse,
		jetstream.ErrConnectionClosed,
		jetstream.ErrServerShutdown,
		jetstream.ErrJetStreamNotEnabled,
		jetstream.ErrJetStreamNotEnabledForAccount,
		jetstream.ErrStreamNotFound,
		// A read consumer lost with the node that hosted it.
		jetstream.ErrNoHeartbeat,
		jetstream.ErrConsumerDeleted,
		jetstream.ErrConsumerLeadershipChanged,
		jetstream.ErrOrderedConsumerReset,
		// The store stops its iterators only when the caller's context
		// ends, which is checked first; any other stop means the
		// connection was drained or closed underneath.
		jetstream.ErrMsgIteratorClosed,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	// JetStream answers 503 when it, the stream's leader or its storage is
	// temporarily unable to serve (no quorum, insufficient resources). It
	// answers 400 "no suitable peers for placement" while a cluster is still
	// forming, or has lost the nodes a replicated asset needs: that passes
	// when the peers come (back), so it is unavailability too.
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.Code == 503 || apiErr.ErrorCode == errCodeNoPeers)
}

// errCodeNoPeers is nats-server's JSClusterNoPeersErrF, "no suitable peers
// for placement", which nats.go names no constant for.
const errCodeNoPeers jetstream.ErrorCode = 10005
