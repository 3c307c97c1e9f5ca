package client_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/klingfan/klingfan/client"
	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
)

// TestTokenFromFile passes the admin token as a server writes it, newline
// included, the way a new user reads data/admin-token.
func TestTokenFromFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(file, []byte(apptest.AdminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	token, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(t.Context(), server.GRPC, client.WithInsecure(), client.WithToken(string(token)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Webhooks().ListWebhooks(t.Context(), &gatewayv1.ListWebhooksRequest{}); err != nil {
		t.Fatalf("a token with its file's newline: %v", err)
	}
}

// TestTLSToPlaintextServer dials a plaintext server (as `make run` is)
// without WithInsecure: calls and streams fail at once with a message
// that says what to change, instead of retrying until the deadline.
func TestTLSToPlaintextServer(t *testing.T) {
	c, err := client.Dial(t.Context(), server.GRPC, client.WithToken(apptest.AdminToken))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err = c.Webhooks().ListWebhooks(ctx, &gatewayv1.ListWebhooksRequest{})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), client.ErrPlaintextServer.Error()) {
		t.Errorf("unary call: %v, want UNAVAILABLE saying %q", err, client.ErrPlaintextServer)
	}
	err = c.Consume(ctx, "nobody", func(context.Context, *gatewayv1.Event) error { return nil })
	if ctx.Err() != nil || !strings.Contains(err.Error(), client.ErrPlaintextServer.Error()) {
		t.Errorf("Consume: %v (context: %v), want it to return at once saying %q", err, ctx.Err(), client.ErrPlaintextServer)
	}
	err = c.Subscribe(ctx, &gatewayv1.SubscribeRequest{}, func(context.Context, *gatewayv1.Event) error { return nil })
	if ctx.Err() != nil || !strings.Contains(err.Error(), client.ErrPlaintextServer.Error()) || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Subscribe: %v, want it to return at once saying %q", err, client.ErrPlaintextServer)
	}
}
