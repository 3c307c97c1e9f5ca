package cli_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/app"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/cli"
	"github.com/klingfan/klingfan/internal/config"
)

// klingSecret is the KLINGAI_WEBHOOK_SECRET of test servers: the
// registration "default" behind /webhooks/klingai.
const klingSecret = "cli-test-kling-secret"

// waitFor bounds every wait on output.
const waitFor = 20 * time.Second

// result is what one klingctl run produced.
type result struct {
	code           int
	stdout, stderr string
}

// runOpts adjusts the Env of one run.
type runOpts struct {
	vars     map[string]string
	stdin    string
	terminal bool
}

func (o runOpts) env(stdout, stderr io.Writer) cli.Env {
	return cli.Env{
		Stdin:  strings.NewReader(o.stdin),
		Stdout: stdout,
		Stderr: stderr,
		LookupEnv: func(k string) (string, bool) {
			v, ok := o.vars[k]
			return v, ok
		},
		Terminal: o.terminal,
	}
}

// klingctl runs one command to completion through cli.Run, the entry point
// of cmd/klingctl, with an empty environment.
func klingctl(t *testing.T, args ...string) result {
	t.Helper()
	return klingctlWith(t, runOpts{}, args...)
}

func klingctlWith(t *testing.T, o runOpts, args ...string) result {
	t.Helper()
	var stdout, stderr strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	code := cli.Run(ctx, args, o.env(&stdout, &stderr))
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// must fails the test unless the run succeeded.
func (r result) must(t *testing.T) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("klingctl exited %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	return r
}

// lines splits stdout into its non-empty lines.
func (r result) lines() []string { return splitLines(r.stdout) }

func splitLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// startServer runs a gateway with the registration "default".
func startServer(t *testing.T, dataDir string, opts ...apptest.Option) *apptest.Server {
	t.Helper()
	quiet := func(_ *config.Config, o *app.Options) { o.Logger = slog.New(slog.DiscardHandler) }
	opts = append([]apptest.Option{apptest.WithEnv("KLINGAI_WEBHOOK_SECRET", klingSecret), quiet}, opts...)
	return apptest.Start(t, dataDir, opts...)
}

// conn returns the connection flags for srv with the admin token.
func conn(srv *apptest.Server) []string {
	return []string{"--server", srv.GRPC, "--token", apptest.AdminToken}
}

func with(base []string, more ...string) []string {
	return append(append([]string(nil), base...), more...)
}

// onGRPCAddr makes a server listen for gRPC on addr instead of a fresh
// port, so a restarted server is where its clients expect it. The server's
// GRPC field still names the port apptest picked (and this option closed);
// use addr.
func onGRPCAddr(t *testing.T, addr string) apptest.Option {
	return func(_ *config.Config, o *app.Options) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("listening on %s again: %v", addr, err)
		}
		o.GRPCListener.Close()
		o.GRPCListener = ln
	}
}

// post delivers an example event to srv's /webhooks/klingai through
// `klingctl example` and `klingctl post`.
func post(t *testing.T, srv *apptest.Server, typ, job string) {
	t.Helper()
	body := klingctl(t, "example", typ, "--job", job).must(t).stdout
	klingctlWith(t, runOpts{stdin: body}, "post", "-", "--url", srv.HTTPURL+"/webhooks/klingai", "--secret", klingSecret).must(t)
}

// background is a klingctl command running until stopped, typically listen.
type background struct {
	stdout, stderr *apptest.SyncBuffer
	cancel         context.CancelFunc
	done           chan int
}

// listen starts `klingctl listen args...` and returns once it reports that
// its stream is live, so events posted afterwards cannot be missed.
func listen(t *testing.T, o runOpts, args ...string) *background {
	t.Helper()
	b := &background{stdout: &apptest.SyncBuffer{}, stderr: &apptest.SyncBuffer{}, done: make(chan int, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	go func() { b.done <- cli.Run(ctx, append([]string{"listen"}, args...), o.env(b.stdout, b.stderr)) }()
	t.Cleanup(func() { b.stop(t) })
	b.waitStderr(t, "Ready:")
	return b
}

// waitStderr waits until stderr contains want.
func (b *background) waitStderr(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(waitFor)
	for !strings.Contains(b.stderr.String(), want) {
		select {
		case code := <-b.done:
			b.done <- code
			t.Fatalf("listen exited %d before printing %q\nstderr: %s", code, want, b.stderr.String())
		case <-deadline:
			t.Fatalf("listen did not print %q within %s\nstderr: %s", want, waitFor, b.stderr.String())
		case <-time.After(5 * time.Millisecond): // polling output, not ordering events
		}
	}
}

// waitLines waits until stdout holds n lines and returns them.
func (b *background) waitLines(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		lines := splitLines(b.stdout.String())
		if len(lines) >= n {
			return lines
		}
		select {
		case code := <-b.done:
			b.done <- code
			t.Fatalf("listen exited %d with %d of %d lines\nstdout: %s\nstderr: %s", code, len(lines), n, b.stdout.String(), b.stderr.String())
		case <-deadline:
			t.Fatalf("listen printed %d of %d lines within %s\nstdout: %s\nstderr: %s", len(lines), n, waitFor, b.stdout.String(), b.stderr.String())
		case <-time.After(5 * time.Millisecond): // polling output, not ordering events
		}
	}
}

// stop interrupts the command as Ctrl-C does and returns its exit status.
func (b *background) stop(t *testing.T) int {
	t.Helper()
	b.cancel()
	select {
	case code := <-b.done:
		b.done <- code
		return code
	case <-time.After(waitFor):
		t.Fatalf("listen did not stop within %s", waitFor)
		return -1
	}
}

// parseEvents decodes --json lines.
func parseEvents(t *testing.T, lines []string) []*gatewayv1.Event {
	t.Helper()
	out := make([]*gatewayv1.Event, len(lines))
	for i, l := range lines {
		out[i] = &gatewayv1.Event{}
		if err := protojson.Unmarshal([]byte(l), out[i]); err != nil {
			t.Fatalf("line %d is not a protojson Event: %v\n%s", i+1, err, l)
		}
	}
	return out
}

func sequences(evs []*gatewayv1.Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, ev := range evs {
		out[i] = ev.GetSequence()
	}
	return out
}

// writeFile writes content to name under dir and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func fmtSeqs(s []uint64) string { return fmt.Sprint(s) }
