package docstest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/emptypb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/config"
	"github.com/klingfan/klingfan/internal/docstest"
	"github.com/klingfan/klingfan/internal/verify"
)

const (
	secret         = "docs-test-webhook-secret"
	subscribeToken = "docs-subscribe-token-0123456789"
)

// startTableServer runs a server in this process with an admin token and a
// subscribe-scoped one.
func startTableServer(t *testing.T, opts ...apptest.Option) *apptest.Server {
	t.Helper()
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("reader subscribe "+subscribeToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts = append([]apptest.Option{
		apptest.WithEnv("KLINGAI_WEBHOOK_SECRET", secret),
		apptest.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		apptest.WithConfig(func(c *config.Config) { c.TokensFile = tokens; c.MaxBodyBytes = 4096 }),
	}, opts...)
	return apptest.Start(t, "", opts...)
}

func signKling(key string, body []byte) http.Header {
	return http.Header{"Content-Type": {"application/json"}, verify.HeaderKlingSignature: {verify.SignKling([]byte(key), body)}}
}

// answer is what a row of a status table claims: the status and, when the
// row quotes one, the error message.
type answer struct {
	status  int
	message string
}

var (
	leadingStatus = regexp.MustCompile("^`?(\\d{3})")
	quotedError   = regexp.MustCompile(`\{"error": "([^"]+)"\}`)
)

func parseAnswer(t *testing.T, cell string) answer {
	t.Helper()
	m := leadingStatus.FindStringSubmatch(cell)
	if m == nil {
		t.Fatalf("answer %q does not start with a status", cell)
	}
	a := answer{}
	a.status, _ = strconv.Atoi(m[1])
	if q := quotedError.FindStringSubmatch(cell); q != nil {
		a.message = q[1]
	}
	return a
}

// checkRows runs one test per row, keyed by the row's first cell, and
// fails for a row without a test or a test without a row.
func checkRows(t *testing.T, tab *docstest.Table, where string, tests map[string]func(t *testing.T, row []string)) {
	t.Helper()
	seen := map[string]bool{}
	for _, row := range tab.Rows {
		key := row[0]
		seen[key] = true
		fn, ok := tests[key]
		if !ok {
			t.Errorf("%s: row %q has no test", where, key)
			continue
		}
		t.Run(key, func(t *testing.T) { fn(t, row) })
	}
	for key := range tests {
		if !seen[key] {
			t.Errorf("%s: test %q has no row", where, key)
		}
	}
}

// TestReadmeIngestTable posts each input of the README's ingest table and
// compares the status, and the error message where the row quotes one.
func TestReadmeIngestTable(t *testing.T) {
	srv := startTableServer(t)
	ctx := context.Background()
	hooks := gatewayv1.NewWebhookServiceClient(srv.DialAdmin(t))
	mk := func(id string, active bool, types ...gatewayv1.EventType) string {
		resp, err := hooks.CreateWebhook(ctx, &gatewayv1.CreateWebhookRequest{WebhookId: id, Webhook: &gatewayv1.Webhook{
			SignatureScheme: gatewayv1.SignatureScheme_SIGNATURE_SCHEME_KLING_SIGNATURE, Active: &active, EventTypes: types}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetSecret()
	}
	offSecret := mk("paused", false)
	onlyDone := mk("only-completed", true, gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED)
	goneSecret := mk("gone", true)
	if _, err := hooks.DeleteWebhook(ctx, &gatewayv1.DeleteWebhookRequest{Id: "gone"}); err != nil {
		t.Fatal(err)
	}
	n := 0
	fresh := func(event string) []byte {
		n++
		return fmt.Appendf(nil, `{"event":%q,"timestamp":"2026-11-26T12:00:00Z","data":{"job_id":"table-%d"}}`, event, n)
	}
	post := func(t *testing.T, path string, h http.Header, body []byte) answer {
		t.Helper()
		st, out := srv.Post(t, path, h, body)
		a := answer{status: st}
		if st >= 400 {
			var m struct{ Error string }
			if err := jsonUnmarshal(out, &m); err != nil || m.Error == "" {
				t.Errorf("error body %s is not {\"error\": ...}", out)
			}
			a.message = m.Error
		}
		return a
	}
	check := func(t *testing.T, row []string, got ...answer) {
		t.Helper()
		want := parseAnswer(t, row[1])
		for _, g := range got {
			if g.status != want.status || (want.message != "" && g.message != want.message) {
				t.Errorf("got %d %q; the table says %s", g.status, g.message, row[1])
			}
		}
	}
	ingest := "/webhooks/klingai"
	rows := map[string]func(t *testing.T, row []string){
		"verified, logged": func(t *testing.T, row []string) {
			b := fresh("video.completed")
			check(t, row, post(t, ingest, signKling(secret, b), b))
		},
		"same delivery again (same `webhook-id`, or same registration and identical body), any time within the retention (a `webhook-id` reused for another job: within `--dedup-window`)": func(t *testing.T, row []string) {
			b := fresh("video.completed")
			check(t, row, post(t, ingest, signKling(secret, b), b), post(t, ingest, signKling(secret, b), b))
		},
		"event type outside the registration's filter": func(t *testing.T, row []string) {
			b := fresh("video.processing")
			st, out := srv.Post(t, "/webhooks/kling/only-completed", signKling(onlyDone, b), b)
			if !bytes.Contains(out, []byte(`"ignored":true`)) {
				t.Errorf("answer %s lacks \"ignored\": true", out)
			}
			check(t, row, answer{status: st})
		},
		"bad or missing signature, wrong token, stale timestamp": func(t *testing.T, row []string) {
			b := fresh("video.completed")
			check(t, row, post(t, ingest, signKling("wrong", b), b), post(t, ingest, http.Header{"Content-Type": {"application/json"}}, b))
		},
		"unknown or deleted registration": func(t *testing.T, row []string) {
			b := fresh("video.completed")
			check(t, row, post(t, "/webhooks/kling/nobody", signKling(secret, b), b), post(t, "/webhooks/kling/gone", signKling(goneSecret, b), b))
		},
		"inactive registration, validly signed": func(t *testing.T, row []string) {
			b := fresh("video.completed")
			check(t, row, post(t, "/webhooks/kling/paused", signKling(offSecret, b), b))
			if got := post(t, "/webhooks/kling/paused", signKling("wrong", b), b); got.status != 401 || got.message != "invalid signature" {
				t.Errorf("badly signed to an inactive registration: %d %q, want the unknown id's 401", got.status, got.message)
			}
		},
		"method other than POST": func(t *testing.T, row []string) {
			resp, err := http.Get(srv.HTTPURL + ingest)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			check(t, row, answer{status: resp.StatusCode})
		},
		"body over `--max-body-bytes` (1 MiB)": func(t *testing.T, row []string) {
			big := bytes.Repeat([]byte(" "), 5000) // the server here allows 4096
			check(t, row, post(t, ingest, signKling(secret, big), big))
		},
		"`Content-Type` other than JSON (a missing one is tolerated)": func(t *testing.T, row []string) {
			b := fresh("video.completed")
			h := signKling(secret, b)
			h.Set("Content-Type", "text/plain")
			check(t, row, post(t, ingest, h, b))
			h.Del("Content-Type")
			if got := post(t, ingest, h, b); got.status != 200 {
				t.Errorf("no Content-Type: %d, want 200", got.status)
			}
		},
		"malformed JSON, unknown shape, or an identifying field (`event`, `task_status`, `id`…) of the wrong kind": func(t *testing.T, row []string) {
			var got []answer
			for _, b := range []string{`{"event":`, `{"hello":"world"}`, `{"task_id":"x","task_status":5}`} {
				got = append(got, post(t, ingest, signKling(secret, []byte(b)), []byte(b)))
			}
			check(t, row, got...)
		},
		"known shape, but another field normalization cannot read, or an output or member it does not know": func(t *testing.T, row []string) {
			b := []byte(`{"event":"video.completed","timestamp":"2026-11-26T12:00:00Z","data":{"job_id":"partial","duration":"long"}}`)
			check(t, row, post(t, ingest, signKling(secret, b), b))
		},
		"log unavailable": func(t *testing.T, row []string) {
			// A store that is full under --retention-policy refuse cannot
			// take the delivery, which is what the row promises for any
			// log that cannot.
			full := startTableServer(t, apptest.WithConfig(func(c *config.Config) {
				c.MaxStoreBytes = 1 << 20
				c.RetentionPolicy = "refuse"
				c.IngestRate, c.IngestBurst = 1e6, 1e6
			}))
			pad := strings.Repeat("x", 3000)
			for i := range 2000 {
				b := fmt.Appendf(nil, `{"event":"video.completed","data":{"job_id":"fill-%d","prompt":%q}}`, i, pad)
				st, _ := full.Post(t, ingest, signKling(secret, b), b)
				if st == 503 {
					check(t, row, answer{status: st, message: ""})
					return
				}
			}
			t.Fatal("the store never refused")
		},
	}
	checkRows(t, page(t, "README.md").TableAfter("Ingest", "input", "answer"), "README.md Ingest", rows)
}

// TestManagementTables checks docs/management.md's tables of scopes, of
// refusals and of what is open without a token against a server, method
// by method.
func TestManagementTables(t *testing.T) {
	srv := startTableServer(t)
	p := page(t, "docs/management.md")

	t.Run("scopes", func(t *testing.T) {
		tab := p.TableAfter("Tokens and scopes", "scope", "may call")
		if tab == nil {
			t.Fatal("no scope table")
		}
		methods := gatewayMethods(t)
		for _, row := range tab.Rows {
			var token string
			switch row[0] {
			case "`admin`":
				token = apptest.AdminToken
			case "`subscribe`":
				token = subscribeToken
			default:
				t.Errorf("unknown scope row %q", row[0])
				continue
			}
			allowed := allowedBy(row[1])
			conn := srv.Dial(t, grpc.WithPerRPCCredentials(apptest.BearerCreds(token)))
			for _, m := range methods {
				code := callCode(t, conn, m)
				permitted := code != codes.PermissionDenied && code != codes.Unauthenticated
				if want := allowed(m); permitted != want {
					t.Errorf("%s token, %s: %v; the table says it may %s", row[0], m.full, code, map[bool]string{true: "call it", false: "not call it"}[want])
				}
			}
		}
	})

	t.Run("refusals", func(t *testing.T) {
		tab := p.TableAfter("Tokens and scopes", "problem", "gRPC", "REST")
		if tab == nil {
			t.Fatal("no table of refusals")
		}
		headers := map[string]metadata.MD{
			"no `authorization`":                             {},
			"not `Bearer <token>`":                           {"authorization": {"Basic " + apptest.AdminToken}},
			"more than one value":                            {"authorization": {"Bearer " + apptest.AdminToken, "Bearer " + apptest.AdminToken}},
			"unknown token":                                  {"authorization": {"Bearer not-a-token-0123456789abcdef"}},
			"valid token without the scope the method needs": {"authorization": {"Bearer " + subscribeToken}},
		}
		rows := map[string]func(t *testing.T, row []string){}
		for key, md := range headers {
			rows[key] = func(t *testing.T, row []string) {
				var want codes.Code
				if err := want.UnmarshalJSON([]byte(`"` + strings.Trim(row[1], "`") + `"`)); err != nil {
					t.Fatalf("gRPC cell %q: %v", row[1], err)
				}
				ctx := metadata.NewOutgoingContext(context.Background(), md)
				_, err := gatewayv1.NewWebhookServiceClient(srv.Dial(t)).ListWebhooks(ctx, &gatewayv1.ListWebhooksRequest{})
				if status.Code(err) != want {
					t.Errorf("gRPC: %v, the table says %v", err, want)
				}
				req, _ := http.NewRequest(http.MethodGet, srv.HTTPURL+"/v1/webhooks", nil)
				for _, v := range md.Get("authorization") {
					req.Header.Add("Authorization", v)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				out, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if strconv.Itoa(resp.StatusCode) != row[2] {
					t.Errorf("REST: %d, the table says %s", resp.StatusCode, row[2])
				}
				var st struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				}
				if err := jsonUnmarshal(out, &st); err != nil || st.Code != int(want) || st.Message == "" {
					t.Errorf("REST body %s is not the documented {\"code\": %d, \"message\": ...}", out, want)
				}
			}
		}
		checkRows(t, tab, "docs/management.md refusals", rows)
	})

	t.Run("open", func(t *testing.T) {
		tab := p.TableAfter("Tokens and scopes", "without a token", "answer")
		if tab == nil {
			t.Fatal("no table of what is open")
		}
		served := func(t *testing.T, row []string, err error) {
			t.Helper()
			open := row[1] == "served"
			if open && err != nil {
				t.Errorf("without a token: %v; the table says served", err)
			}
			if !open && status.Code(err) != codes.Unauthenticated {
				t.Errorf("without a token: %v; the table says %s", err, row[1])
			}
		}
		conn := srv.Dial(t)
		rows := map[string]func(t *testing.T, row []string){
			"`GET /healthz`, `/readyz`, `/metrics`, `/openapi.json`": func(t *testing.T, row []string) {
				for _, path := range []string{"/healthz", "/readyz", "/metrics", "/openapi.json"} {
					resp, err := http.Get(srv.HTTPURL + path)
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					if (resp.StatusCode == 200) != (row[1] == "served") {
						t.Errorf("GET %s: %d; the table says %s", path, resp.StatusCode, row[1])
					}
				}
			},
			"gRPC `grpc.health.v1.Health/Check`": func(t *testing.T, row []string) {
				_, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
				served(t, row, err)
			},
			"gRPC `grpc.health.v1.Health/Watch` and server reflection (what `grpcurl list` uses)": func(t *testing.T, row []string) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				w, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
				if err == nil {
					_, err = w.Recv()
				}
				served(t, row, err)
				r, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
				if err == nil {
					// A Send on a stream the server has already refused
					// reports io.EOF; Recv gives the refusal's status.
					_ = r.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
					_, err = r.Recv()
				}
				served(t, row, err)
			},
		}
		checkRows(t, tab, "docs/management.md open", rows)
	})
}

// method is one RPC of a kling.gateway.v1 service.
type method struct {
	service, name, full string
	serverStream        bool
	clientStream        bool
}

// gatewayMethods lists every method of every kling.gateway.v1 service this
// build has, so a service added later is checked without editing the test.
func gatewayMethods(t *testing.T) []method {
	t.Helper()
	_ = gatewayv1.File_kling_gateway_v1_event_service_proto // linked in
	var out []method
	protoregistry.GlobalFiles.RangeFilesByPackage("kling.gateway.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			sd := fd.Services().Get(i)
			for j := range sd.Methods().Len() {
				md := sd.Methods().Get(j)
				out = append(out, method{service: string(sd.Name()), name: string(md.Name()),
					full: fmt.Sprintf("/%s/%s", sd.FullName(), md.Name()), serverStream: md.IsStreamingServer(), clientStream: md.IsStreamingClient()})
			}
		}
		return true
	})
	slices.SortFunc(out, func(a, b method) int { return strings.Compare(a.full, b.full) })
	if len(out) == 0 {
		t.Fatal("no kling.gateway.v1 service linked in")
	}
	return out
}

var (
	serviceGroupRE = regexp.MustCompile("`([A-Za-z]+Service)`(?: \\(([^)]*)\\))?")
	backquotedRE   = regexp.MustCompile("`([A-Za-z]+)`")
)

// allowedBy reads a "may call" cell: "`EventService` (`Subscribe`, ...)"
// allows those methods, a service without a list all of its methods, and
// "every method of `A`, `B`" every method of those.
func allowedBy(cell string) func(method) bool {
	all := map[string]bool{}
	some := map[string]bool{}
	for _, m := range serviceGroupRE.FindAllStringSubmatch(cell, -1) {
		if m[2] == "" {
			all[m[1]] = true
			continue
		}
		for _, n := range backquotedRE.FindAllStringSubmatch(m[2], -1) {
			some[m[1]+"/"+n[1]] = true
		}
	}
	return func(m method) bool { return all[m.service] || some[m.service+"/"+m.name] }
}

// callCode calls m with an empty request and returns the status code it
// ends with; a stream that opens without an error counts as OK.
func callCode(t *testing.T, conn *grpc.ClientConn, m method) codes.Code {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if !m.serverStream && !m.clientStream {
		return status.Code(conn.Invoke(ctx, m.full, &emptypb.Empty{}, &emptypb.Empty{}))
	}
	st, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: m.serverStream, ClientStreams: m.clientStream}, m.full)
	if err != nil {
		return status.Code(err)
	}
	if err := st.SendMsg(&emptypb.Empty{}); err != nil && !errors.Is(err, io.EOF) {
		return status.Code(err)
	}
	_ = st.CloseSend()
	if md, err := st.Header(); err != nil {
		return status.Code(err)
	} else if len(md) > 0 {
		return codes.OK // the server answered with headers: the call was let in
	}
	return status.Code(st.RecvMsg(&emptypb.Empty{}))
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
