package app_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/config"
	"github.com/klingfan/klingfan/internal/verify"
)

const subscribeToken = "subscribe-only-token-0123456789"

// hostile is a server set up so that every limit in the README's security
// table can be reached quickly.
type hostile struct {
	*fanout
	std     string // a STANDARD_WEBHOOKS registration
	tok     string // the URL token of a URL_TOKEN registration
	limited string // the secret of a rate-limited KLING_SIGNATURE registration
	off     string // the secret of an inactive KLING_SIGNATURE registration
}

func startHostile(t *testing.T) *hostile {
	t.Helper()
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("reader subscribe "+subscribeToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := startFanout(t, apptest.WithConfig(func(c *config.Config) {
		c.TokensFile = tokens
		c.MaxBodyBytes = 4096
		c.IngestRate = 5
		c.IngestBurst = 5
		c.HeaderTimeout = 300 * time.Millisecond
		c.IngestTimeout = 300 * time.Millisecond
		c.MaxHTTPConns = 8
		c.MaxStreamsPerToken = 3
	}))
	hooks := gatewayv1.NewWebhookServiceClient(f.conn)
	ctx := context.Background()
	h := &hostile{fanout: f}
	for _, w := range []struct {
		id     string
		scheme gatewayv1.SignatureScheme
		active bool
	}{
		{"std", gatewayv1.SignatureScheme_SIGNATURE_SCHEME_STANDARD_WEBHOOKS, true},
		{"tok", gatewayv1.SignatureScheme_SIGNATURE_SCHEME_URL_TOKEN, true},
		{"off", gatewayv1.SignatureScheme_SIGNATURE_SCHEME_KLING_SIGNATURE, false},
		{"limited", gatewayv1.SignatureScheme_SIGNATURE_SCHEME_KLING_SIGNATURE, true},
	} {
		active := w.active
		resp, err := hooks.CreateWebhook(ctx, &gatewayv1.CreateWebhookRequest{WebhookId: w.id, Webhook: &gatewayv1.Webhook{SignatureScheme: w.scheme, Active: &active}})
		if err != nil {
			t.Fatal(err)
		}
		switch w.id {
		case "std":
			h.std = resp.GetSecret()
		case "tok":
			h.tok = resp.GetSecret()
		case "limited":
			h.limited = resp.GetSecret()
		case "off":
			h.off = resp.GetSecret()
		}
	}
	return h
}

// expectHTTP posts and checks the status and, for errors, the JSON body.
func (h *hostile) expectHTTP(t *testing.T, path string, header http.Header, body []byte, want int) {
	t.Helper()
	before := h.lastSeq(t.Context(), t)
	status, out := h.srv.Post(t, path, header, body)
	if status != want {
		t.Fatalf("status %d (%s), want %d", status, out, want)
	}
	if status >= 400 && !bytes.HasPrefix(out, []byte(`{"error":`)) {
		t.Errorf("error body %q is not {\"error\": ...}", out)
	}
	if after := h.lastSeq(t.Context(), t); after != before {
		t.Errorf("a refused delivery changed the log: last sequence %d -> %d", before, after)
	}
}

func (h *hostile) lastSeq(ctx context.Context, t *testing.T) uint64 {
	t.Helper()
	resp, err := h.events().ListEvents(ctx, &gatewayv1.ListEventsRequest{OrderBy: "sequence desc", PageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetEvents()) == 0 {
		return 0
	}
	return resp.GetEvents()[0].GetSequence()
}

// expectClosed sends raw bytes slowly and expects the server to hang up.
func expectClosed(t *testing.T, addr string, first string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, first); err != nil {
		t.Fatal(err)
	}
	// Send nothing more; the server must give up on us.
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.Copy(io.Discard, conn)
	if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the server kept a stalled connection open")
	}
}

func grpcCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if status.Code(err) != want {
		t.Fatalf("err = %v, want %v", err, want)
	}
}

func restStatus(t *testing.T, h *hostile, method, path, token string, want int) {
	t.Helper()
	req, _ := http.NewRequest(method, h.srv.HTTPURL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d", method, path, resp.StatusCode, want)
	}
}

func TestHostileInputTable(t *testing.T) {
	h := startHostile(t)
	ctx := context.Background()
	body := []byte(`{"event":"video.completed","timestamp":"2026-11-26T12:00:00Z","data":{"job_id":"hostile"}}`)
	addr := strings.TrimPrefix(h.srv.HTTPURL, "http://")
	withToken := func(tok string) gatewayv1.EventServiceClient {
		return gatewayv1.NewEventServiceClient(h.srv.Dial(t, grpc.WithPerRPCCredentials(apptest.BearerCreds(tok))))
	}

	rows := map[string]func(t *testing.T){
		"ingest: bad signature": func(t *testing.T) {
			h.expectHTTP(t, "/webhooks/klingai", http.Header{verify.HeaderKlingSignature: {verify.SignKling([]byte("wrong"), body)}}, body, 401)
		},
		"ingest: missing signature": func(t *testing.T) { h.expectHTTP(t, "/webhooks/klingai", nil, body, 401) },
		"ingest: stale or future timestamp": func(t *testing.T) {
			key, _ := verify.DecodeStandardSecret(h.std)
			for _, ts := range []time.Time{time.Now().Add(-time.Hour), time.Now().Add(time.Hour)} {
				h.expectHTTP(t, "/webhooks/kling/std", http.Header{
					verify.HeaderWebhookID: {"m1"}, verify.HeaderWebhookTimestamp: {fmt.Sprint(ts.Unix())},
					verify.HeaderWebhookSignature: {verify.SignStandard(key, "m1", ts, body)},
				}, body, 401)
			}
		},
		"ingest: wrong URL token": func(t *testing.T) { h.expectHTTP(t, "/webhooks/kling/tok?token=x"+h.tok, nil, body, 401) },
		"ingest: unknown webhook": expectRefusalsHideRegistrations,
		"ingest: inactive webhook": func(t *testing.T) {
			h.expectHTTP(t, "/webhooks/kling/off", http.Header{verify.HeaderKlingSignature: {verify.SignKling([]byte(h.off), body)}}, body, 403)
			for name, header := range map[string]http.Header{
				"wrong signature": {verify.HeaderKlingSignature: {verify.SignKling([]byte("wrong"), body)}},
				"no signature":    nil,
			} {
				_, unknown := h.srv.Post(t, "/webhooks/kling/nobody", header, body)
				status, out := h.srv.Post(t, "/webhooks/kling/off", header, body)
				if status != 401 || !bytes.Equal(out, unknown) {
					t.Errorf("%s: %d %s, want the unknown webhook's 401 %s", name, status, out, unknown)
				}
			}
		},
		"ingest: declared body over the limit": func(t *testing.T) {
			big := bytes.Repeat([]byte(" "), 5000)
			h.expectHTTP(t, "/webhooks/klingai", http.Header{verify.HeaderKlingSignature: {verify.SignKling([]byte(secret), big)}}, big, 413)
		},
		"ingest: chunked body over the limit": func(t *testing.T) {
			pr, pw := io.Pipe()
			go func() { _, _ = pw.Write(bytes.Repeat([]byte("a"), 10000)); pw.Close() }()
			req, _ := http.NewRequest(http.MethodPost, h.srv.HTTPURL+"/webhooks/klingai", pr)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 413 {
				t.Fatalf("status %d, want 413", resp.StatusCode)
			}
		},
		"ingest: content type not JSON": func(t *testing.T) {
			h.expectHTTP(t, "/webhooks/klingai", http.Header{"Content-Type": {"text/plain"}}, body, 415)
		},
		"ingest: malformed JSON": func(t *testing.T) {
			bad := []byte(`{"event":`)
			h.expectHTTP(t, "/webhooks/klingai", http.Header{verify.HeaderKlingSignature: {verify.SignKling([]byte(secret), bad)}}, bad, 400)
		},
		"ingest: unknown payload shape": func(t *testing.T) {
			odd := []byte(`{"hello":"world"}`)
			h.expectHTTP(t, "/webhooks/klingai", http.Header{verify.HeaderKlingSignature: {verify.SignKling([]byte(secret), odd)}}, odd, 400)
		},
		"ingest: method other than POST": func(t *testing.T) {
			resp, err := http.Get(h.srv.HTTPURL + "/webhooks/klingai")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
				t.Fatalf("status %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
			}
		},
		"ingest: over the registration's rate limit": func(t *testing.T) {
			// Forged deliveries do not drain the bucket...
			for i := range 20 {
				b := []byte(fmt.Sprintf(`{"event":"video.created","data":{"job_id":"forged-%d"}}`, i))
				if status, _ := h.srv.Post(t, "/webhooks/kling/limited", http.Header{verify.HeaderKlingSignature: {"sha256=00"}}, b); status != 401 {
					t.Fatalf("forged delivery: status %d, want 401", status)
				}
			}
			// ...genuine ones do.
			var last int
			for i := range 20 {
				b := []byte(fmt.Sprintf(`{"event":"video.created","data":{"job_id":"rl-%d"}}`, i))
				sign := http.Header{verify.HeaderKlingSignature: {verify.SignKling([]byte(h.limited), b)}}
				if last, _ = h.srv.Post(t, "/webhooks/kling/limited", sign, b); last != 200 {
					break
				}
			}
			if last != 429 {
				t.Fatalf("20 signed deliveries at a 5/s limit never got 429 (last %d)", last)
			}
		},
		"ingest: captured delivery replayed, within or after `--dedup-window`": func(t *testing.T) {
			// A registration of its own, so its bucket (5 at once) is
			// untouched by the other rows.
			resp, err := gatewayv1.NewWebhookServiceClient(h.conn).CreateWebhook(ctx, &gatewayv1.CreateWebhookRequest{WebhookId: "replayed",
				Webhook: &gatewayv1.Webhook{SignatureScheme: gatewayv1.SignatureScheme_SIGNATURE_SCHEME_KLING_SIGNATURE}})
			if err != nil {
				t.Fatal(err)
			}
			sign := func(b []byte) http.Header {
				return http.Header{verify.HeaderKlingSignature: {verify.SignKling([]byte(resp.GetSecret()), b)}}
			}
			captured := []byte(`{"event":"video.completed","data":{"job_id":"captured"}}`)
			if status, out := h.srv.Post(t, "/webhooks/kling/replayed", sign(captured), captured); status != 200 {
				t.Fatalf("first delivery: %d %s", status, out)
			}
			before := h.lastSeq(ctx, t)
			for i := range 20 {
				if status, out := h.srv.Post(t, "/webhooks/kling/replayed", sign(captured), captured); status != 200 {
					t.Fatalf("replay %d: %d %s, want 200", i, status, out)
				}
			}
			if after := h.lastSeq(ctx, t); after != before {
				t.Fatalf("a replay was logged: last sequence %d -> %d", before, after)
			}
			genuine := []byte(`{"event":"video.completed","data":{"job_id":"genuine"}}`)
			if status, out := h.srv.Post(t, "/webhooks/kling/replayed", sign(genuine), genuine); status != 200 {
				t.Fatalf("a genuine delivery after 20 replays: %d %s", status, out)
			}
		},
		"ingest: seed-format signed `timestamp` further than `--max-event-age` from now": func(t *testing.T) {
			f := startFanout(t, apptest.WithConfig(func(c *config.Config) { c.MaxEventAge = 24 * time.Hour }))
			old := []byte(`{"event":"video.completed","timestamp":"` + time.Now().Add(-48*time.Hour).UTC().Format(time.RFC3339) + `","data":{"job_id":"old"}}`)
			status, out := f.srv.Post(t, "/webhooks/klingai", http.Header{verify.HeaderKlingSignature: {verify.SignKling([]byte(secret), old)}}, old)
			if status != 401 || !bytes.Contains(out, []byte("timestamp outside tolerance")) {
				t.Fatalf("status %d %s, want 401 timestamp outside tolerance", status, out)
			}
		},
		"api: imported secret under 16 characters": func(t *testing.T) {
			_, err := gatewayv1.NewWebhookServiceClient(h.conn).CreateWebhook(ctx, &gatewayv1.CreateWebhookRequest{WebhookId: "weak", Secret: "guessable",
				Webhook: &gatewayv1.Webhook{SignatureScheme: gatewayv1.SignatureScheme_SIGNATURE_SCHEME_KLING_SIGNATURE}})
			grpcCode(t, err, codes.InvalidArgument)
		},
		"api: signature tolerance longer than `--dedup-window`": func(t *testing.T) {
			_, err := gatewayv1.NewWebhookServiceClient(h.conn).CreateWebhook(ctx, &gatewayv1.CreateWebhookRequest{WebhookId: "lenient",
				Webhook: &gatewayv1.Webhook{SignatureScheme: gatewayv1.SignatureScheme_SIGNATURE_SCHEME_STANDARD_WEBHOOKS, SignatureTolerance: durationpb.New(3 * time.Hour)}})
			grpcCode(t, err, codes.InvalidArgument)
		},
		"ingest: body within the limit but too large for the log once normalized": func(t *testing.T) {
			// The server's own limit (the log's max_payload bounds it), so a
			// server of its own: invalid UTF-8 grows threefold as U+FFFD.
			big := startFanout(t, apptest.WithConfig(func(c *config.Config) { c.MaxBodyBytes = 64 << 20 }))
			b := append([]byte(`{"event":"video.failed","data":{"job_id":"expands","prompt":"`), bytes.Repeat([]byte{0xff}, 3<<20)...)
			b = append(b, `"}}`...)
			status, out := big.srv.Post(t, "/webhooks/klingai", http.Header{verify.HeaderKlingSignature: {verify.SignKling([]byte(secret), b)}}, b)
			if status != 200 {
				t.Fatalf("status %d %s, want 200 (stored with its raw body)", status, out)
			}
		},
		"secrets: registrations stored before `KLINGFAN_SECRET_KEY` was set, or sealed with a key the server lacks": expectSecretsSealedAtStart,
		"http: headers over 64 KiB": func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, h.srv.HTTPURL+"/webhooks/klingai", bytes.NewReader(body))
			req.Header.Set("X-Padding", strings.Repeat("a", 80<<10))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Fatalf("status %d, want 431", resp.StatusCode)
			}
		},
		"http: headers sent too slowly (slow loris)": func(t *testing.T) {
			expectClosed(t, addr, "POST /webhooks/klingai HTTP/1.1\r\nHost: x\r\n")
		},
		"http: ingest body sent too slowly": func(t *testing.T) {
			expectClosed(t, addr, "POST /webhooks/klingai HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
		},
		"http: more connections than `--max-http-conns`": func(t *testing.T) {
			var held []net.Conn
			defer func() {
				for _, c := range held {
					c.Close()
				}
			}()
			// Fill every slot with an idle keep-alive connection that has
			// completed a request, so the server holds it.
			for range 8 {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				held = append(held, c)
				fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
				if err := readResponse(c); err != nil {
					t.Fatal(err)
				}
			}
			extra, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer extra.Close()
			fmt.Fprintf(extra, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
			_ = extra.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if err := readResponse(extra); err == nil {
				t.Fatal("a connection beyond the cap was served")
			}
			held[0].Close()
			_ = extra.SetReadDeadline(time.Now().Add(10 * time.Second))
			if err := readResponse(extra); err != nil {
				t.Fatalf("the waiting connection was not served once a slot freed: %v", err)
			}
		},
		"http: one client address holding more than `--max-http-conns-per-addr` connections": func(t *testing.T) {
			f := startFanout(t, apptest.WithConfig(func(c *config.Config) { c.MaxHTTPConnsPerAddr = 2 }))
			a := strings.TrimPrefix(f.srv.HTTPURL, "http://")
			// Connections of the start-up readiness poll may not have
			// been closed on the server's side yet: take the two slots as
			// they free.
			var held []net.Conn
			apptest.Eventually(t, 10*time.Second, "two connections from one address", func() bool {
				if c, err := tryHoldIdle(a); err == nil {
					held = append(held, c)
					t.Cleanup(func() { c.Close() })
				}
				return len(held) == 2
			})
			extra, err := net.Dial("tcp", a)
			if err != nil {
				t.Fatal(err)
			}
			defer extra.Close()
			_ = extra.SetReadDeadline(time.Now().Add(10 * time.Second))
			if n, err := extra.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
				t.Fatalf("a third connection from the same address: read %d, %v; want it closed at once", n, err)
			}
			held[0].Close()
			apptest.Eventually(t, 10*time.Second, "a slot freed by a closed connection", func() bool {
				c, err := net.Dial("tcp", a)
				if err != nil {
					return false
				}
				defer c.Close()
				fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
				_ = c.SetReadDeadline(time.Now().Add(time.Second))
				err = readResponse(c)
				return err == nil
			})
		},
		"http: other traffic holding every `--max-http-conns` slot": func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			f := startFanout(t, apptest.WithIngestListener(ln), apptest.WithConfig(func(c *config.Config) { c.MaxHTTPConns = 2 }))
			a := strings.TrimPrefix(f.srv.HTTPURL, "http://")
			holdIdle(t, a)
			holdIdle(t, a)
			req, _ := http.NewRequest(http.MethodPost, "http://"+ln.Addr().String()+"/webhooks/klingai", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(verify.HeaderKlingSignature, verify.SignKling([]byte(secret), body))
			client := &http.Client{Timeout: 10 * time.Second}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("ingest on its own listener: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("ingest on its own listener: status %d", resp.StatusCode)
			}
		},
		"http: `/metrics` (its labels name registrations) with `--metrics-addr` set": func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			f := startFanout(t, apptest.WithMetricsListener(ln))
			for url, want := range map[string]int{f.srv.HTTPURL + "/metrics": 404, "http://" + ln.Addr().String() + "/metrics": 200} {
				resp, err := http.Get(url)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != want {
					t.Errorf("GET %s: %d, want %d", url, resp.StatusCode, want)
				}
			}
		},
		"api: REST `/v1` without a client certificate when `--tls-client-ca` is set":       expectRESTNeedsClientCert,
		"cli: `klingfan backup` against a server with `--tls-client-ca`":                   expectBackupNeedsClientCert,
		"nats: `--nats-listen` given only a port, or a client without the generated token": expectNATSListenNeedsToken,
		"api: no token": func(t *testing.T) {
			_, err := gatewayv1.NewEventServiceClient(h.srv.Dial(t)).ListEvents(ctx, &gatewayv1.ListEventsRequest{})
			grpcCode(t, err, codes.Unauthenticated)
			restStatus(t, h, http.MethodGet, "/v1/events", "", 401)
		},
		"api: unknown token": func(t *testing.T) {
			_, err := withToken("not-a-real-token-0123456789").ListEvents(ctx, &gatewayv1.ListEventsRequest{})
			grpcCode(t, err, codes.Unauthenticated)
			restStatus(t, h, http.MethodGet, "/v1/webhooks", "not-a-real-token-0123456789", 401)
		},
		"api: REST request without a valid token, whatever its body": func(t *testing.T) {
			// A body larger than any limit, sent without a token, is
			// refused from the headers alone.
			req, _ := http.NewRequest(http.MethodPatch, h.srv.HTTPURL+"/v1/webhooks/std", io.LimitReader(zeroes{}, 200<<20))
			req.ContentLength = 200 << 20
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			out, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 401 || !bytes.Contains(out, []byte(`"code":16`)) {
				t.Fatalf("status %d body %s, want 401 in grpc-gateway's error shape", resp.StatusCode, out)
			}
		},
		"api: REST request body over 1 MiB": func(t *testing.T) {
			big := append(append([]byte(`{"displayName":"`), bytes.Repeat([]byte("x"), 2<<20)...), []byte(`"}`)...)
			req, _ := http.NewRequest(http.MethodPatch, h.srv.HTTPURL+"/v1/webhooks/std", bytes.NewReader(big))
			req.Header.Set("Authorization", "Bearer "+apptest.AdminToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 400 {
				t.Fatalf("status %d, want 400", resp.StatusCode)
			}
		},
		"api: subscribe-scoped token on management": func(t *testing.T) {
			conn := h.srv.Dial(t, grpc.WithPerRPCCredentials(apptest.BearerCreds(subscribeToken)))
			_, err := gatewayv1.NewWebhookServiceClient(conn).ListWebhooks(ctx, &gatewayv1.ListWebhooksRequest{})
			grpcCode(t, err, codes.PermissionDenied)
			restStatus(t, h, http.MethodGet, "/v1/webhooks", subscribeToken, 403)
			if _, err := gatewayv1.NewEventServiceClient(conn).ListEvents(ctx, &gatewayv1.ListEventsRequest{}); err != nil {
				t.Fatalf("the same token may read events: %v", err)
			}
		},
		"grpc: request over 1 MiB": func(t *testing.T) {
			_, err := h.events().ListEvents(ctx, &gatewayv1.ListEventsRequest{OrderBy: strings.Repeat("x", 2<<20)})
			grpcCode(t, err, codes.ResourceExhausted)
		},
		"grpc: more Subscribe and Consume streams than `--max-streams-per-token`": func(t *testing.T) {
			// The subscribe-only token, so the quota this row fills is not
			// the admin token's, which the other rows use.
			h.expectStreamQuota(t, withToken(subscribeToken), gatewayv1.NewConsumerGroupServiceClient(h.srv.Dial(t, grpc.WithPerRPCCredentials(apptest.BearerCreds(subscribeToken)))))
		},
		"grpc: Subscribe or Consume streams whose clients stop reading (e.g. 1,000 full-view streams from the beginning of a log of large events)": expectStalledStreamEnded,
		"grpc: health Watch or reflection stream without a token, on any number of connections": func(t *testing.T) {
			h.expectNoUnauthenticatedStreams(t)
		},
		"grpc: health Watch or reflection streams with a token, beyond 64 per token, or held open": h.expectAuxStreamCap,
		"api: invalid filter (unknown type, empty id, over 1,000 job ids)": func(t *testing.T) {
			_, err := h.events().ListEvents(ctx, &gatewayv1.ListEventsRequest{JobIds: make([]string, 1001)})
			grpcCode(t, err, codes.InvalidArgument)
			restStatus(t, h, http.MethodGet, "/v1/events?eventTypes=99", apptest.AdminToken, 400)
		},
		"api: `GetEvent` by id on a log of many jobs":                                                                                         expectGetEventIndexed,
		"ingest: signed deliveries naming made-up currencies (or models, or Kling error codes)":                                               expectBoundedLabels,
		"http: anonymous `/readyz` while the reconciler fails (its error can carry Kling's message, hosts, proxy addresses)":                  expectReadyzTerse,
		"api: CEL filter whose regex compiles large (`.{999}`), whose pattern is not a constant, or whose clauses add up past the cost limit": expectCostlyFilterRefused,
		"grpc: Subscribe streams carrying the costliest CEL filter the server accepts":                                                        expectCostlyStreamsApart,
		"api: `ListEvents` with a costly filter over a long log":                                                                              expectListPageBudget,
		"api: forged or foreign page token": func(t *testing.T) {
			_, err := h.events().ListEvents(ctx, &gatewayv1.ListEventsRequest{PageToken: "AQAAAAAAAAABAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"})
			grpcCode(t, err, codes.InvalidArgument)
		},
		"ingest: store full (disk full, budget reached under `--retention-policy refuse`)": func(t *testing.T) {
			small, _ := startSmallStore(t, config.RetentionRefuse, nil)
			for i := 0; ; i++ {
				status, retry := postDelivery(t, small, fmt.Sprintf("full-%d", i))
				if status == http.StatusServiceUnavailable {
					if retry == "" {
						t.Fatal("503 without Retry-After")
					}
					break
				}
				if status != http.StatusOK || i > 500 {
					t.Fatalf("delivery %d: status %d, want 200 until the store is full, then 503", i, status)
				}
			}
			if status, reason := readyz(t, small); status != http.StatusServiceUnavailable || !strings.HasPrefix(reason, "store full: ") {
				t.Fatalf("/readyz: %d %q, want 503 naming the store's size", status, reason)
			}
			if status, body := getReadyz(t, small, ""); status != http.StatusServiceUnavailable || !strings.Contains(body, `"reason":"store_full"`) || strings.Contains(body, "MiB") {
				t.Fatalf("anonymous /readyz: %d %s, want 503 with the reason code only", status, body)
			}
		},
		"api: resume point outside the log": func(t *testing.T) {
			s, err := h.events().Subscribe(ctx, &gatewayv1.SubscribeRequest{Start: &gatewayv1.SubscribeRequest_AfterSequence{AfterSequence: 1 << 40}})
			if err == nil {
				_, err = s.Recv()
			}
			grpcCode(t, err, codes.OutOfRange)
		},
	}

	table := readmeSecurityTable(t)
	for _, row := range table {
		if _, ok := rows[row]; !ok {
			t.Errorf("README row %q has no test", row)
		}
	}
	for name, run := range rows {
		if !slices.Contains(table, name) {
			t.Errorf("test %q has no README row", name)
			continue
		}
		t.Run(name, run)
	}
}

// readmeSecurityTable returns the first cells of the README's hostile
// input table.
func readmeSecurityTable(t *testing.T) []string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(readme), "\n## Security\n")
	if !ok {
		t.Fatal("README has no Security section")
	}
	var rows []string
	for _, line := range strings.Split(sec, "\n") {
		if strings.HasPrefix(line, "## ") || strings.HasPrefix(line, "### ") {
			break
		}
		if !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "| input |") {
			continue
		}
		cells := strings.Split(line, " | ")
		rows = append(rows, strings.TrimPrefix(cells[0], "| "))
	}
	if len(rows) < 20 {
		t.Fatalf("found only %d rows in the README's security table", len(rows))
	}
	return rows
}

// zeroes is an endless body.
type zeroes struct{}

func (zeroes) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// expectNoUnauthenticatedStreams opens health Watch and reflection streams
// without a token over many connections, and expects every one refused
// with UNAUTHENTICATED while the server's goroutine count stays flat: a
// refused stream must cost the server nothing it keeps. The unary health
// check stays open.
func (h *hostile) expectNoUnauthenticatedStreams(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	before := scrape(t, h.srv, "go_goroutines")
	const conns, perConn = 10, 100
	for c := range conns {
		conn := h.srv.Dial(t)
		if c == 0 {
			resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
			if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("unauthenticated health check: %v %v", resp, err)
			}
			r, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
			if err == nil {
				_ = r.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
				_, err = r.Recv()
			}
			grpcCode(t, err, codes.Unauthenticated)
		}
		for range perConn {
			w, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
			if err == nil {
				_, err = w.Recv()
			}
			grpcCode(t, err, codes.Unauthenticated)
		}
	}
	// The client still holds its connections; the server holds no stream.
	if after := scrape(t, h.srv, "go_goroutines"); after > before+4*conns+50 {
		t.Fatalf("goroutines %v -> %v after %d refused streams", before, after, conns*perConn)
	}
}

// holdIdle opens a keep-alive connection to addr, completes one request on
// it and leaves it idle, closed by t.Cleanup.
func holdIdle(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := tryHoldIdle(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func tryHoldIdle(addr string) (net.Conn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := readResponse(c); err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetReadDeadline(time.Time{})
	return c, nil
}

// readResponse reads one HTTP response from c and closes its body.
func readResponse(c net.Conn) error {
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}
