// Package config turns command-line flags and KLINGFAN_* environment
// variables into a validated Config. It is the only place that knows the
// names and defaults of klingfan's settings.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Config is everything `klingfan serve` needs to run.
type Config struct {
	HTTPAddr string
	GRPCAddr string
	DataDir  string
	// PublicURL is the externally reachable base URL of the HTTP listener,
	// used to build the ingest URLs handed to Kling.
	PublicURL string
	// PublicURLSet says the operator set --public-url rather than taking
	// the localhost default: CreateJob hands the URL to Kling, so it refuses
	// to guess it.
	PublicURLSet bool
	// Create bounds what each token may create with CreateJob.
	Create Create

	LogLevel  slog.Level
	LogFormat string // "text" or "json"

	NATSListen string
	NATSURL    string
	// NATSUser with NATSPassword, or NATSToken, authenticate to the
	// external cluster; NATSCreds and NATSNKey name a credentials file and
	// an nkey seed file. Secrets belong in KLINGFAN_NATS_PASSWORD and
	// KLINGFAN_NATS_TOKEN rather than on a command line.
	NATSUser     string
	NATSPassword string
	NATSToken    string
	NATSCreds    string
	NATSNKey     string
	// NATSTLSCA verifies the cluster's certificates; NATSTLSCert and
	// NATSTLSKey present a client certificate.
	NATSTLSCA   string
	NATSTLSCert string
	NATSTLSKey  string
	// NATSUpdateConfig applies the configured stream and bucket settings
	// to existing ones on the external cluster instead of refusing to
	// start when they differ.
	NATSUpdateConfig bool

	Replicas  int
	Retention time.Duration
	// MaxStoreBytes is the embedded JetStream's file-store budget; 0
	// derives it from the disk (see store.Config.MaxStoreBytes).
	// RetentionBytes caps the events stream's size beside Retention; 0
	// means only the store budget caps it. RetentionPolicy says what
	// happens at the cap: RetentionDiscardOldest or RetentionRefuse.
	MaxStoreBytes   int64
	RetentionBytes  int64
	RetentionPolicy string
	// StoreCheckInterval is how often the store re-reads its usage,
	// ListPageBudget how long one ListEvents page may scan before it
	// returns what it found with a token to continue, AuxStreamLifetime
	// how long a health Watch or reflection stream may last; they have no
	// flag (tests shorten them), 0 means the default.
	StoreCheckInterval time.Duration
	ListPageBudget     time.Duration
	AuxStreamLifetime  time.Duration
	DedupWindow        time.Duration
	SyncAlways         bool
	MaxBodyBytes       int64
	IngestRate         float64
	IngestBurst        int
	MaxHTTPConns       int
	// MaxHTTPConnsPerAddr bounds one client address's HTTP connections, so
	// one client cannot hold every --max-http-conns slot; 0: no bound.
	MaxHTTPConnsPerAddr int
	// IngestAddr, when set, serves ingest on a listener of its own, so
	// management traffic cannot starve Kling's deliveries.
	IngestAddr string
	// MetricsAddr, when set, serves /metrics there instead of on
	// --http-addr, so its labels (registration ids) stay off the public port.
	MetricsAddr string
	// MaxEventAge, when positive, refuses a seed-format delivery whose
	// signed timestamp is further than this from now (registrations with
	// signature_tolerance 0s opt out).
	MaxEventAge        time.Duration
	MaxGRPCConns       int
	HeaderTimeout      time.Duration
	IngestTimeout      time.Duration
	MaxStreams         int
	StreamBuffer       int
	MaxStreamsPerToken int
	// CatchUpBytes bounds the memory all catch-up reads from the log hold
	// at once (0: no bound); SendDeadline ends a stream whose Send
	// has not completed in that long (0: never).
	CatchUpBytes  int64
	SendDeadline  time.Duration
	ShutdownGrace time.Duration
	TLSCert       string
	TLSKey        string
	TLSClientCA   string
	TokensFile    string
	AdminToken    string // from KLINGFAN_ADMIN_TOKEN only: a token has no business on a command line
	KlingaiSecret string // from KLINGAI_WEBHOOK_SECRET only
	SecretKey     string // from KLINGFAN_SECRET_KEY only
	Reconcile     Reconcile
}

// EnvPrefix prefixes the environment equivalent of every flag:
// --http-addr is KLINGFAN_HTTP_ADDR.
const EnvPrefix = "KLINGFAN_"

// EnvName returns the environment variable that sets the named flag.
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse reads the `serve` flags from args, with environment variables from
// lookup as defaults that the command line overrides. Help output goes to out.
func Parse(args []string, lookup func(string) (string, bool), out io.Writer) (Config, error) {
	var c Config
	lookup, err := withEnvFile(args, lookup)
	if err != nil {
		return Config{}, err
	}
	fs := flag.NewFlagSet("klingfan serve", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.HTTPAddr, "http-addr", ":8080", "HTTP listen address: ingest, REST API, /metrics, /healthz")
	fs.StringVar(&c.GRPCAddr, "grpc-addr", ":9090", "gRPC listen address")
	fs.StringVar(&c.DataDir, "data-dir", "./data", "directory for the embedded JetStream store and the generated admin token")
	fs.StringVar(&c.PublicURL, "public-url", "", "base URL Kling reaches this server at, for ingest URLs (default http://localhost:<http port>)")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.NATSListen, "nats-listen", "", "also open the embedded NATS server to clients on this address (off by default; a bare port means loopback; clients need the token in <data-dir>/nats-token)")
	fs.StringVar(&c.NATSURL, "nats-url", "", "use this external NATS cluster (comma-separated URLs) instead of the embedded server")
	fs.StringVar(&c.NATSUser, "nats-user", "", "user for the external NATS cluster (password in KLINGFAN_NATS_PASSWORD)")
	fs.StringVar(&c.NATSPassword, "nats-password", "", "password for --nats-user; prefer KLINGFAN_NATS_PASSWORD, command lines are visible to other local users")
	fs.StringVar(&c.NATSToken, "nats-token", "", "token for the external NATS cluster; prefer KLINGFAN_NATS_TOKEN")
	fs.StringVar(&c.NATSCreds, "nats-creds", "", "NATS user credentials file (JWT and nkey seed) for the external cluster")
	fs.StringVar(&c.NATSNKey, "nats-nkey", "", "NATS nkey seed file for the external cluster")
	fs.StringVar(&c.NATSTLSCA, "nats-tls-ca", "", "CA file that verifies the external NATS servers (turns TLS on)")
	fs.StringVar(&c.NATSTLSCert, "nats-tls-cert", "", "client certificate file for the external NATS cluster")
	fs.StringVar(&c.NATSTLSKey, "nats-tls-key", "", "client key file for --nats-tls-cert")
	fs.BoolVar(&c.NATSUpdateConfig, "nats-update-config", false, "apply the configured replicas, retention, dedup window and other settings to every existing JetStream stream and bucket that differs (otherwise start-up fails and lists the differences)")
	fs.IntVar(&c.Replicas, "replicas", 0, "stream and KV replicas (default 1 embedded, 3 with --nats-url)")
	fs.DurationVar(&c.Retention, "retention", 168*time.Hour, "how long events are kept in the log")
	fs.Var(sizeFlag{&c.MaxStoreBytes}, "max-store-bytes", "embedded JetStream file-store budget, e.g. 20GiB (default: the store's disk, less a reserve, re-checked as the disk grows)")
	fs.Var(sizeFlag{&c.RetentionBytes}, "retention-bytes", "largest size of the event log, e.g. 10GiB, beside --retention (default: the store budget)")
	fs.StringVar(&c.RetentionPolicy, "retention-policy", RetentionDiscardOldest, "at the size cap: discard-oldest (drop the oldest events) or refuse (answer new deliveries 503)")
	// The same default as store.DefaultDuplicateWindow, which says why.
	fs.DurationVar(&c.DedupWindow, "dedup-window", 5*time.Minute, "how long JetStream remembers delivery ids (a repeated delivery is recognised over the whole retention by its event id; start-up rebuilds the window's ids)")
	sync := fs.String("sync", "always", "embedded store fsync policy: always (a delivery is fsynced before its 2xx; concurrent ones share an fsync) or interval (faster, but a power loss or kernel crash loses up to two minutes of acknowledged deliveries)")
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", 1<<20, "largest accepted ingest body")
	fs.Float64Var(&c.IngestRate, "ingest-rate", 500, "deliveries per second each registration accepts before 429 (0: no limit)")
	fs.IntVar(&c.IngestBurst, "ingest-burst", 1000, "deliveries a registration may send at once above --ingest-rate")
	fs.IntVar(&c.MaxHTTPConns, "max-http-conns", 10000, "maximum concurrent HTTP connections")
	fs.IntVar(&c.MaxHTTPConnsPerAddr, "max-http-conns-per-addr", 256, "maximum concurrent HTTP connections from one client address (0: no limit; raise it behind a proxy)")
	fs.DurationVar(&c.MaxEventAge, "max-event-age", 0, "refuse a {\"event\",\"timestamp\"} delivery whose signed timestamp is further than this from now, so a capture cannot be replayed once the log has dropped its event; keep it at most --retention and above Kling's retry horizon (0: off)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "", "serve /metrics on this address instead of --http-addr (keep it private: its labels name registrations)")
	fs.StringVar(&c.IngestAddr, "ingest-addr", "", "serve ingest (/webhooks/...) also on this address, with its own connection limits, so other HTTP traffic cannot starve it")
	fs.IntVar(&c.MaxGRPCConns, "max-grpc-conns", 10000, "maximum concurrent gRPC connections")
	fs.IntVar(&c.MaxStreams, "max-streams", 10000, "maximum concurrent Subscribe streams")
	fs.IntVar(&c.MaxStreamsPerToken, "max-streams-per-token", 1000, "maximum concurrent Subscribe streams per API token (0: no limit)")
	fs.IntVar(&c.StreamBuffer, "stream-buffer", 256, "events buffered per subscriber before it switches to catch-up reads")
	c.CatchUpBytes = 256 << 20
	fs.Var(sizeFlag{&c.CatchUpBytes}, "catch-up-memory", "memory that all streams catching up from the log may hold at once, e.g. 256MiB; a stream that finds it used up waits (0: no bound)")
	fs.DurationVar(&c.SendDeadline, "send-deadline", 30*time.Second, "end a Subscribe or Consume stream whose client has not accepted a message for this long (a subscriber resumes after its last sequence; a member's unacknowledged events go to the others); 0: never")
	fs.DurationVar(&c.HeaderTimeout, "http-header-timeout", 10*time.Second, "how long a client may take to send request headers")
	fs.DurationVar(&c.IngestTimeout, "ingest-timeout", 15*time.Second, "how long an ingest request may take to send its body and read the answer")
	fs.DurationVar(&c.ShutdownGrace, "shutdown-grace", 10*time.Second, "how long shutdown waits for in-flight requests")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "TLS certificate file for both listeners")
	fs.StringVar(&c.TLSKey, "tls-key", "", "TLS key file for both listeners")
	fs.StringVar(&c.TLSClientCA, "tls-client-ca", "", "CA file: require client certificates on gRPC (mutual TLS)")
	fs.String(envFileFlag, "", "file of KLINGFAN_* variables (KEY=VALUE lines) read at start and again on SIGHUP; the process environment wins over it")
	fs.StringVar(&c.TokensFile, "tokens-file", "", "file of named API tokens with scopes")
	registerReconcileFlags(fs, &c.Reconcile)
	registerCreateFlags(fs, &c.Create)

	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if v, ok := lookup(EnvName(f.Name)); ok && envErr == nil {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("config: %s=%q: %w", EnvName(f.Name), v, err)
			}
		}
	})
	if envErr != nil {
		return Config{}, envErr
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("config: unexpected argument %q", fs.Arg(0))
	}
	c.AdminToken, _ = lookup("KLINGFAN_ADMIN_TOKEN")
	c.KlingaiSecret, _ = lookup("KLINGAI_WEBHOOK_SECRET")
	c.SecretKey, _ = lookup("KLINGFAN_SECRET_KEY")
	c.Reconcile.finish(lookup)

	if err := c.LogLevel.UnmarshalText([]byte(*level)); err != nil {
		return Config{}, fmt.Errorf("config: --log-level %q: want debug, info, warn or error", *level)
	}
	switch *sync {
	case "interval":
	case "always":
		c.SyncAlways = true
	default:
		return Config{}, fmt.Errorf("config: --sync %q: want interval or always", *sync)
	}
	return c, c.validate()
}

func (c *Config) validate() error {
	var errs []error
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format %q: want text or json", c.LogFormat))
	}
	for name, addr := range map[string]string{"--http-addr": c.HTTPAddr, "--grpc-addr": c.GRPCAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: want host:port", name, addr))
		}
	}
	if c.DataDir == "" && c.NATSURL == "" {
		errs = append(errs, errors.New("--data-dir must not be empty"))
	}
	c.PublicURLSet = c.PublicURL != ""
	if c.PublicURL == "" {
		_, port, _ := net.SplitHostPort(c.HTTPAddr)
		c.PublicURL = "http://localhost:" + port
	}
	if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("--public-url %q: want an absolute http(s) URL", c.PublicURL))
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	if c.Replicas == 0 {
		c.Replicas = 1
		if c.NATSURL != "" {
			c.Replicas = 3
		}
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("--replicas %d: want 1 to 5", c.Replicas))
	}
	errs = append(errs, c.validateNATS()...)
	errs = append(errs, c.Reconcile.validate()...)
	errs = append(errs, c.Create.validate()...)
	if c.Retention <= 0 {
		errs = append(errs, fmt.Errorf("--retention %s: must be positive", c.Retention))
	}
	errs = append(errs, c.validateStorage()...)
	if c.DedupWindow <= 0 || c.DedupWindow > c.Retention {
		errs = append(errs, fmt.Errorf("--dedup-window %s: must be positive and at most --retention", c.DedupWindow))
	}
	if c.MaxBodyBytes < 1024 || c.MaxBodyBytes > 3<<20 {
		errs = append(errs, fmt.Errorf("--max-body-bytes %d: must be between 1024 and 3 MiB (events are stored with their raw body)", c.MaxBodyBytes))
	}
	if c.IngestRate < 0 || c.IngestBurst < 0 {
		errs = append(errs, errors.New("--ingest-rate and --ingest-burst must not be negative"))
	}
	if c.HeaderTimeout <= 0 || c.IngestTimeout <= 0 {
		errs = append(errs, errors.New("--http-header-timeout and --ingest-timeout must be positive"))
	}
	for name, addr := range map[string]string{"--ingest-addr": c.IngestAddr, "--metrics-addr": c.MetricsAddr} {
		if _, _, err := net.SplitHostPort(addr); addr != "" && err != nil {
			errs = append(errs, fmt.Errorf("%s %q: want host:port", name, addr))
		}
	}
	if c.MaxEventAge < 0 || c.MaxEventAge > c.Retention {
		errs = append(errs, fmt.Errorf("--max-event-age %s: must be between 0 (off) and --retention", c.MaxEventAge))
	}
	if c.MaxHTTPConnsPerAddr < 0 {
		errs = append(errs, fmt.Errorf("--max-http-conns-per-addr %d: must not be negative", c.MaxHTTPConnsPerAddr))
	}
	if c.MaxHTTPConns < 1 || c.MaxGRPCConns < 1 {
		errs = append(errs, fmt.Errorf("--max-http-conns %d and --max-grpc-conns %d: must be at least 1", c.MaxHTTPConns, c.MaxGRPCConns))
	}
	if c.MaxStreams < 1 {
		errs = append(errs, fmt.Errorf("--max-streams %d: must be at least 1", c.MaxStreams))
	}
	if c.SendDeadline < 0 {
		errs = append(errs, fmt.Errorf("--send-deadline %s: must not be negative", c.SendDeadline))
	}
	if c.StreamBuffer < 1 {
		errs = append(errs, fmt.Errorf("--stream-buffer %d: must be at least 1", c.StreamBuffer))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key go together"))
	}
	if c.TLSClientCA != "" && c.TLSCert == "" {
		errs = append(errs, errors.New("--tls-client-ca needs --tls-cert and --tls-key"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("config: %w", errors.Join(errs...))
	}
	return nil
}

// validateNATS checks the external cluster's credentials and TLS settings.
func (c *Config) validateNATS() []error {
	var errs []error
	if c.NATSURL == "" {
		for name, v := range map[string]string{
			"--nats-user": c.NATSUser, "--nats-password": c.NATSPassword, "--nats-token": c.NATSToken,
			"--nats-creds": c.NATSCreds, "--nats-nkey": c.NATSNKey,
			"--nats-tls-ca": c.NATSTLSCA, "--nats-tls-cert": c.NATSTLSCert, "--nats-tls-key": c.NATSTLSKey,
		} {
			if v != "" {
				errs = append(errs, fmt.Errorf("%s needs --nats-url: the embedded server takes no credentials", name))
			}
		}
		if c.Replicas > 1 {
			errs = append(errs, fmt.Errorf("--replicas %d needs --nats-url: the embedded server is a single node", c.Replicas))
		}
		slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
		return errs
	}
	if c.NATSNKey != "" && c.NATSCreds != "" {
		errs = append(errs, errors.New("--nats-creds and --nats-nkey exclude each other"))
	}
	if (c.NATSCreds != "" || c.NATSNKey != "") && (c.NATSUser != "" || c.NATSToken != "") {
		errs = append(errs, errors.New("--nats-creds and --nats-nkey replace --nats-user and --nats-token"))
	}
	if c.NATSUser != "" && c.NATSToken != "" {
		errs = append(errs, errors.New("--nats-user and --nats-token exclude each other"))
	}
	if c.NATSPassword != "" && c.NATSUser == "" {
		errs = append(errs, errors.New("--nats-password needs --nats-user"))
	}
	if (c.NATSTLSCert == "") != (c.NATSTLSKey == "") {
		errs = append(errs, errors.New("--nats-tls-cert and --nats-tls-key go together"))
	}
	return errs
}
