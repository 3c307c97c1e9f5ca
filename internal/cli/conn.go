package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/klingfan/klingfan/internal/certpool"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	klingfan "github.com/klingfan/klingfan/client"
	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// Connection defaults.
const (
	defaultServer  = "localhost:9090"
	defaultDataDir = "./data"
	// adminTokenFile is where a local server keeps its generated admin
	// token, under its data directory (auth.AdminTokenFile on the server).
	adminTokenFile = "admin-token"
	// defaultTimeout bounds each unary call, connecting included, so an
	// unreachable server fails fast.
	defaultTimeout = 10 * time.Second
	// maxReconnectDelay caps both klingctl's and gRPC's reconnect backoff.
	maxReconnectDelay = 5 * time.Second
)

// client holds one run's connection settings and, once dialed, its
// connection.
type client struct {
	env Env

	server  string
	token   string
	dataDir string
	useTLS  bool
	// plaintextOK allows a token over plaintext to a non-loopback server.
	plaintextOK bool
	caFile      string
	certFile    string
	keyFile     string
	skipVerify  bool
	timeout     time.Duration

	conn *grpc.ClientConn
	// tokenSource says where the token came from, for error messages; empty
	// when there is none.
	tokenSource string
}

func (c *client) addConnectionFlags(root *cobra.Command) {
	server := c.env.getenv("KLINGFAN_SERVER")
	if server == "" {
		server = defaultServer
	}
	dataDir := c.env.getenv("KLINGFAN_DATA_DIR")
	if dataDir == "" {
		dataDir = defaultDataDir
	}
	f := root.PersistentFlags()
	f.StringVar(&c.server, "server", server, "gateway gRPC address host:port ($KLINGFAN_SERVER)")
	f.StringVar(&c.token, "token", "", "bearer token (default $KLINGFAN_TOKEN, else <data-dir>/admin-token)")
	f.StringVar(&c.dataDir, "data-dir", dataDir, "data directory of a local server, for its generated admin token ($KLINGFAN_DATA_DIR)")
	f.BoolVar(&c.useTLS, "tls", false, "connect with TLS (implied by --ca, --cert and --insecure-skip-verify)")
	f.StringVar(&c.caFile, "ca", "", "PEM file of the CA that signed the server's certificate (implies --tls)")
	f.StringVar(&c.certFile, "cert", "", "PEM client certificate, for servers that require one (with --key)")
	f.StringVar(&c.keyFile, "key", "", "PEM private key of --cert")
	f.BoolVar(&c.skipVerify, "insecure-skip-verify", false, "do not verify the server's certificate (testing only)")
	f.BoolVar(&c.plaintextOK, "insecure", false, "send the token without TLS to a server that is not on this machine")
	f.DurationVar(&c.timeout, "timeout", defaultTimeout, "time limit of each request, connecting included")
}

// resolveToken picks the bearer token: --token, then $KLINGFAN_TOKEN, then
// the admin token file of a local server. No token is not an error here:
// the server decides, and the UNAUTHENTICATED message explains.
func (c *client) resolveToken() (string, error) {
	if t := strings.TrimSpace(c.token); t != "" {
		c.tokenSource = "--token"
		return t, nil
	}
	if t := strings.TrimSpace(c.env.getenv("KLINGFAN_TOKEN")); t != "" {
		c.tokenSource = "$KLINGFAN_TOKEN"
		return t, nil
	}
	path := filepath.Join(c.dataDir, adminTokenFile)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("reading the admin token: %w", err)
	}
	if t := strings.TrimSpace(string(b)); t != "" {
		c.tokenSource = path
		return t, nil
	}
	return "", nil
}

// tlsConfig returns the client TLS configuration, or nil for plaintext.
func (c *client) tlsConfig() (*tls.Config, error) {
	if !c.useTLS && c.caFile == "" && c.certFile == "" && !c.skipVerify {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.skipVerify} //nolint:gosec // opt-in flag for testing
	if c.caFile != "" {
		pool, err := certpool.Load("--ca", c.caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if (c.certFile == "") != (c.keyFile == "") {
		return nil, usagef("--cert and --key go together")
	}
	if c.certFile != "" {
		cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
		if err != nil {
			return nil, fmt.Errorf("--cert/--key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// dial returns the connection, creating it on first use. gRPC connects
// lazily; calls do not wait for readiness, so an unreachable server fails
// the first call at once instead of hanging.
func (c *client) dial() (*grpc.ClientConn, error) {
	if c.conn != nil {
		return c.conn, nil
	}
	if c.server == "" {
		return nil, usagef("--server is empty")
	}
	tlsCfg, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	token, err := c.resolveToken()
	if err != nil {
		return nil, err
	}
	if tlsCfg == nil && token != "" && !c.plaintextOK && !isLoopback(c.server) {
		return nil, usagef("refusing to send a token in plaintext to %s, which is not this machine: use --tls (or --insecure on a network you trust)", c.server)
	}
	creds := insecure.NewCredentials()
	if tlsCfg != nil {
		creds = credentials.NewTLS(tlsCfg)
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithUserAgent("klingctl"),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  100 * time.Millisecond,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   maxReconnectDelay,
			},
			MinConnectTimeout: maxReconnectDelay,
		}),
		// Notice a dead server under an idle listen stream. The server
		// allows pings every 10s.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearerToken(token)))
	}
	conn, err := grpc.NewClient(c.server, opts...)
	if err != nil {
		return nil, usagef("--server %q: %v", c.server, err)
	}
	c.conn = conn
	return conn, nil
}

func (c *client) close() {
	if c.conn != nil {
		c.conn.Close()
	}
}

func (c *client) events() (gatewayv1.EventServiceClient, error) {
	conn, err := c.dial()
	if err != nil {
		return nil, err
	}
	return gatewayv1.NewEventServiceClient(conn), nil
}

// gateway returns the public Go client over klingctl's connection, for the
// commands built on it (listen, wait). klingctl keeps owning the
// connection: the client is never closed.
func (c *client) gateway() (*klingfan.Client, error) {
	conn, err := c.dial()
	if err != nil {
		return nil, err
	}
	return klingfan.New(conn), nil
}

func (c *client) webhooks() (gatewayv1.WebhookServiceClient, error) {
	conn, err := c.dial()
	if err != nil {
		return nil, err
	}
	return gatewayv1.NewWebhookServiceClient(conn), nil
}

// call dials, builds a service client with newClient and makes one call of
// method, bounded by --timeout: the dial-and-call every unary subcommand
// does, whatever its service.
func call[Svc, Req, Resp any](c *client, ctx context.Context, newClient func(grpc.ClientConnInterface) Svc, method func(Svc, context.Context, Req, ...grpc.CallOption) (Resp, error), req Req) (Resp, error) {
	conn, err := c.dial()
	if err != nil {
		var zero Resp
		return zero, err
	}
	ctx, cancel := c.unary(ctx)
	defer cancel()
	return method(newClient(conn), ctx, req)
}

// callWebhooks is call for the WebhookService.
func callWebhooks[Req, Resp any](c *client, ctx context.Context, method func(gatewayv1.WebhookServiceClient, context.Context, Req, ...grpc.CallOption) (Resp, error), req Req) (Resp, error) {
	return call(c, ctx, gatewayv1.NewWebhookServiceClient, method, req)
}

// callEvents is call for the EventService.
func callEvents[Req, Resp any](c *client, ctx context.Context, method func(gatewayv1.EventServiceClient, context.Context, Req, ...grpc.CallOption) (Resp, error), req Req) (Resp, error) {
	return call(c, ctx, gatewayv1.NewEventServiceClient, method, req)
}

// callGroups is call for the ConsumerGroupService.
func callGroups[Req, Resp any](c *client, ctx context.Context, method func(gatewayv1.ConsumerGroupServiceClient, context.Context, Req, ...grpc.CallOption) (Resp, error), req Req) (Resp, error) {
	return call(c, ctx, gatewayv1.NewConsumerGroupServiceClient, method, req)
}

// unary bounds one unary call by --timeout.
func (c *client) unary(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.timeout)
}

// bearerToken sends "authorization: Bearer <token>" with every call. It is
// allowed over plaintext, for a gateway on localhost; use --tls elsewhere.
type bearerToken string

func (t bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}

func (bearerToken) RequireTransportSecurity() bool { return false }

// isLoopback reports whether the host of addr ("host:port") is this
// machine: localhost or a loopback address.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
