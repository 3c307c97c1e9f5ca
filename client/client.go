// Package client is the Go client for klingfan, the gRPC event fan-out
// gateway for Kling AI callbacks.
//
// [Dial] connects; [Client.Subscribe] follows the event log and survives
// disconnects and restarts (with a [CursorStore], such as [FileCursor]);
// [Client.Consume] joins a consumer group whose members share the events,
// acknowledging each one its handler completes and retrying the ones that
// fail; [Client.WaitJob] waits until a Kling job finishes. The generated
// service clients stay available for everything else ([Client.Events],
// [Client.Webhooks], [Client.ConsumerGroups], [Client.Jobs]).
//
// Delivery is at least once in both modes: after a reconnect or a failed
// handler an event may be handled again, so handlers key their side
// effects on [gatewayv1.Event.Id], which is stable.
package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// Client is a connection to a klingfan server. It is safe for concurrent
// use; Close it when done.
type Client struct {
	conn     *grpc.ClientConn
	events   gatewayv1.EventServiceClient
	webhooks gatewayv1.WebhookServiceClient
	groups   gatewayv1.ConsumerGroupServiceClient
	jobs     gatewayv1.JobServiceClient
}

// An Option configures [Dial].
type Option func(*dialOptions)

type dialOptions struct {
	token    string
	tls      *tls.Config
	insecure bool
	grpc     []grpc.DialOption
}

// WithToken sends token as the bearer token on every call. Surrounding
// white space is dropped, so a token read from a file (the server's
// data/admin-token ends in a newline) works as it is. Over a plaintext
// connection ([WithInsecure]) the token travels in clear text, which is
// only fit for a trusted network.
func WithToken(token string) Option {
	return func(o *dialOptions) { o.token = strings.TrimSpace(token) }
}

// ErrPlaintextServer is what a call over TLS to a server without TLS (a
// local `make run`) fails with, in its status message. It is not
// [Retryable]: retrying cannot help, so Subscribe and Consume return it at
// once rather than reconnecting until their context ends.
var ErrPlaintextServer = errors.New("server speaks plaintext: use WithInsecure()")

// WithTLS connects over TLS with cfg (for a private CA or a client
// certificate). Without it and without [WithInsecure], Dial uses TLS with
// the system's roots.
func WithTLS(cfg *tls.Config) Option { return func(o *dialOptions) { o.tls = cfg } }

// WithInsecure connects without TLS, as to a local development server.
func WithInsecure() Option { return func(o *dialOptions) { o.insecure = true } }

// WithDialOptions adds gRPC dial options (interceptors, keepalive, a
// custom dialer); they are applied after the ones Dial sets.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *dialOptions) { o.grpc = append(o.grpc, opts...) }
}

// Dial returns a client for the server at addr ("host:port"). Like
// grpc.NewClient it connects lazily: the first call reports an unreachable
// server. ctx is reserved for future use and may be used to bound the
// dial in a later version.
func Dial(ctx context.Context, addr string, opts ...Option) (*Client, error) {
	_ = ctx
	var o dialOptions
	for _, opt := range opts {
		opt(&o)
	}
	var creds credentials.TransportCredentials
	switch {
	case o.insecure:
		creds = insecure.NewCredentials()
	case o.tls != nil:
		creds = plaintextAware{credentials.NewTLS(o.tls)}
	default:
		creds = plaintextAware{credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})}
	}
	dopts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if o.token != "" {
		dopts = append(dopts, grpc.WithPerRPCCredentials(bearer{token: o.token, secure: !o.insecure}))
	}
	conn, err := grpc.NewClient(addr, append(dopts, o.grpc...)...)
	if err != nil {
		return nil, fmt.Errorf("client: dial %s: %w", addr, err)
	}
	return New(conn), nil
}

// New returns a client over conn, a connection the caller made (with its
// own credentials) and keeps owning: Close on the client closes conn.
func New(conn *grpc.ClientConn) *Client {
	return &Client{
		conn:     conn,
		events:   gatewayv1.NewEventServiceClient(conn),
		webhooks: gatewayv1.NewWebhookServiceClient(conn),
		groups:   gatewayv1.NewConsumerGroupServiceClient(conn),
		jobs:     gatewayv1.NewJobServiceClient(conn),
	}
}

// Close closes the connection; calls in progress fail.
func (c *Client) Close() error { return c.conn.Close() }

// Conn returns the underlying gRPC connection, for services this package
// does not wrap.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Events returns the generated EventService client.
func (c *Client) Events() gatewayv1.EventServiceClient { return c.events }

// Webhooks returns the generated WebhookService client.
func (c *Client) Webhooks() gatewayv1.WebhookServiceClient { return c.webhooks }

// ConsumerGroups returns the generated ConsumerGroupService client.
func (c *Client) ConsumerGroups() gatewayv1.ConsumerGroupServiceClient { return c.groups }

// Jobs returns the generated JobService client.
func (c *Client) Jobs() gatewayv1.JobServiceClient { return c.jobs }

// plaintextAware is TLS that recognises a server answering the handshake
// in plaintext: a plaintext gRPC server opens with an HTTP/2 SETTINGS
// frame, which crypto/tls reports as a record header that is not TLS.
type plaintextAware struct {
	credentials.TransportCredentials
}

func (c plaintextAware) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, raw)
	if rh := (tls.RecordHeaderError{}); errors.As(err, &rh) {
		return nil, nil, ErrPlaintextServer
	}
	return conn, info, err
}

func (c plaintextAware) Clone() credentials.TransportCredentials {
	return plaintextAware{c.TransportCredentials.Clone()}
}

// bearer attaches the token to every call.
type bearer struct {
	token  string
	secure bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

func (b bearer) RequireTransportSecurity() bool { return b.secure }

// A Handler handles one event. Returning nil marks it done (the cursor
// moves past it, or the group acknowledges it); an error means it was not
// handled (Subscribe stops, Consume retries it later).
type Handler func(ctx context.Context, ev *gatewayv1.Event) error

// Backoff is how long to wait before reconnect attempt n (1 for the first
// retry): exponential from Min to Max with full jitter, so many clients that
// lost the same server do not return in step.
type Backoff struct {
	Min, Max time.Duration
}

// DefaultBackoff is used when no other is given: 100ms doubling to 10s.
var DefaultBackoff = Backoff{Min: 100 * time.Millisecond, Max: 10 * time.Second}

// Delay returns the jittered wait before attempt n.
func (b Backoff) Delay(n int) time.Duration {
	d := b.Min
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	return d/2 + rand.N(d/2+1)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Retryable reports whether a stream that failed with err is worth
// reopening: the server went away, restarted or asked the client to come
// back later. Wrong requests, missing permissions and a resume point older
// than retention are not.
func Retryable(err error) bool {
	if err == nil || errors.Is(err, io.EOF) {
		return true
	}
	st, ok := status.FromError(err)
	if !ok || strings.Contains(st.Message(), ErrPlaintextServer.Error()) {
		return false
	}
	switch st.Code() {
	case codes.Unavailable, codes.Aborted, codes.ResourceExhausted:
		return true
	case codes.Internal, codes.Unknown:
		msg := st.Message()
		return strings.Contains(msg, "RST_STREAM") || strings.Contains(msg, "transport") || strings.Contains(msg, "EOF")
	}
	return false
}
