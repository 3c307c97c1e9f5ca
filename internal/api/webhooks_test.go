package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/config"
	"github.com/klingfan/klingfan/internal/normalize"
	"github.com/klingfan/klingfan/internal/store"
	"github.com/klingfan/klingfan/internal/verify"
)

const (
	kling    = gatewayv1.SignatureScheme_SIGNATURE_SCHEME_KLING_SIGNATURE
	standard = gatewayv1.SignatureScheme_SIGNATURE_SCHEME_STANDARD_WEBHOOKS
	urlToken = gatewayv1.SignatureScheme_SIGNATURE_SCHEME_URL_TOKEN

	completed  = gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED
	failed     = gatewayv1.EventType_EVENT_TYPE_VIDEO_FAILED
	processing = gatewayv1.EventType_EVENT_TYPE_VIDEO_PROCESSING

	// Secrets imported in tests, one per scheme.
	importedStandard = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	importedKling    = "kling-console-secret-42"
	importedToken    = "url-token-abcdefghijklmnop"

	subscribeToken = "subscribe-token-for-webhook-tests"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// env is a running server with clients for both services, its log and its
// clock.
type env struct {
	srv   *apptest.Server
	wh    gatewayv1.WebhookServiceClient
	ev    gatewayv1.EventServiceClient
	logs  *apptest.SyncBuffer
	clock *apptest.Clock
}

func start(t *testing.T, opts ...apptest.Option) *env {
	t.Helper()
	e := &env{logs: &apptest.SyncBuffer{}, clock: apptest.NewClock(t0)}
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("renderer subscribe "+subscribeToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts = append([]apptest.Option{
		apptest.WithClock(e.clock.Now),
		apptest.WithLogger(slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
		apptest.WithConfig(func(c *config.Config) { c.TokensFile = tokens }),
	}, opts...)
	e.srv = apptest.Start(t, "", opts...)
	conn := e.srv.DialAdmin(t)
	e.wh = gatewayv1.NewWebhookServiceClient(conn)
	e.ev = gatewayv1.NewEventServiceClient(conn)
	return e
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// violation returns the field of the first BadRequest violation in a gRPC
// error.
func violation(err error) string {
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			return br.GetFieldViolations()[0].GetField()
		}
	}
	return ""
}

// restError is grpc-gateway's standard error body.
type restError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Details []struct {
		Type            string `json:"@type"`
		FieldViolations []struct {
			Field       string `json:"field"`
			Description string `json:"description"`
		} `json:"fieldViolations"`
	} `json:"details"`
}

func (r restError) field() string {
	for _, d := range r.Details {
		if d.Type == "type.googleapis.com/google.rpc.BadRequest" && len(d.FieldViolations) > 0 {
			return d.FieldViolations[0].Field
		}
	}
	return ""
}

// rest makes a curl-like request with the given bearer token ("" for
// none) and returns the status and body.
func rest(t *testing.T, srv *apptest.Server, token, method, path, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, srv.HTTPURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// admin is rest with the admin token.
func (e *env) admin(t *testing.T, method, path, body string) (int, []byte) {
	t.Helper()
	return rest(t, e.srv, apptest.AdminToken, method, path, body)
}

func decode[M proto.Message](t *testing.T, body []byte, m M) M {
	t.Helper()
	if err := protojson.Unmarshal(body, m); err != nil {
		t.Fatalf("decoding %s: %v", body, err)
	}
	return m
}

// decodeError parses grpc-gateway's error body; streaming routes wrap it
// in {"error": ...}.
func decodeError(t *testing.T, body []byte) restError {
	t.Helper()
	var e restError
	var wrapped struct {
		Error *restError `json:"error"`
	}
	if json.Unmarshal(body, &wrapped) == nil && wrapped.Error != nil {
		e = *wrapped.Error
	} else if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("not grpc-gateway's error shape: %s (%v)", body, err)
	}
	if e.Message == "" {
		t.Fatalf("not grpc-gateway's error shape: %s", body)
	}
	return e
}

var jobN atomic.Int64

// delivery builds a real delivery for scheme, authenticated with secret at
// now: its URL (relative to the HTTP listener), headers and body.
func delivery(t *testing.T, id string, scheme gatewayv1.SignatureScheme, secret string, now time.Time) (string, http.Header, []byte) {
	t.Helper()
	job := "job-" + strconv.FormatInt(jobN.Add(1), 10)
	format := gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_V2
	if scheme == kling {
		format = gatewayv1.SourceFormat_SOURCE_FORMAT_KLING_EVENT
	}
	body, err := normalize.Sample(format, completed, job, now)
	if err != nil {
		t.Fatal(err)
	}
	path := "/webhooks/kling/" + id
	h := http.Header{}
	switch scheme {
	case kling:
		h.Set(verify.HeaderKlingSignature, verify.SignKling([]byte(secret), body))
	case standard:
		key, err := verify.DecodeStandardSecret(secret)
		if err != nil {
			t.Fatal(err)
		}
		h.Set(verify.HeaderWebhookID, "msg_"+job)
		h.Set(verify.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
		h.Set(verify.HeaderWebhookSignature, verify.SignStandard(key, "msg_"+job, now, body))
	case urlToken:
		path += "?token=" + url.QueryEscape(secret)
	}
	return path, h, body
}

// deliver posts a fresh delivery signed with secret and returns the status.
func deliver(t *testing.T, srv *apptest.Server, id string, scheme gatewayv1.SignatureScheme, secret string, now time.Time) int {
	t.Helper()
	path, h, body := delivery(t, id, scheme, secret, now)
	code, _ := srv.Post(t, path, h, body)
	return code
}

// CreateWebhook validation, over gRPC and REST: INVALID_ARGUMENT / 400 with
// a google.rpc.BadRequest naming the field.
func TestCreateWebhookValidation(t *testing.T) {
	e := start(t)
	ctx := ctxT(t)
	wh := func(mod func(*gatewayv1.Webhook)) *gatewayv1.Webhook {
		w := &gatewayv1.Webhook{SignatureScheme: standard}
		if mod != nil {
			mod(w)
		}
		return w
	}
	tests := []struct {
		name  string
		req   *gatewayv1.CreateWebhookRequest
		field string
	}{
		{"no webhook", &gatewayv1.CreateWebhookRequest{}, "webhook"},
		{"no scheme", &gatewayv1.CreateWebhookRequest{Webhook: &gatewayv1.Webhook{}}, "webhook.signature_scheme"},
		{"unknown scheme", &gatewayv1.CreateWebhookRequest{Webhook: wh(func(w *gatewayv1.Webhook) { w.SignatureScheme = 42 })}, "webhook.signature_scheme"},
		{"upper-case id", &gatewayv1.CreateWebhookRequest{WebhookId: "Orders", Webhook: wh(nil)}, "webhook_id"},
		{"id starting with a dash", &gatewayv1.CreateWebhookRequest{WebhookId: "-orders", Webhook: wh(nil)}, "webhook_id"},
		{"id of 64 characters", &gatewayv1.CreateWebhookRequest{WebhookId: strings.Repeat("a", 64), Webhook: wh(nil)}, "webhook_id"},
		{"conflicting ids", &gatewayv1.CreateWebhookRequest{WebhookId: "a", Webhook: wh(func(w *gatewayv1.Webhook) { w.Id = "b" })}, "webhook.id"},
		{"display name of 201 characters", &gatewayv1.CreateWebhookRequest{Webhook: wh(func(w *gatewayv1.Webhook) { w.DisplayName = strings.Repeat("é", 201) })}, "webhook.display_name"},
		{"unspecified event type", &gatewayv1.CreateWebhookRequest{Webhook: wh(func(w *gatewayv1.Webhook) { w.EventTypes = []gatewayv1.EventType{completed, 0} })}, "webhook.event_types[1]"},
		{"unknown event type", &gatewayv1.CreateWebhookRequest{Webhook: wh(func(w *gatewayv1.Webhook) { w.EventTypes = []gatewayv1.EventType{99} })}, "webhook.event_types[0]"},
		{"negative tolerance", &gatewayv1.CreateWebhookRequest{Webhook: wh(func(w *gatewayv1.Webhook) { w.SignatureTolerance = durationpb.New(-time.Second) })}, "webhook.signature_tolerance"},
		{"tolerance over 24h", &gatewayv1.CreateWebhookRequest{Webhook: wh(func(w *gatewayv1.Webhook) { w.SignatureTolerance = durationpb.New(25 * time.Hour) })}, "webhook.signature_tolerance"},
		{"standard secret without base64", &gatewayv1.CreateWebhookRequest{Secret: "whsec_not base64!", Webhook: wh(nil)}, "secret"},
		{"secret with whitespace", &gatewayv1.CreateWebhookRequest{Secret: importedStandard + "\n", Webhook: wh(nil)}, "secret"},
		{"Kling secret under 16 characters", &gatewayv1.CreateWebhookRequest{Secret: "fifteen-chars-x", Webhook: &gatewayv1.Webhook{SignatureScheme: gatewayv1.SignatureScheme_SIGNATURE_SCHEME_KLING_SIGNATURE}}, "secret"},
		{"short URL token", &gatewayv1.CreateWebhookRequest{Secret: "short", Webhook: &gatewayv1.Webhook{SignatureScheme: urlToken}}, "secret"},
		{"URL token with a space", &gatewayv1.CreateWebhookRequest{Secret: "abcdefgh ijklmnopqrstu", Webhook: &gatewayv1.Webhook{SignatureScheme: urlToken}}, "secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/gRPC", func(t *testing.T) {
			_, err := e.wh.CreateWebhook(ctx, tt.req)
			if status.Code(err) != codes.InvalidArgument || violation(err) != tt.field {
				t.Fatalf("got %v (field %q), want INVALID_ARGUMENT on %q", err, violation(err), tt.field)
			}
			if tt.req.GetSecret() != "" && strings.Contains(err.Error(), tt.req.GetSecret()) {
				t.Errorf("error reveals the secret: %v", err)
			}
		})
		t.Run(tt.name+"/REST", func(t *testing.T) {
			body, err := protojson.Marshal(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			code, out := e.admin(t, http.MethodPost, "/v1/webhooks", string(body))
			if code != http.StatusBadRequest {
				t.Fatalf("status %d %s, want 400", code, out)
			}
			if re := decodeError(t, out); re.Code != int(codes.InvalidArgument) || re.field() != tt.field {
				t.Errorf("error %s, want code 3 on field %q", out, tt.field)
			}
		})
	}
}

// Every WebhookService RPC over gRPC.
func TestWebhookServiceGRPC(t *testing.T) {
	e := start(t)
	ctx := ctxT(t)

	// Create: generated id and secret.
	gen, err := e.wh.CreateWebhook(ctx, &gatewayv1.CreateWebhookRequest{Webhook: &gatewayv1.Webhook{SignatureScheme: standard, DisplayName: "Kling prod"}})
	if err != nil {
		t.Fatal(err)
	}
	w := gen.GetWebhook()
	if !regexp.MustCompile(`^wh-[a-z2-7]{10}$`).MatchString(w.GetId()) {
		t.Errorf("generated id %q", w.GetId())
	}
	if _, err := verify.DecodeStandardSecret(gen.GetSecret()); err != nil || !strings.HasPrefix(gen.GetSecret(), "whsec_") {
		t.Errorf("generated secret is not a Standard Webhooks secret: %v", err)
	}
	wantURL := e.srv.HTTPURL + "/webhooks/kling/" + w.GetId()
	if w.GetIngestUrl() != wantURL || gen.GetCallbackUrl() != wantURL {
		t.Errorf("ingest_url %q, callback_url %q, want %q", w.GetIngestUrl(), gen.GetCallbackUrl(), wantURL)
	}
	if !w.GetActive() || w.GetSignatureTolerance().AsDuration() != 5*time.Minute || !w.GetCreateTime().AsTime().Equal(t0) || !w.GetUpdateTime().AsTime().Equal(t0) || w.GetPreviousSecretExpireTime() != nil {
		t.Errorf("defaults: %v", w)
	}
	if code := deliver(t, e.srv, w.GetId(), standard, gen.GetSecret(), t0); code != 200 {
		t.Errorf("delivery signed with the generated secret: %d", code)
	}

	// Create: client-chosen id, imported secret, every option.
	orders, err := e.wh.CreateWebhook(ctx, &gatewayv1.CreateWebhookRequest{
		WebhookId: "orders",
		Secret:    importedKling,
		Webhook: &gatewayv1.Webhook{
			SignatureScheme: kling, EventTypes: []gatewayv1.EventType{completed, failed, completed},
			Active: proto.Bool(false), SignatureTolerance: durationpb.New(0),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if ow := orders.GetWebhook(); orders.GetSecret() != importedKling || ow.GetId() != "orders" || ow.GetActive() ||
		ow.GetSignatureTolerance().AsDuration() != 0 || len(ow.GetEventTypes()) != 2 {
		t.Errorf("created %v with secret %q", ow, orders.GetSecret())
	}
	if _, err := e.wh.CreateWebhook(ctx, &gatewayv1.CreateWebhookRequest{WebhookId: "orders", Webhook: &gatewayv1.Webhook{SignatureScheme: standard}}); status.Code(err) != codes.AlreadyExists {
		t.Errorf("taken id: %v, want ALREADY_EXISTS", err)
	}

	// Create: URL token; only callback_url carries it.
	tok, err := e.wh.CreateWebhook(ctx, &gatewayv1.CreateWebhookRequest{WebhookId: "tok", Webhook: &gatewayv1.Webhook{SignatureScheme: urlToken}})
	if err != nil {
		t.Fatal(err)
	}
	if tok.GetCallbackUrl() != e.srv.HTTPURL+"/webhooks/kling/tok?token="+tok.GetSecret() || len(tok.GetSecret()) < 40 {
		t.Errorf("callback_url %q for token %q", tok.GetCallbackUrl(), tok.GetSecret())
	}
	if strings.Contains(tok.GetWebhook().GetIngestUrl(), "token") {
		t.Errorf("ingest_url carries the token: %q", tok.GetWebhook().GetIngestUrl())
	}
	if code, _ := e.srv.Post(t, strings.TrimPrefix(tok.GetCallbackUrl(), e.srv.HTTPURL), nil, mustSample(t, gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_V2)); code != 200 {
		t.Errorf("delivery to callback_url: %d", code)
	}
	secrets := []string{gen.GetSecret(), importedKling, tok.GetSecret()}

	// Get.
	got, err := e.wh.GetWebhook(ctx, &gatewayv1.GetWebhookRequest{Id: "orders"})
	if err != nil || !proto.Equal(got.GetWebhook(), orders.GetWebhook()) {
		t.Errorf("GetWebhook: %v %v, want %v", got, err, orders.GetWebhook())
	}
	for _, tt := range []struct {
		name string
		id   string
		want codes.Code
	}{{"unknown", "nobody", codes.NotFound}, {"malformed", "No_Body", codes.InvalidArgument}, {"empty", "", codes.InvalidArgument}} {
		if _, err := e.wh.GetWebhook(ctx, &gatewayv1.GetWebhookRequest{Id: tt.id}); status.Code(err) != tt.want {
			t.Errorf("GetWebhook %s: %v, want %v", tt.name, err, tt.want)
		}
	}

	// List: pages in id order, tamper-evident tokens.
	var ids []string
	req := &gatewayv1.ListWebhooksRequest{PageSize: 2}
	for pages := 0; ; pages++ {
		resp, err := e.wh.ListWebhooks(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if pages == 0 && (len(resp.GetWebhooks()) != 2 || resp.GetNextPageToken() == "") {
			t.Fatalf("first page: %v", resp)
		}
		for _, w := range resp.GetWebhooks() {
			ids = append(ids, w.GetId())
			assertNoSecret(t, w, secrets)
		}
		if resp.GetNextPageToken() == "" {
			break
		}
		req.PageToken = resp.GetNextPageToken()
	}
	if want := []string{"orders", "tok", w.GetId()}; fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Errorf("listed %v, want %v", ids, want)
	}
	first, _ := e.wh.ListWebhooks(ctx, &gatewayv1.ListWebhooksRequest{PageSize: 1})
	for _, tt := range []struct {
		name  string
		req   *gatewayv1.ListWebhooksRequest
		field string
	}{
		{"negative page size", &gatewayv1.ListWebhooksRequest{PageSize: -1}, "page_size"},
		{"garbage token", &gatewayv1.ListWebhooksRequest{PageToken: "garbage"}, "page_token"},
		{"tampered token", &gatewayv1.ListWebhooksRequest{PageToken: tamper(first.GetNextPageToken())}, "page_token"},
	} {
		if _, err := e.wh.ListWebhooks(ctx, tt.req); status.Code(err) != codes.InvalidArgument || violation(err) != tt.field {
			t.Errorf("ListWebhooks %s: %v, want INVALID_ARGUMENT on %s", tt.name, err, tt.field)
		}
	}
	if all, err := e.wh.ListWebhooks(ctx, &gatewayv1.ListWebhooksRequest{PageSize: 5000}); err != nil || len(all.GetWebhooks()) != 3 {
		t.Errorf("page_size above the maximum is capped, not refused: %v %v", all, err)
	}

	// Update.
	e.clock.Advance(time.Minute)
	upd, err := e.wh.UpdateWebhook(ctx, &gatewayv1.UpdateWebhookRequest{
		Webhook:    &gatewayv1.Webhook{Id: "orders", DisplayName: "Orders", Active: proto.Bool(true), EventTypes: nil, SignatureScheme: standard},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"displayName", "active", "event_types"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if u := upd.GetWebhook(); u.GetDisplayName() != "Orders" || !u.GetActive() || len(u.GetEventTypes()) != 0 ||
		u.GetSignatureScheme() != kling || !u.GetUpdateTime().AsTime().Equal(t0.Add(time.Minute)) || !u.GetCreateTime().AsTime().Equal(t0) {
		t.Errorf("updated: %v", u)
	}
	if code := deliver(t, e.srv, "orders", kling, importedKling, e.clock.Now()); code != 200 {
		t.Errorf("delivery after activating: %d", code)
	}
	if upd, err := e.wh.UpdateWebhook(ctx, &gatewayv1.UpdateWebhookRequest{
		Webhook: &gatewayv1.Webhook{Id: "orders"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"signature_tolerance"}},
	}); err != nil || upd.GetWebhook().GetSignatureTolerance().AsDuration() != 5*time.Minute {
		t.Errorf("clearing signature_tolerance resets the default: %v %v", upd, err)
	}
	for _, tt := range []struct {
		name  string
		w     *gatewayv1.Webhook
		paths []string
		code  codes.Code
		field string
	}{
		{"no mask", &gatewayv1.Webhook{Id: "orders"}, nil, codes.InvalidArgument, "update_mask"},
		{"scheme changed", &gatewayv1.Webhook{Id: "orders", SignatureScheme: gatewayv1.SignatureScheme_SIGNATURE_SCHEME_URL_TOKEN}, []string{"signature_scheme"}, codes.InvalidArgument, "update_mask.paths[0]"},
		{"scheme unchanged", &gatewayv1.Webhook{Id: "orders", SignatureScheme: kling}, []string{"display_name", "signature_scheme"}, codes.InvalidArgument, "update_mask.paths[1]"},
		{"id", &gatewayv1.Webhook{Id: "orders"}, []string{"id"}, codes.InvalidArgument, "update_mask.paths[0]"},
		{"id in lowerCamel beside an updatable field", &gatewayv1.Webhook{Id: "orders", DisplayName: "x"}, []string{"displayName", "id"}, codes.InvalidArgument, "update_mask.paths[1]"},
		{"output only", &gatewayv1.Webhook{Id: "orders"}, []string{"updateTime"}, codes.InvalidArgument, "update_mask.paths[0]"},
		{"unknown path", &gatewayv1.Webhook{Id: "orders"}, []string{"secret"}, codes.InvalidArgument, "update_mask.paths[0]"},
		{"nested path", &gatewayv1.Webhook{Id: "orders"}, []string{"signature_tolerance.seconds"}, codes.InvalidArgument, "update_mask.paths[0]"},
		{"active unset", &gatewayv1.Webhook{Id: "orders"}, []string{"active"}, codes.InvalidArgument, "webhook.active"},
		{"bad event type", &gatewayv1.Webhook{Id: "orders", EventTypes: []gatewayv1.EventType{0}}, []string{"event_types"}, codes.InvalidArgument, "webhook.event_types[0]"},
		{"long display name", &gatewayv1.Webhook{Id: "orders", DisplayName: strings.Repeat("x", 201)}, []string{"display_name"}, codes.InvalidArgument, "webhook.display_name"},
		{"tolerance over 24h", &gatewayv1.Webhook{Id: "orders", SignatureTolerance: durationpb.New(48 * time.Hour)}, []string{"signature_tolerance"}, codes.InvalidArgument, "webhook.signature_tolerance"},
		{"no id", &gatewayv1.Webhook{}, []string{"display_name"}, codes.InvalidArgument, "webhook.id"},
		{"unknown webhook", &gatewayv1.Webhook{Id: "nobody"}, []string{"display_name"}, codes.NotFound, ""},
	} {
		req := &gatewayv1.UpdateWebhookRequest{Webhook: tt.w}
		if tt.paths != nil {
			req.UpdateMask = &fieldmaskpb.FieldMask{Paths: tt.paths}
		}
		before, _ := e.wh.GetWebhook(ctx, &gatewayv1.GetWebhookRequest{Id: "orders"})
		e.clock.Advance(time.Second)
		_, err := e.wh.UpdateWebhook(ctx, req)
		if status.Code(err) != tt.code || violation(err) != tt.field {
			t.Errorf("UpdateWebhook %s: %v (field %q), want %v on %q", tt.name, err, violation(err), tt.code, tt.field)
		}
		if after, _ := e.wh.GetWebhook(ctx, &gatewayv1.GetWebhookRequest{Id: "orders"}); !proto.Equal(before, after) {
			t.Errorf("UpdateWebhook %s was refused but changed the registration: %v -> %v", tt.name, before, after)
		}
	}

	// Rotate.
	rot, err := e.wh.RotateWebhookSecret(ctx, &gatewayv1.RotateWebhookSecretRequest{Id: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	if rot.GetSecret() == tok.GetSecret() || rot.GetCallbackUrl() != e.srv.HTTPURL+"/webhooks/kling/tok?token="+rot.GetSecret() ||
		!rot.GetWebhook().GetPreviousSecretExpireTime().AsTime().Equal(e.clock.Now().Add(24*time.Hour)) {
		t.Errorf("rotated: %v", rot)
	}
	secrets = append(secrets, rot.GetSecret())
	for _, tt := range []struct {
		name  string
		req   *gatewayv1.RotateWebhookSecretRequest
		code  codes.Code
		field string
	}{
		{"grace over 30 days", &gatewayv1.RotateWebhookSecretRequest{Id: "tok", GracePeriod: durationpb.New(31 * 24 * time.Hour)}, codes.InvalidArgument, "grace_period"},
		{"negative grace", &gatewayv1.RotateWebhookSecretRequest{Id: "tok", GracePeriod: durationpb.New(-time.Second)}, codes.InvalidArgument, "grace_period"},
		{"bad imported secret", &gatewayv1.RotateWebhookSecretRequest{Id: w.GetId(), Secret: "whsec_%%%"}, codes.InvalidArgument, "secret"},
		{"unknown webhook", &gatewayv1.RotateWebhookSecretRequest{Id: "nobody"}, codes.NotFound, ""},
		{"no id", &gatewayv1.RotateWebhookSecretRequest{}, codes.InvalidArgument, "id"},
	} {
		_, err := e.wh.RotateWebhookSecret(ctx, tt.req)
		if status.Code(err) != tt.code || violation(err) != tt.field {
			t.Errorf("RotateWebhookSecret %s: %v, want %v on %q", tt.name, err, tt.code, tt.field)
		}
	}

	// SendTestEvent.
	te, err := e.wh.SendTestEvent(ctx, &gatewayv1.SendTestEventRequest{Id: "orders", EventType: failed})
	if err != nil {
		t.Fatal(err)
	}
	if ev := te.GetEvent(); !ev.GetTest() || ev.GetType() != failed || ev.GetWebhookId() != "orders" || ev.GetSequence() == 0 ||
		ev.GetSourceFormat() != gatewayv1.SourceFormat_SOURCE_FORMAT_KLING_EVENT || !strings.HasPrefix(ev.GetJob().GetJobId(), "test-") {
		t.Errorf("test event: %v", ev)
	}

	// Delete.
	if _, err := e.wh.DeleteWebhook(ctx, &gatewayv1.DeleteWebhookRequest{Id: "orders"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.wh.GetWebhook(ctx, &gatewayv1.GetWebhookRequest{Id: "orders"}); status.Code(err) != codes.NotFound {
		t.Errorf("Get after delete: %v", err)
	}
	if _, err := e.wh.DeleteWebhook(ctx, &gatewayv1.DeleteWebhookRequest{Id: "orders"}); status.Code(err) != codes.NotFound {
		t.Errorf("second delete: %v", err)
	}
	if code := deliver(t, e.srv, "orders", kling, importedKling, e.clock.Now()); code != 401 {
		t.Errorf("delivery after delete: %d, want 401 (an unknown id is answered like a bad signature)", code)
	}
	assertNoSecretInLogs(t, e.logs, secrets)
}

// Every WebhookService route over REST, with the status codes and error
// shape of grpc-gateway.
func TestWebhookServiceREST(t *testing.T) {
	e := start(t)

	code, out := e.admin(t, "POST", "/v1/webhooks", `{"webhookId":"rest-1","webhook":{"displayName":"REST","signatureScheme":"SIGNATURE_SCHEME_KLING_SIGNATURE","eventTypes":["EVENT_TYPE_VIDEO_COMPLETED"],"signatureTolerance":"60s"}}`)
	if code != 200 {
		t.Fatalf("create: %d %s", code, out)
	}
	created := decode(t, out, &gatewayv1.CreateWebhookResponse{})
	if created.GetSecret() == "" || created.GetWebhook().GetSignatureTolerance().AsDuration() != time.Minute || !created.GetWebhook().GetActive() {
		t.Errorf("created: %s", out)
	}
	if !bytes.Contains(out, []byte(`"signatureScheme":"SIGNATURE_SCHEME_KLING_SIGNATURE"`)) && !bytes.Contains(out, []byte(`"signatureScheme": "SIGNATURE_SCHEME_KLING_SIGNATURE"`)) {
		t.Errorf("enums are not rendered by name: %s", out)
	}

	steps := []struct {
		name         string
		token        string
		method, path string
		body         string
		want         int
		check        func(t *testing.T, body []byte)
	}{
		{name: "create duplicate", method: "POST", path: "/v1/webhooks", body: `{"webhookId":"rest-1","webhook":{"signatureScheme":"SIGNATURE_SCHEME_URL_TOKEN"}}`, want: 409},
		{name: "create with unknown field", method: "POST", path: "/v1/webhooks", body: `{"webhook":{"signatureScheme":"SIGNATURE_SCHEME_URL_TOKEN","colour":"red"}}`, want: 400},
		{name: "create bad id", method: "POST", path: "/v1/webhooks", body: `{"webhookId":"UPPER","webhook":{"signatureScheme":"SIGNATURE_SCHEME_URL_TOKEN"}}`, want: 400,
			check: wantField("webhook_id")},
		{name: "create second", method: "POST", path: "/v1/webhooks", body: `{"webhookId":"rest-2","webhook":{"signatureScheme":"SIGNATURE_SCHEME_URL_TOKEN"}}`, want: 200},
		{name: "get", method: "GET", path: "/v1/webhooks/rest-1", want: 200, check: func(t *testing.T, b []byte) {
			w := decode(t, b, &gatewayv1.GetWebhookResponse{}).GetWebhook()
			if w.GetDisplayName() != "REST" || w.GetIngestUrl() != e.srv.HTTPURL+"/webhooks/kling/rest-1" {
				t.Errorf("got %s", b)
			}
			if bytes.Contains(b, []byte(created.GetSecret())) {
				t.Errorf("GET reveals the secret: %s", b)
			}
		}},
		{name: "get unknown", method: "GET", path: "/v1/webhooks/nobody", want: 404},
		{name: "get malformed id", method: "GET", path: "/v1/webhooks/NOBODY", want: 400, check: wantField("id")},
		{name: "list first page", method: "GET", path: "/v1/webhooks?pageSize=1", want: 200, check: func(t *testing.T, b []byte) {
			l := decode(t, b, &gatewayv1.ListWebhooksResponse{})
			if len(l.GetWebhooks()) != 1 || l.GetWebhooks()[0].GetId() != "rest-1" || l.GetNextPageToken() == "" {
				t.Fatalf("first page %s", b)
			}
			code, next := e.admin(t, "GET", "/v1/webhooks?pageSize=1&pageToken="+url.QueryEscape(l.GetNextPageToken()), "")
			l2 := decode(t, next, &gatewayv1.ListWebhooksResponse{})
			if code != 200 || len(l2.GetWebhooks()) != 1 || l2.GetWebhooks()[0].GetId() != "rest-2" || l2.GetNextPageToken() != "" {
				t.Errorf("second page %d %s", code, next)
			}
		}},
		{name: "list bad page size", method: "GET", path: "/v1/webhooks?pageSize=-5", want: 400, check: wantField("page_size")},
		{name: "list bad token", method: "GET", path: "/v1/webhooks?pageToken=AAAA", want: 400, check: wantField("page_token")},
		{name: "patch fills the mask from the body", method: "PATCH", path: "/v1/webhooks/rest-1", body: `{"displayName":"Renamed","active":false}`, want: 200,
			check: func(t *testing.T, b []byte) {
				w := decode(t, b, &gatewayv1.UpdateWebhookResponse{}).GetWebhook()
				if w.GetDisplayName() != "Renamed" || w.GetActive() || len(w.GetEventTypes()) != 1 || w.GetSignatureTolerance().AsDuration() != time.Minute {
					t.Errorf("patched %s", b)
				}
			}},
		{name: "patch explicit mask", method: "PATCH", path: "/v1/webhooks/rest-1?updateMask=eventTypes", body: `{"displayName":"ignored","eventTypes":[]}`, want: 200,
			check: func(t *testing.T, b []byte) {
				w := decode(t, b, &gatewayv1.UpdateWebhookResponse{}).GetWebhook()
				if w.GetDisplayName() != "Renamed" || len(w.GetEventTypes()) != 0 {
					t.Errorf("patched %s", b)
				}
			}},
		{name: "patch immutable", method: "PATCH", path: "/v1/webhooks/rest-1", body: `{"signatureScheme":"SIGNATURE_SCHEME_URL_TOKEN"}`, want: 400, check: wantField("update_mask.paths[0]")},
		{name: "patch id in the mask", method: "PATCH", path: "/v1/webhooks/rest-1?updateMask=id", body: `{"id":"rest-1"}`, want: 400, check: wantField("update_mask.paths[0]")},
		{name: "patch output only", method: "PATCH", path: "/v1/webhooks/rest-1", body: `{"createTime":"2000-01-01T00:00:00Z"}`, want: 400, check: wantField("update_mask.paths[0]")},
		{name: "patch empty body", method: "PATCH", path: "/v1/webhooks/rest-1", body: `{}`, want: 400, check: wantField("update_mask")},
		{name: "patch unknown", method: "PATCH", path: "/v1/webhooks/nobody", body: `{"displayName":"x"}`, want: 404},
		{name: "rotate", method: "POST", path: "/v1/webhooks/rest-1:rotateSecret", body: `{"gracePeriod":"3600s"}`, want: 200, check: func(t *testing.T, b []byte) {
			r := decode(t, b, &gatewayv1.RotateWebhookSecretResponse{})
			if r.GetSecret() == "" || r.GetSecret() == created.GetSecret() || !r.GetWebhook().GetPreviousSecretExpireTime().AsTime().Equal(t0.Add(time.Hour)) {
				t.Errorf("rotated %s", b)
			}
		}},
		{name: "rotate importing", method: "POST", path: "/v1/webhooks/rest-1:rotateSecret", body: `{"secret":"` + importedKling + `","gracePeriod":"0s"}`, want: 200, check: func(t *testing.T, b []byte) {
			r := decode(t, b, &gatewayv1.RotateWebhookSecretResponse{})
			if r.GetSecret() != importedKling || r.GetWebhook().GetPreviousSecretExpireTime() != nil {
				t.Errorf("rotated %s", b)
			}
		}},
		{name: "rotate bad grace", method: "POST", path: "/v1/webhooks/rest-1:rotateSecret", body: `{"gracePeriod":"-1s"}`, want: 400, check: wantField("grace_period")},
		{name: "rotate unknown", method: "POST", path: "/v1/webhooks/nobody:rotateSecret", body: `{}`, want: 404},
		{name: "test event on inactive", method: "POST", path: "/v1/webhooks/rest-1:sendTestEvent", body: `{}`, want: 400},
		{name: "activate", method: "PATCH", path: "/v1/webhooks/rest-1", body: `{"active":true}`, want: 200},
		{name: "test event", method: "POST", path: "/v1/webhooks/rest-1:sendTestEvent", body: `{"eventType":"EVENT_TYPE_VIDEO_PROCESSING"}`, want: 200, check: func(t *testing.T, b []byte) {
			ev := decode(t, b, &gatewayv1.SendTestEventResponse{}).GetEvent()
			if !ev.GetTest() || ev.GetType() != processing || ev.GetWebhookId() != "rest-1" {
				t.Errorf("test event %s", b)
			}
		}},
		{name: "test event unknown type", method: "POST", path: "/v1/webhooks/rest-1:sendTestEvent", body: `{"eventType":77}`, want: 400, check: wantField("event_type")},
		{name: "test event unknown webhook", method: "POST", path: "/v1/webhooks/nobody:sendTestEvent", body: `{}`, want: 404},
		{name: "no token", token: "-", method: "GET", path: "/v1/webhooks", want: 401},
		{name: "bad token", token: "wrong-token-0123456789", method: "DELETE", path: "/v1/webhooks/rest-1", want: 401},
		{name: "subscribe token", token: subscribeToken, method: "DELETE", path: "/v1/webhooks/rest-1", want: 403},
		{name: "delete", method: "DELETE", path: "/v1/webhooks/rest-1", want: 200},
		{name: "delete again", method: "DELETE", path: "/v1/webhooks/rest-1", want: 404},
		{name: "get deleted", method: "GET", path: "/v1/webhooks/rest-1", want: 404},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			token := apptest.AdminToken
			switch s.token {
			case "-":
				token = ""
			case "":
			default:
				token = s.token
			}
			code, body := rest(t, e.srv, token, s.method, s.path, s.body)
			if code != s.want {
				t.Fatalf("%s %s: %d %s, want %d", s.method, s.path, code, body, s.want)
			}
			if code != 200 {
				re := decodeError(t, body)
				if want := map[int]codes.Code{400: codes.InvalidArgument, 401: codes.Unauthenticated, 403: codes.PermissionDenied, 404: codes.NotFound, 409: codes.AlreadyExists}[code]; codes.Code(re.Code) != want && !(code == 400 && codes.Code(re.Code) == codes.FailedPrecondition) {
					t.Errorf("error code %d for HTTP %d", re.Code, code)
				}
			}
			if s.check != nil {
				s.check(t, body)
			}
		})
	}
	if code := deliver(t, e.srv, "rest-1", kling, importedKling, e.clock.Now()); code != 401 {
		t.Errorf("delivery after DELETE: %d, want 401", code)
	}
	assertNoSecretInLogs(t, e.logs, []string{created.GetSecret(), importedKling})
}

func wantField(field string) func(*testing.T, []byte) {
	return func(t *testing.T, b []byte) {
		t.Helper()
		var re restError
		if err := json.Unmarshal(b, &re); err != nil || re.field() != field {
			t.Errorf("error %s, want a BadRequest violation on %q", b, field)
		}
	}
}

// The rotation timeline, driven by a controllable clock and checked with
// real deliveries: during the grace period both secrets verify, after it
// only the new one, and a grace of 0s revokes the old one at once.
func TestRotationTimeline(t *testing.T) {
	e := start(t)
	ctx := ctxT(t)
	for _, tt := range []struct {
		name     string
		scheme   gatewayv1.SignatureScheme
		imported string
	}{
		{"standard webhooks", standard, importedStandard},
		{"kling signature", kling, importedKling},
		{"url token", urlToken, importedToken},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id := strings.ReplaceAll(tt.name, " ", "-")
			ok := func(secret string) bool { return deliver(t, e.srv, id, tt.scheme, secret, e.clock.Now()) == 200 }
			if _, err := e.wh.CreateWebhook(ctx, &gatewayv1.CreateWebhookRequest{WebhookId: id, Secret: tt.imported, Webhook: &gatewayv1.Webhook{SignatureScheme: tt.scheme}}); err != nil {
				t.Fatal(err)
			}
			if !ok(tt.imported) {
				t.Fatal("imported secret refused")
			}
			rotatedAt := e.clock.Now()
			rot, err := e.wh.RotateWebhookSecret(ctx, &gatewayv1.RotateWebhookSecretRequest{Id: id, GracePeriod: durationpb.New(time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			second := rot.GetSecret()
			if got := rot.GetWebhook().GetPreviousSecretExpireTime().AsTime(); !got.Equal(rotatedAt.Add(time.Hour)) {
				t.Errorf("previous_secret_expire_time %v, want %v", got, rotatedAt.Add(time.Hour))
			}
			if !ok(tt.imported) || !ok(second) {
				t.Error("during the grace period both secrets must verify")
			}
			e.clock.Advance(59 * time.Minute)
			if !ok(tt.imported) || !ok(second) {
				t.Error("a minute before the end of the grace period both secrets must verify")
			}
			e.clock.Advance(time.Minute)
			if ok(tt.imported) {
				t.Error("the old secret verifies after the grace period")
			}
			if !ok(second) {
				t.Error("the new secret is refused after the grace period")
			}
			if w, _ := e.wh.GetWebhook(ctx, &gatewayv1.GetWebhookRequest{Id: id}); w.GetWebhook().GetPreviousSecretExpireTime() != nil {
				t.Errorf("previous_secret_expire_time after the grace period: %v", w.GetWebhook().GetPreviousSecretExpireTime())
			}

			rot, err = e.wh.RotateWebhookSecret(ctx, &gatewayv1.RotateWebhookSecretRequest{Id: id, GracePeriod: durationpb.New(0)})
			if err != nil {
				t.Fatal(err)
			}
			if ok(second) {
				t.Error("grace 0s: the previous secret still verifies")
			}
			if !ok(rot.GetSecret()) {
				t.Error("grace 0s: the new secret is refused")
			}
			if rot.GetWebhook().GetPreviousSecretExpireTime() != nil {
				t.Errorf("grace 0s: previous_secret_expire_time %v", rot.GetWebhook().GetPreviousSecretExpireTime())
			}
		})
	}
}

// SendTestEvent runs through the real ingest path in each scheme's wire
// format and reaches a live subscriber.
func TestSendTestEventReachesSubscriber(t *testing.T) {
	e := start(t)
	ctx := ctxT(t)
	for _, c := range []struct {
		id     string
		scheme gatewayv1.SignatureScheme
		types  []gatewayv1.EventType
		active bool
	}{
		{"k", kling, nil, true},
		{"s", standard, nil, true},
		{"u", urlToken, nil, true},
		{"completed-only", kling, []gatewayv1.EventType{completed}, true},
		{"off", standard, nil, false},
	} {
		if _, err := e.wh.CreateWebhook(ctx, &gatewayv1.CreateWebhookRequest{WebhookId: c.id, Webhook: &gatewayv1.Webhook{
			SignatureScheme: c.scheme, EventTypes: c.types, Active: proto.Bool(c.active),
		}}); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := gatewayv1.NewEventServiceClient(e.srv.Dial(t, grpc.WithPerRPCCredentials(apptest.BearerCreds(subscribeToken)))).
		Subscribe(ctx, &gatewayv1.SubscribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Header(); err != nil {
		t.Fatalf("waiting for the subscription to be live: %v", err)
	}

	for _, tt := range []struct {
		name   string
		id     string
		typ    gatewayv1.EventType
		want   gatewayv1.EventType
		format gatewayv1.SourceFormat
	}{
		{"kling signature, default type", "k", 0, completed, gatewayv1.SourceFormat_SOURCE_FORMAT_KLING_EVENT},
		{"standard webhooks", "s", failed, failed, gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_V2},
		{"url token", "u", processing, processing, gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_V2},
		{"cancelled", "k", gatewayv1.EventType_EVENT_TYPE_VIDEO_CANCELLED, gatewayv1.EventType_EVENT_TYPE_VIDEO_CANCELLED, gatewayv1.SourceFormat_SOURCE_FORMAT_KLING_EVENT},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := e.wh.SendTestEvent(ctx, &gatewayv1.SendTestEventRequest{Id: tt.id, EventType: tt.typ})
			if err != nil {
				t.Fatal(err)
			}
			sent := resp.GetEvent()
			if !sent.GetTest() || sent.GetType() != tt.want || sent.GetSourceFormat() != tt.format || sent.GetWebhookId() != tt.id {
				t.Errorf("returned %v", sent)
			}
			got, err := sub.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if ev := got.GetEvent(); ev.GetId() != sent.GetId() || ev.GetSequence() != sent.GetSequence() || !ev.GetTest() || ev.GetType() != tt.want {
				t.Errorf("subscriber saw %v, want the test event %v", ev, sent)
			}
		})
	}

	for _, tt := range []struct {
		name string
		req  *gatewayv1.SendTestEventRequest
		want codes.Code
	}{
		{"inactive", &gatewayv1.SendTestEventRequest{Id: "off"}, codes.FailedPrecondition},
		{"type filtered out", &gatewayv1.SendTestEventRequest{Id: "completed-only", EventType: failed}, codes.FailedPrecondition},
		{"unknown type", &gatewayv1.SendTestEventRequest{Id: "k", EventType: 99}, codes.InvalidArgument},
		{"unknown webhook", &gatewayv1.SendTestEventRequest{Id: "nobody"}, codes.NotFound},
		{"no id", &gatewayv1.SendTestEventRequest{}, codes.InvalidArgument},
	} {
		if _, err := e.wh.SendTestEvent(ctx, tt.req); status.Code(err) != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
}

// Two app instances on one store: a rotation made through one is honoured
// by the other, because both watch the registrations bucket.
func TestRotationSeenByAnotherInstance(t *testing.T) {
	port := freePort(t)
	a := start(t, apptest.WithConfig(func(c *config.Config) { c.NATSListen = "127.0.0.1:" + port }))
	// The second instance presents the token the first generated for
	// clients of its embedded NATS server.
	tok, err := os.ReadFile(filepath.Join(a.srv.Config.DataDir, store.NATSTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	b := start(t, apptest.WithConfig(func(c *config.Config) {
		c.NATSURL = "nats://127.0.0.1:" + port
		c.NATSToken = strings.TrimSpace(string(tok))
		c.Replicas = 1
	}))
	ctx := ctxT(t)
	created, err := a.wh.CreateWebhook(ctx, &gatewayv1.CreateWebhookRequest{WebhookId: "shared", Webhook: &gatewayv1.Webhook{SignatureScheme: standard}})
	if err != nil {
		t.Fatal(err)
	}
	old := created.GetSecret()
	onB := func(secret string) int { return deliver(t, b.srv, "shared", standard, secret, b.clock.Now()) }
	apptest.Eventually(t, 5*time.Second, "B to accept the webhook created on A", func() bool { return onB(old) == 200 })

	rot, err := a.wh.RotateWebhookSecret(ctx, &gatewayv1.RotateWebhookSecretRequest{Id: "shared", GracePeriod: durationpb.New(0)})
	if err != nil {
		t.Fatal(err)
	}
	apptest.Eventually(t, 5*time.Second, "B to accept the secret rotated on A", func() bool { return onB(rot.GetSecret()) == 200 })
	if code := onB(old); code != 401 {
		t.Errorf("B accepts the revoked secret: %d", code)
	}
	if w, err := b.wh.GetWebhook(ctx, &gatewayv1.GetWebhookRequest{Id: "shared"}); err != nil || !w.GetWebhook().GetUpdateTime().IsValid() {
		t.Errorf("B's view: %v %v", w, err)
	}

	// And the other way round: a delete on B is a 401 on A.
	if _, err := b.wh.DeleteWebhook(ctx, &gatewayv1.DeleteWebhookRequest{Id: "shared"}); err != nil {
		t.Fatal(err)
	}
	apptest.Eventually(t, 5*time.Second, "A to forget the webhook deleted on B", func() bool {
		return deliver(t, a.srv, "shared", standard, rot.GetSecret(), a.clock.Now()) == 401
	})
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// Issue 5, "Done when": with a token, curl creates a STANDARD_WEBHOOKS
// registration importing a given secret, a delivery signed with it is
// accepted on the returned ingest URL, a rotation keeps both secrets valid
// during the grace period, and a delete makes the URL answer 401; without a
// token every management and event call is refused; no secret is logged.
func TestDoneWhen(t *testing.T) {
	e := start(t)
	ctx := ctxT(t)
	post := func(ingestURL, secret string) (int, string) {
		_, h, body := delivery(t, "kling-prod", standard, secret, e.clock.Now())
		req, _ := http.NewRequest(http.MethodPost, ingestURL, bytes.NewReader(body))
		req.Header = h
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(out))
	}

	// curl -H "Authorization: Bearer $TOKEN" -d '{...}' $HOST/v1/webhooks
	code, out := e.admin(t, "POST", "/v1/webhooks", `{"webhookId":"kling-prod","secret":"`+importedStandard+`","webhook":{"displayName":"Kling production","signatureScheme":"SIGNATURE_SCHEME_STANDARD_WEBHOOKS"}}`)
	if code != 200 {
		t.Fatalf("create: %d %s", code, out)
	}
	created := decode(t, out, &gatewayv1.CreateWebhookResponse{})
	ingestURL := created.GetWebhook().GetIngestUrl()
	if created.GetSecret() != importedStandard || created.GetCallbackUrl() != ingestURL || ingestURL != e.srv.HTTPURL+"/webhooks/kling/kling-prod" {
		t.Fatalf("created: %s", out)
	}
	if code, body := post(ingestURL, importedStandard); code != 200 || body != `{"received":true}` {
		t.Fatalf("delivery signed with the imported secret: %d %s", code, body)
	}

	code, out = e.admin(t, "POST", "/v1/webhooks/kling-prod:rotateSecret", `{}`)
	if code != 200 {
		t.Fatalf("rotate: %d %s", code, out)
	}
	rotated := decode(t, out, &gatewayv1.RotateWebhookSecretResponse{})
	if !rotated.GetWebhook().GetPreviousSecretExpireTime().AsTime().Equal(e.clock.Now().Add(24 * time.Hour)) {
		t.Errorf("default grace period is not 24h: %s", out)
	}
	e.clock.Advance(23 * time.Hour)
	for _, s := range []string{importedStandard, rotated.GetSecret()} {
		if code, body := post(ingestURL, s); code != 200 {
			t.Errorf("during the grace period: %d %s", code, body)
		}
	}

	if code, out := e.admin(t, "DELETE", "/v1/webhooks/kling-prod", ""); code != 200 {
		t.Fatalf("delete: %d %s", code, out)
	}
	if code, body := post(ingestURL, rotated.GetSecret()); code != 401 {
		t.Errorf("after delete the ingest URL answers %d %s, want 401", code, body)
	}

	// Without a token every management and event call is refused, on REST...
	for _, r := range []struct{ method, path, body string }{
		{"POST", "/v1/webhooks", `{"webhook":{"signatureScheme":"SIGNATURE_SCHEME_URL_TOKEN"}}`},
		{"GET", "/v1/webhooks", ""},
		{"GET", "/v1/webhooks/kling-prod", ""},
		{"PATCH", "/v1/webhooks/kling-prod", `{"displayName":"x"}`},
		{"DELETE", "/v1/webhooks/kling-prod", ""},
		{"POST", "/v1/webhooks/kling-prod:rotateSecret", `{}`},
		{"POST", "/v1/webhooks/kling-prod:sendTestEvent", `{}`},
		{"GET", "/v1/events", ""},
		{"GET", "/v1/events/1", ""},
		{"GET", "/v1/events:subscribe", ""},
	} {
		if code, body := rest(t, e.srv, "", r.method, r.path, r.body); code != 401 || codes.Code(decodeError(t, body).Code) != codes.Unauthenticated {
			t.Errorf("%s %s without a token: %d %s, want 401", r.method, r.path, code, body)
		}
	}
	// ...and on gRPC, for every method of both services.
	conn := e.srv.Dial(t)
	for _, sd := range []grpc.ServiceDesc{gatewayv1.WebhookService_ServiceDesc, gatewayv1.EventService_ServiceDesc} {
		for _, m := range sd.Methods {
			err := conn.Invoke(ctx, "/"+sd.ServiceName+"/"+m.MethodName, &emptypb.Empty{}, &emptypb.Empty{})
			if status.Code(err) != codes.Unauthenticated {
				t.Errorf("%s/%s without a token: %v", sd.ServiceName, m.MethodName, err)
			}
		}
		for _, s := range sd.Streams {
			st, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/"+sd.ServiceName+"/"+s.StreamName)
			if err == nil {
				_ = st.SendMsg(&emptypb.Empty{})
				_ = st.CloseSend()
				err = st.RecvMsg(&emptypb.Empty{})
			}
			if status.Code(err) != codes.Unauthenticated {
				t.Errorf("%s/%s without a token: %v", sd.ServiceName, s.StreamName, err)
			}
		}
	}

	assertNoSecretInLogs(t, e.logs, []string{importedStandard, rotated.GetSecret()})
}

func assertNoSecret(t *testing.T, w *gatewayv1.Webhook, secrets []string) {
	t.Helper()
	text := prototext.Format(w)
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("webhook %s carries a secret", w.GetId())
		}
	}
}

func assertNoSecretInLogs(t *testing.T, logs *apptest.SyncBuffer, secrets []string) {
	t.Helper()
	all := logs.String()
	if !strings.Contains(all, "webhook created") {
		t.Errorf("management calls are not logged:\n%s", all)
	}
	for _, s := range secrets {
		// The secret, and for whsec_ secrets the base64 key alone.
		for _, form := range []string{s, strings.TrimPrefix(s, "whsec_")} {
			if form != "" && strings.Contains(all, form) {
				t.Errorf("a secret reached the log:\n%s", all)
			}
		}
	}
}

func mustSample(t *testing.T, format gatewayv1.SourceFormat) []byte {
	t.Helper()
	b, err := normalize.Sample(format, completed, "sample-"+strconv.FormatInt(jobN.Add(1), 10), t0)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tamper flips one character of a page token.
func tamper(tok string) string {
	b := []byte(tok)
	i := len(b) / 2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}
