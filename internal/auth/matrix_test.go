package auth_test

import (
	"context"
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
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/auth"
	"github.com/klingfan/klingfan/internal/config"
	"github.com/klingfan/klingfan/internal/verify"
)

const klingSecret = "matrix-kling-secret"

// The auth matrix on a real server: no token, a bad token, a subscribe
// token and an admin token against a representative RPC of each service,
// over gRPC and over REST; the operational endpoints and ingest need none.
func TestAuthMatrix(t *testing.T) {
	tokens := writeFile(t, "renderer subscribe "+subscribeTok+"\n")
	logs := &apptest.SyncBuffer{}
	srv := apptest.Start(t, "", apptest.WithEnv("KLINGAI_WEBHOOK_SECRET", klingSecret),
		apptest.WithLogger(slog.New(slog.NewTextHandler(logs, nil))),
		apptest.WithConfig(func(c *config.Config) { c.TokensFile = tokens }))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	callers := []struct {
		name  string
		token string // "" sends no authorization
		// want: for EventService (and JobService, which needs the same
		// scope) and WebhookService.
		events, webhooks codes.Code
	}{
		{"no token", "", codes.Unauthenticated, codes.Unauthenticated},
		{"bad token", "not-a-valid-token-0123456789", codes.Unauthenticated, codes.Unauthenticated},
		{"subscribe token", subscribeTok, codes.OK, codes.PermissionDenied},
		{"admin token", apptest.AdminToken, codes.OK, codes.OK},
	}
	httpStatus := map[codes.Code]int{codes.OK: 200, codes.Unauthenticated: 401, codes.PermissionDenied: 403}
	for _, c := range callers {
		t.Run(c.name+"/gRPC", func(t *testing.T) {
			var opts []grpc.DialOption
			if c.token != "" {
				opts = append(opts, grpc.WithPerRPCCredentials(apptest.BearerCreds(c.token)))
			}
			conn := srv.Dial(t, opts...)
			_, err := gatewayv1.NewEventServiceClient(conn).ListEvents(ctx, &gatewayv1.ListEventsRequest{})
			if got := status.Code(err); got != c.events {
				t.Errorf("ListEvents: %v, want %v", err, c.events)
			}
			stream, err := gatewayv1.NewEventServiceClient(conn).Subscribe(ctx, &gatewayv1.SubscribeRequest{})
			if err == nil {
				_, err = stream.Header()
				if err == nil && c.events != codes.OK {
					_, err = stream.Recv()
				}
			}
			if got := status.Code(err); got != c.events {
				t.Errorf("Subscribe: %v, want %v", err, c.events)
			}
			_, err = gatewayv1.NewJobServiceClient(conn).ListJobs(ctx, &gatewayv1.ListJobsRequest{})
			if got := status.Code(err); got != c.events {
				t.Errorf("ListJobs: %v, want %v", err, c.events)
			}
			_, err = gatewayv1.NewWebhookServiceClient(conn).ListWebhooks(ctx, &gatewayv1.ListWebhooksRequest{})
			if got := status.Code(err); got != c.webhooks {
				t.Errorf("ListWebhooks: %v, want %v", err, c.webhooks)
			}
			_, err = gatewayv1.NewWebhookServiceClient(conn).SendTestEvent(ctx, &gatewayv1.SendTestEventRequest{Id: "default"})
			if got := status.Code(err); got != c.webhooks {
				t.Errorf("SendTestEvent: %v, want %v", err, c.webhooks)
			}
		})
		t.Run(c.name+"/REST", func(t *testing.T) {
			for _, call := range []struct {
				method, path string
				want         codes.Code
			}{
				{http.MethodGet, "/v1/events", c.events},
				{http.MethodGet, "/v1/events/999999", map[bool]codes.Code{true: codes.NotFound, false: c.events}[c.events == codes.OK]},
				{http.MethodGet, "/v1/jobs", c.events},
				{http.MethodGet, "/v1/jobs/never-seen", map[bool]codes.Code{true: codes.NotFound, false: c.events}[c.events == codes.OK]},
				{http.MethodGet, "/v1/webhooks", c.webhooks},
				{http.MethodGet, "/v1/webhooks/default", c.webhooks},
				{http.MethodPost, "/v1/webhooks/default:sendTestEvent", c.webhooks},
			} {
				code, body := rest(t, srv, call.method, call.path, c.token)
				want := httpStatus[call.want]
				if call.want == codes.NotFound {
					want = 404
				}
				if code != want {
					t.Errorf("%s %s: %d %s, want %d", call.method, call.path, code, body, want)
					continue
				}
				if call.want == codes.Unauthenticated || call.want == codes.PermissionDenied {
					var e struct {
						Code    int    `json:"code"`
						Message string `json:"message"`
					}
					if err := json.Unmarshal(body, &e); err != nil || codes.Code(e.Code) != call.want || e.Message == "" {
						t.Errorf("%s %s: error body %s, want grpc-gateway's {code: %d, message}", call.method, call.path, body, call.want)
					}
				}
			}
		})
	}

	t.Run("open endpoints", func(t *testing.T) {
		for _, path := range []string{"/healthz", "/readyz", "/metrics", "/openapi.json"} {
			if code, body := rest(t, srv, http.MethodGet, path, ""); code != 200 {
				t.Errorf("GET %s without a token: %d %s", path, code, body)
			}
		}
		conn := srv.Dial(t)
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health check without a token: %v %v", resp, err)
		}
		// Reflection is a stream a client could hold open: it needs a
		// token, of any scope.
		for _, c := range []struct {
			conn *grpc.ClientConn
			want codes.Code
		}{{conn, codes.Unauthenticated}, {srv.Dial(t, grpc.WithPerRPCCredentials(apptest.BearerCreds(subscribeTok))), codes.OK}} {
			rs, err := reflectionpb.NewServerReflectionClient(c.conn).ServerReflectionInfo(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_ = rs.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
			r, err := rs.Recv()
			if status.Code(err) != c.want || (err == nil && len(r.GetListServicesResponse().GetService()) == 0) {
				t.Errorf("reflection: %v %v, want %v", r, err, c.want)
			}
		}
	})

	t.Run("ingest is authenticated by signature, not bearer", func(t *testing.T) {
		body := []byte(`{"event":"video.completed","timestamp":"2026-01-02T03:04:05Z","data":{"job_id":"matrix-1","status":"completed"}}`)
		if code, out := srv.Post(t, "/webhooks/klingai", http.Header{verify.HeaderKlingSignature: {verify.SignKling([]byte(klingSecret), body)}}, body); code != 200 {
			t.Errorf("signed delivery without a bearer token: %d %s", code, out)
		}
		h := http.Header{"Authorization": {"Bearer " + apptest.AdminToken}, verify.HeaderKlingSignature: {verify.SignKling([]byte("wrong"), body)}}
		if code, out := srv.Post(t, "/webhooks/klingai", h, body); code != 401 {
			t.Errorf("badly signed delivery with an admin bearer token: %d %s, want 401", code, out)
		}
		if code, out := srv.Post(t, "/webhooks/kling/nobody", nil, body); code != 401 {
			t.Errorf("unknown webhook: %d %s, want 401, like a bad signature", code, out)
		}
	})

	for _, tok := range []string{apptest.AdminToken, subscribeTok, "not-a-valid-token"} {
		if strings.Contains(logs.String(), tok) {
			t.Errorf("a token reached the log:\n%s", logs.String())
		}
	}
	if !strings.Contains(logs.String(), "request denied") {
		t.Errorf("denials are not logged:\n%s", logs.String())
	}
}

func rest(t *testing.T, srv *apptest.Server, method, path, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srv.HTTPURL+path, strings.NewReader(map[bool]string{true: "{}", false: ""}[method == http.MethodPost]))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// Started with no token configured, the server generates an admin token,
// prints it once on stdout and accepts it; a restart reuses it silently.
func TestGeneratedAdminTokenEndToEnd(t *testing.T) {
	dir := t.TempDir()
	noToken := apptest.WithConfig(func(c *config.Config) { c.AdminToken = "" })
	logs := &apptest.SyncBuffer{}
	quiet := apptest.WithLogger(slog.New(slog.NewTextHandler(logs, nil)))
	srv := apptest.Start(t, dir, noToken, quiet)
	raw, err := os.ReadFile(filepath.Join(dir, auth.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(string(raw))
	if !strings.Contains(srv.Stdout.String(), "Admin token generated in "+filepath.Join(dir, auth.AdminTokenFile)) || strings.Contains(srv.Stdout.String(), tok) {
		t.Errorf("stdout must name the token's file and not hold the token (it is not a terminal):\n%s", srv.Stdout.String())
	}
	call := func(srv *apptest.Server, token string) error {
		conn := srv.Dial(t, grpc.WithPerRPCCredentials(apptest.BearerCreds(token)))
		_, err := gatewayv1.NewWebhookServiceClient(conn).ListWebhooks(context.Background(), &gatewayv1.ListWebhooksRequest{})
		return err
	}
	if err := call(srv, tok); err != nil {
		t.Errorf("generated token refused: %v", err)
	}
	if err := call(srv, apptest.AdminToken); status.Code(err) != codes.Unauthenticated {
		t.Errorf("an unconfigured token: %v, want UNAUTHENTICATED", err)
	}
	srv.Stop(t)

	srv = apptest.Start(t, dir, noToken, quiet)
	if strings.Contains(srv.Stdout.String(), tok) {
		t.Errorf("the token was printed again:\n%s", srv.Stdout.String())
	}
	if err := call(srv, tok); err != nil {
		t.Errorf("kept token refused after restart: %v", err)
	}
	if strings.Contains(logs.String(), tok) {
		t.Errorf("the token reached the log")
	}
}
