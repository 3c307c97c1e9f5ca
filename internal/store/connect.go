package store

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Reconnection policy for an external deployment. The client never gives
// up: while it is away the store answers ErrUnavailable, ingest answers 503
// and Kling retries, which is better than a process that exits and needs a
// supervisor to come back.
const (
	// reconnectWait is the pause before trying a server again that was
	// tried recently; a server not tried yet is tried at once, so losing
	// one node of a cluster costs only a round trip.
	reconnectWait = time.Second
	// reconnectJitter and reconnectJitterTLS spread the reconnects of many
	// klingfan replicas, so a restarted cluster is not hit by all of them
	// in the same instant.
	reconnectJitter    = 500 * time.Millisecond
	reconnectJitterTLS = 2 * time.Second
	// pingInterval and maxPingsOut detect a silently dead server (a
	// partition, not a closed socket) within about half a minute instead of
	// the client's default four minutes.
	pingInterval = 10 * time.Second
	maxPingsOut  = 3
)

// connect opens the client connection: in-process to the embedded server,
// or over the network to cfg.URL with unlimited reconnects so a cluster
// outage degrades to 503s instead of a dead process.
func (s *Store) connect(cfg Config) error {
	opts := []nats.Option{
		nats.Name("klingfan"),
		nats.DrainTimeout(drainTimeout),
		nats.ClosedHandler(func(*nats.Conn) { close(s.closed) }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			attrs := []any{slog.Any("err", err)}
			if sub != nil {
				attrs = append(attrs, slog.String("subject", sub.Subject))
			}
			s.log.Warn("NATS asynchronous error", attrs...)
		}),
	}
	url := cfg.URL
	if s.ns != nil {
		url = ""
		opts = append(opts, nats.InProcessServer(s.ns))
		if s.natsToken != "" {
			opts = append(opts, nats.Token(s.natsToken))
		}
	} else {
		s.watch = newServerWatch(s.log)
		ext, err := s.externalOptions(cfg)
		if err != nil {
			return err
		}
		opts = append(opts, ext...)
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		if cfg.URL != "" {
			return fmt.Errorf("store: connect to NATS at %q: %w: %w", redactURLs(cfg.URL), ErrUnavailable, err)
		}
		return fmt.Errorf("store: connect to embedded NATS server: %w", err)
	}
	s.nc = nc
	if s.watch != nil {
		s.watch.nc = nc
	}
	if s.ns == nil {
		s.log.Info("connected to NATS",
			slog.String("url", nc.ConnectedUrlRedacted()),
			slog.String("server", nc.ConnectedServerName()),
			slog.String("cluster", nc.ConnectedClusterName()))
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(requestTimeout))
	if err != nil {
		nc.Close()
		return fmt.Errorf("store: JetStream client: %w", err)
	}
	s.js = js
	return nil
}

// externalOptions returns the connection options for an external
// deployment: credentials, TLS, reconnection and the handlers that log
// connection changes. Nothing here ever logs a credential: URLs are logged
// redacted and errors from nats.go do not carry secrets.
func (s *Store) externalOptions(cfg Config) ([]nats.Option, error) {
	opts := []nats.Option{
		nats.MaxReconnects(-1),
		nats.ReconnectWait(reconnectWait),
		nats.ReconnectJitter(reconnectJitter, reconnectJitterTLS),
		// No reconnect buffer: a publish made while disconnected fails at
		// once (ErrUnavailable, so ingest answers 503 and Kling retries)
		// instead of waiting out its timeout and perhaps landing later.
		nats.ReconnectBufSize(-1),
		nats.PingInterval(pingInterval),
		nats.MaxPingsOutstanding(maxPingsOut),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err == nil {
				return // a deliberate close, logged by Close
			}
			s.log.Warn("NATS connection lost; reconnecting", slog.Any("err", err))
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			s.log.Debug("NATS reconnect attempt failed", slog.Any("err", err))
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			s.watch.reconnected()
			s.log.Info("NATS connection restored",
				slog.String("url", nc.ConnectedUrlRedacted()),
				slog.String("server", nc.ConnectedServerName()))
		}),
		nats.DiscoveredServersHandler(func(nc *nats.Conn) {
			s.log.Debug("NATS servers discovered", slog.Any("servers", redactAll(nc.DiscoveredServers())))
		}),
		nats.LameDuckModeHandler(func(nc *nats.Conn) {
			s.log.Info("NATS server entering lame duck mode; will reconnect to another",
				slog.String("server", nc.ConnectedServerName()))
		}),
	}
	switch {
	case cfg.User != "":
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	case cfg.Token != "":
		opts = append(opts, nats.Token(cfg.Token))
	}
	switch {
	case cfg.CredsFile != "":
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	case cfg.NKeyFile != "":
		o, err := nats.NkeyOptionFromSeed(cfg.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("store: NATS nkey seed file %q: %w", cfg.NKeyFile, err)
		}
		opts = append(opts, o)
	}
	if cfg.TLSCAFile != "" {
		opts = append(opts, nats.RootCAs(cfg.TLSCAFile))
	}
	if cfg.TLSCertFile != "" {
		opts = append(opts, nats.ClientCert(cfg.TLSCertFile, cfg.TLSKeyFile))
	}
	return opts, nil
}

// validateExternal checks the external-connection settings: credentials
// that exclude each other and file options that go together.
func (cfg Config) validateExternal() error {
	var errs []error
	if cfg.URL == "" {
		if cfg.User != "" || cfg.Password != "" || cfg.Token != "" || cfg.CredsFile != "" || cfg.NKeyFile != "" ||
			cfg.TLSCAFile != "" || cfg.TLSCertFile != "" || cfg.TLSKeyFile != "" {
			errs = append(errs, errors.New("NATS credentials and TLS settings need a NATS URL; the embedded server uses none"))
		}
		return errors.Join(errs...)
	}
	if cfg.Password != "" && cfg.User == "" {
		errs = append(errs, errors.New("a NATS password needs a user"))
	}
	if cfg.User != "" && cfg.Token != "" {
		errs = append(errs, errors.New("use either a NATS user or a NATS token, not both"))
	}
	if cfg.CredsFile != "" && cfg.NKeyFile != "" {
		errs = append(errs, errors.New("use either a NATS credentials file or an nkey seed file, not both"))
	}
	if (cfg.CredsFile != "" || cfg.NKeyFile != "") && (cfg.User != "" || cfg.Token != "") {
		errs = append(errs, errors.New("a NATS credentials or nkey file replaces user, password and token"))
	}
	if (cfg.TLSCertFile == "") != (cfg.TLSKeyFile == "") {
		errs = append(errs, errors.New("a NATS TLS client certificate and key go together"))
	}
	return errors.Join(errs...)
}

// redactURLs returns a comma-separated URL list with every password (and a
// token given as the user part) replaced, fit for logs and errors.
func redactURLs(list string) string {
	return strings.Join(redactAll(strings.Split(list, ",")), ",")
}

func redactAll(urls []string) []string {
	out := make([]string, 0, len(urls))
	for _, raw := range urls {
		out = append(out, redactURL(strings.TrimSpace(raw)))
	}
	return out
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		// Unparseable: drop anything that may be user information.
		if i := strings.LastIndex(raw, "@"); i >= 0 {
			return "redacted@" + raw[i+1:]
		}
		return raw
	}
	if u.User == nil {
		return raw
	}
	if _, hasPassword := u.User.Password(); hasPassword {
		return u.Redacted()
	}
	// A lone user part is how a token is written in a NATS URL.
	u.User = url.User("redacted")
	return u.String()
}
