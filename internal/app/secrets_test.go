package app_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/app"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/config"
	"github.com/klingfan/klingfan/internal/store"
	"github.com/klingfan/klingfan/internal/verify"
)

// No secret ever reaches the logs (even at debug level), the metrics, an
// error message or a read of a registration, whatever the server is asked
// to do with it.
func TestSecretsNeverLeak(t *testing.T) {
	logs := &apptest.SyncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := apptest.Start(t, "", apptest.WithLogger(logger),
		apptest.WithEnv("KLINGAI_WEBHOOK_SECRET", "env-kling-secret-0123456789", "KLINGFAN_SECRET_KEY", strings.Repeat("k", 40)),
		apptest.WithConfig(func(c *config.Config) { c.LogLevel = slog.LevelDebug }))
	ctx := context.Background()
	hooks := gatewayv1.NewWebhookServiceClient(srv.DialAdmin(t))

	secrets := []string{"env-kling-secret-0123456789", apptest.AdminToken, strings.Repeat("k", 40)}
	std, err := hooks.CreateWebhook(ctx, &gatewayv1.CreateWebhookRequest{
		WebhookId: "std",
		Webhook:   &gatewayv1.Webhook{SignatureScheme: gatewayv1.SignatureScheme_SIGNATURE_SCHEME_STANDARD_WEBHOOKS},
		Secret:    "whsec_dGVzdHNlY3JldHRlc3RzZWNyZXR0ZXN0c2VjcmV0MTI=",
	})
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, std.GetSecret(), "dGVzdHNlY3JldHRlc3RzZWNyZXR0ZXN0c2VjcmV0MTI")
	tok, err := hooks.CreateWebhook(ctx, &gatewayv1.CreateWebhookRequest{
		WebhookId: "tok",
		Webhook:   &gatewayv1.Webhook{SignatureScheme: gatewayv1.SignatureScheme_SIGNATURE_SCHEME_URL_TOKEN},
	})
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, tok.GetSecret())
	rot, err := hooks.RotateWebhookSecret(ctx, &gatewayv1.RotateWebhookSecretRequest{Id: "std", GracePeriod: durationpb.New(0)})
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, rot.GetSecret())
	for _, id := range []string{"std", "tok", "default"} {
		if _, err := hooks.SendTestEvent(ctx, &gatewayv1.SendTestEventRequest{Id: id}); err != nil {
			t.Fatalf("send test event to %s: %v", id, err)
		}
	}
	// Failures that mention the secret's neighbourhood: wrong signatures,
	// a wrong token, a bad import.
	body := []byte(`{"id":"1","status":"succeeded"}`)
	srv.Post(t, "/webhooks/kling/std", http.Header{verify.HeaderWebhookID: {"x"}, verify.HeaderWebhookTimestamp: {"1"}, verify.HeaderWebhookSignature: {"v1,AAAA"}}, body)
	srv.Post(t, "/webhooks/kling/tok?token="+tok.GetSecret()+"x", nil, body)
	srv.Post(t, "/webhooks/klingai", http.Header{verify.HeaderKlingSignature: {verify.SignKling([]byte("wrong"), body)}}, body)
	if _, err := hooks.CreateWebhook(ctx, &gatewayv1.CreateWebhookRequest{
		WebhookId: "bad", Webhook: &gatewayv1.Webhook{SignatureScheme: gatewayv1.SignatureScheme_SIGNATURE_SCHEME_STANDARD_WEBHOOKS},
		Secret: "whsec_not base64 " + secrets[0],
	}); err == nil || strings.Contains(err.Error(), secrets[0]) {
		t.Errorf("a bad import must fail without echoing the secret: %v", err)
	}
	unauthorized := gatewayv1.NewWebhookServiceClient(srv.Dial(t))
	if _, err := unauthorized.ListWebhooks(ctx, &gatewayv1.ListWebhooksRequest{}); err == nil {
		t.Error("listing without a token succeeded")
	}

	list, err := hooks.ListWebhooks(ctx, &gatewayv1.ListWebhooksRequest{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(srv.HTTPURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	places := map[string]string{"logs": logs.String(), "metrics": string(metrics), "ListWebhooks": list.String(), "stdout": srv.Stdout.String()}
	for _, s := range secrets {
		if s == "" {
			t.Fatal("a secret came back empty")
		}
		for where, text := range places {
			if strings.Contains(text, s) {
				t.Errorf("a secret (%.4s…) appears in the %s", s, where)
			}
		}
	}
	if !strings.Contains(logs.String(), "delivery rejected") {
		t.Error("the logs were not captured: the test proves nothing")
	}
}

// expectSecretsSealedAtStart checks that setting KLINGFAN_SECRET_KEY after
// registrations exist seals them at the next start, and that a start with
// a key that cannot open them fails, naming them, rather than serving 404s
// for registrations that silently vanished. The hostile-input table runs
// it.
func expectSecretsSealedAtStart(t *testing.T) {
	dir := t.TempDir()
	const imported = "kept-secret-0123456789abcdef"
	first := apptest.Start(t, dir)
	if _, err := gatewayv1.NewWebhookServiceClient(first.DialAdmin(t)).CreateWebhook(context.Background(), &gatewayv1.CreateWebhookRequest{
		WebhookId: "kept", Webhook: &gatewayv1.Webhook{SignatureScheme: gatewayv1.SignatureScheme_SIGNATURE_SCHEME_KLING_SIGNATURE}, Secret: imported,
	}); err != nil {
		t.Fatal(err)
	}
	first.Stop(t)
	if raw := rawRegistration(t, dir, "kept"); !strings.Contains(raw, imported) {
		t.Fatalf("without a key the secret should be stored in plain text: the test proves nothing (%d bytes)", len(raw))
	}

	keyA, keyB := strings.Repeat("a", 40), strings.Repeat("b", 40)
	sealed := apptest.Start(t, dir, apptest.WithEnv("KLINGFAN_SECRET_KEY", keyA))
	body := []byte(`{"event":"video.completed","data":{"job_id":"sealed"}}`)
	if status, out := sealed.Post(t, "/webhooks/kling/kept", http.Header{verify.HeaderKlingSignature: {verify.SignKling([]byte(imported), body)}}, body); status != 200 {
		t.Fatalf("delivery after sealing: %d %s", status, out)
	}
	sealed.Stop(t)
	if raw := rawRegistration(t, dir, "kept"); strings.Contains(raw, imported) || !strings.Contains(raw, `"sealed"`) {
		t.Fatal("the existing registration's secret was not sealed at start-up")
	}
	if raw := rawRegistration(t, dir, "_keys.page-token"); len(raw) == 32 {
		t.Fatal("the page-token key was not sealed at start-up")
	}

	cfg, err := config.Parse([]string{"--data-dir", dir, "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"},
		func(string) (string, bool) { return "", false }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.AdminToken, cfg.SecretKey = apptest.AdminToken, keyB
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = app.Run(ctx, cfg, app.Options{Stdout: io.Discard, Logger: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), "kept") {
		t.Fatalf("start with the wrong key: %v, want an error naming registration kept", err)
	}
}

// rawRegistration reads a registration's stored bytes from a stopped
// server's data directory.
func rawRegistration(t *testing.T, dir, id string) string {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e, err := st.KV().Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return string(e.Value())
}
