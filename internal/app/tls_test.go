package app_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/app"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/config"
	"github.com/klingfan/klingfan/internal/verify"
)

func tlsContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// httpsClient returns a client for c whose connections are closed before
// the server stops (an idle HTTP/2 connection would delay its shutdown).
func httpsClient(t *testing.T, c *tls.Config) *http.Client {
	tr := &http.Transport{TLSClientConfig: c, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Timeout: 10 * time.Second, Transport: tr}
}

// --tls-cert/--tls-key serve both listeners over TLS: gRPC (HTTP/2 by
// ALPN) and HTTP, where the REST API, ingest and the probes live.
func TestTLSOnBothListeners(t *testing.T) {
	pki := apptest.NewPKI(t, "")
	srv := apptest.Start(t, "", apptest.WithTLS(pki, false), apptest.WithEnv("KLINGAI_WEBHOOK_SECRET", secret))
	ctx := tlsContext(t)
	if !strings.HasPrefix(srv.HTTPURL, "https://") {
		t.Fatalf("HTTP URL %s", srv.HTTPURL)
	}

	conn := srv.DialTLS(t, pki.ClientTLS(false), grpc.WithPerRPCCredentials(apptest.BearerCreds(apptest.AdminToken)))
	if resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health over TLS: %v %v", resp, err)
	}
	created, err := gatewayv1.NewWebhookServiceClient(conn).CreateWebhook(ctx, &gatewayv1.CreateWebhookRequest{
		WebhookId: "tls", Secret: secret, Webhook: &gatewayv1.Webhook{SignatureScheme: gatewayv1.SignatureScheme_SIGNATURE_SCHEME_KLING_SIGNATURE},
	})
	if err != nil {
		t.Fatalf("CreateWebhook over TLS: %v", err)
	}
	if want := srv.HTTPURL + "/webhooks/kling/tls"; created.GetWebhook().GetIngestUrl() != want {
		t.Errorf("ingest URL %q, want %q", created.GetWebhook().GetIngestUrl(), want)
	}

	plain := srv.Dial(t)
	if _, err := healthpb.NewHealthClient(plain).Check(ctx, &healthpb.HealthCheckRequest{}); status.Code(err) != codes.Unavailable {
		t.Errorf("plaintext gRPC to a TLS listener: %v, want UNAVAILABLE", err)
	}

	client := httpsClient(t, pki.ClientTLS(false))
	resp, err := client.Get(srv.HTTPURL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil || resp.ProtoMajor != 2 {
		t.Errorf("/healthz over TLS: %d, proto %s, tls %v", resp.StatusCode, resp.Proto, resp.TLS != nil)
	}
	req, _ := http.NewRequest(http.MethodGet, srv.HTTPURL+"/v1/webhooks/tls", nil)
	req.Header.Set("Authorization", "Bearer "+apptest.AdminToken)
	if resp, err := client.Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("REST over TLS: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	body := []byte(`{"event":"video.completed","timestamp":"2026-01-02T03:04:05Z","data":{"job_id":"tls-1","status":"completed"}}`)
	req, _ = http.NewRequest(http.MethodPost, created.GetWebhook().GetIngestUrl(), strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(verify.HeaderKlingSignature, verify.SignKling([]byte(secret), body))
	if resp, err := client.Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("ingest over TLS: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

// --tls-client-ca requires a client certificate from that CA on gRPC; the
// HTTP listener, which Kling and the probes reach, does not demand one in
// the handshake (REST /v1 is checked per request: expectRESTNeedsClientCert).
func TestMutualTLSOnGRPC(t *testing.T) {
	pki := apptest.NewPKI(t, "")
	stranger := apptest.NewPKI(t, "")
	srv := apptest.Start(t, "", apptest.WithTLS(pki, true))
	ctx := tlsContext(t)

	foreign := pki.ClientTLS(false)
	foreign.Certificates = []tls.Certificate{stranger.Client}
	for _, tt := range []struct {
		name string
		c    *tls.Config
		ok   bool
	}{
		{"client certificate from the CA", pki.ClientTLS(true), true},
		{"no client certificate", pki.ClientTLS(false), false},
		{"client certificate from another CA", foreign, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn := srv.DialTLS(t, tt.c, grpc.WithPerRPCCredentials(apptest.BearerCreds(apptest.AdminToken)))
			_, err := gatewayv1.NewWebhookServiceClient(conn).ListWebhooks(ctx, &gatewayv1.ListWebhooksRequest{})
			if tt.ok && err != nil {
				t.Errorf("ListWebhooks: %v", err)
			}
			if !tt.ok && status.Code(err) != codes.Unavailable {
				t.Errorf("ListWebhooks: %v, want the handshake to fail (UNAVAILABLE)", err)
			}
		})
	}

	resp, err := httpsClient(t, pki.ClientTLS(false)).Get(srv.HTTPURL + "/readyz")
	if err != nil {
		t.Fatalf("HTTP without a client certificate: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/readyz: %d", resp.StatusCode)
	}
}

// Unreadable or mismatched TLS files stop start-up with an error naming
// the file.
func TestTLSStartupErrors(t *testing.T) {
	pki := apptest.NewPKI(t, "")
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name          string
		cert, key, ca string
		wantInErr     []string
	}{
		{"missing certificate", missing, pki.ServerKeyFile, "", []string{"--tls-cert", missing}},
		{"missing key", pki.ServerCertFile, missing, "", []string{"--tls-key", missing}},
		{"key of another certificate", pki.ServerCertFile, pki.ClientKeyFile, "", []string{pki.ServerCertFile, pki.ClientKeyFile, "does not match"}},
		{"garbage certificate", garbage, pki.ServerKeyFile, "", []string{"--tls-cert", garbage}},
		{"missing client CA", pki.ServerCertFile, pki.ServerKeyFile, missing, []string{"--tls-client-ca", missing}},
		{"client CA without certificates", pki.ServerCertFile, pki.ServerKeyFile, garbage, []string{"--tls-client-ca", garbage, "no PEM certificate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--tls-cert", tt.cert, "--tls-key", tt.key}
			if tt.ca != "" {
				args = append(args, "--tls-client-ca", tt.ca)
			}
			cfg, err := config.Parse(args, func(string) (string, bool) { return "", false }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			cfg.AdminToken = apptest.AdminToken
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = app.Run(ctx, cfg, app.Options{Stdout: io.Discard, Logger: slog.New(slog.DiscardHandler)})
			if err == nil {
				t.Fatal("started")
			}
			for _, w := range tt.wantInErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// expectRESTNeedsClientCert: with --tls-client-ca, REST /v1 (and the admin
// paths) answer 401 to a request without a client certificate from the CA,
// whatever its token, while ingest and the probes, which Kling and load
// balancers reach without one, are served as before.
func expectRESTNeedsClientCert(t *testing.T) {
	pki := apptest.NewPKI(t, "")
	stranger := apptest.NewPKI(t, "")
	srv := apptest.Start(t, "", apptest.WithTLS(pki, true), apptest.WithEnv("KLINGAI_WEBHOOK_SECRET", secret))
	foreign := pki.ClientTLS(false)
	foreign.Certificates = []tls.Certificate{stranger.Client}
	body := []byte(`{"event":"video.completed","timestamp":"2026-01-02T03:04:05Z","data":{"job_id":"mtls-1","status":"completed"}}`)
	tests := []struct {
		name   string
		client *tls.Config
		method string
		path   string
		want   int
	}{
		{"REST with the CA's client certificate", pki.ClientTLS(true), http.MethodGet, "/v1/webhooks", 200},
		{"REST without a client certificate", pki.ClientTLS(false), http.MethodGet, "/v1/webhooks", 401},
		{"backup without a client certificate", pki.ClientTLS(false), http.MethodPost, "/v1/admin:backup", 401},
		{"reconcile without a client certificate", pki.ClientTLS(false), http.MethodPost, "/v1/admin:reconcile", 401},
		{"ingest without a client certificate", pki.ClientTLS(false), http.MethodPost, "/webhooks/klingai", 200},
		{"readiness without a client certificate", pki.ClientTLS(false), http.MethodGet, "/readyz", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rd io.Reader
			if tt.method == http.MethodPost {
				rd = strings.NewReader(string(body))
			}
			req, _ := http.NewRequest(tt.method, srv.HTTPURL+tt.path, rd)
			req.Header.Set("Authorization", "Bearer "+apptest.AdminToken)
			if tt.path == "/webhooks/klingai" {
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set(verify.HeaderKlingSignature, verify.SignKling([]byte(secret), body))
			}
			resp, err := httpsClient(t, tt.client).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			out, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, out, tt.want)
			}
			if tt.want == 401 {
				// The REST error shape, as from grpc-gateway itself.
				var st struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				}
				if err := json.Unmarshal(out, &st); err != nil || st.Code != 16 || !strings.Contains(st.Message, "client certificate") {
					t.Errorf("body %s is not {\"code\": 16, \"message\": ...} saying a client certificate is needed", out)
				}
			}
		})
	}
	// A certificate from another CA fails the handshake itself.
	if resp, err := httpsClient(t, foreign).Get(srv.HTTPURL + "/readyz"); err == nil {
		resp.Body.Close()
		t.Error("a client certificate from another CA was accepted")
	}
}
