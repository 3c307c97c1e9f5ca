package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/ingest"
	"github.com/klingfan/klingfan/internal/normalize"
	"github.com/klingfan/klingfan/internal/registry"
	"github.com/klingfan/klingfan/internal/store"
	"github.com/klingfan/klingfan/internal/verify"
)

// Kling's published Standard Webhooks example.
const (
	exampleSecret    = "whsec_dGVzdHNlY3JldHRlc3RzZWNyZXR0ZXN0c2VjcmV0MTI="
	exampleID        = "9876543210"
	exampleTimestamp = "1781080794"
	exampleSignature = "v1,UsKlJP00XoQyOn410NM9xv34sP+Gl0jnOO9Lcpr7NJ4="
)

const (
	klingSecret = "kling-secret-for-tests"
	urlToken    = "url-token-0123456789abcdefghijklmnopqrstuv"
)

// rig is a real ingest handler on a real HTTP server over a real embedded
// JetStream log.
type rig struct {
	t     *testing.T
	store *store.Store
	reg   *registry.Registry
	srv   *httptest.Server
	now   time.Time
}

func newRig(t *testing.T, adjust ...func(*ingest.Config)) *rig {
	t.Helper()
	return newRigWithStore(t, store.Config{}, adjust...)
}

// newRigWithStore is newRig over a log configured by sc.
func newRigWithStore(t *testing.T, sc store.Config, adjust ...func(*ingest.Config)) *rig {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sc.DataDir, sc.Logger = t.TempDir(), log
	st, err := store.Open(ctx, sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	reg, err := registry.Open(ctx, registry.Config{KV: st.KV(), Logger: log, Schemes: verify.SchemeTable{}})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, store: st, reg: reg, now: time.Unix(1781080794, 0)}
	create := func(w registry.Webhook) {
		w.Active = w.ID != "inactive"
		w.CreateTime, w.UpdateTime = r.now, r.now
		if w.Tolerance == 0 {
			w.Tolerance = registry.DefaultTolerance
		}
		if _, err := reg.Create(ctx, &w); err != nil {
			t.Fatal(err)
		}
	}
	kling := gatewayv1.SignatureScheme_SIGNATURE_SCHEME_KLING_SIGNATURE
	create(registry.Webhook{ID: registry.DefaultID, Scheme: kling, Secrets: []registry.Secret{{Value: klingSecret}}})
	create(registry.Webhook{ID: "std", Scheme: gatewayv1.SignatureScheme_SIGNATURE_SCHEME_STANDARD_WEBHOOKS, Secrets: []registry.Secret{{Value: exampleSecret}}})
	create(registry.Webhook{ID: "tok", Scheme: gatewayv1.SignatureScheme_SIGNATURE_SCHEME_URL_TOKEN, Secrets: []registry.Secret{{Value: urlToken}}})
	create(registry.Webhook{ID: "inactive", Scheme: kling, Secrets: []registry.Secret{{Value: klingSecret}}})
	create(registry.Webhook{ID: "completed-only", Scheme: kling, Secrets: []registry.Secret{{Value: klingSecret}},
		EventTypes: []gatewayv1.EventType{gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED}})

	cfg := ingest.Config{
		Logger: log, Registrations: reg, Events: st, MaxBodyBytes: 4096,
		Now: func() time.Time { return r.now },
	}
	for _, fn := range adjust {
		fn(&cfg)
	}
	h := ingest.New(cfg)
	mux := http.NewServeMux()
	h.Routes(mux)
	r.srv = httptest.NewServer(mux)
	t.Cleanup(r.srv.Close)
	return r
}

func (r *rig) last() uint64 {
	r.t.Helper()
	_, last, err := r.store.Bounds(context.Background())
	if err != nil {
		r.t.Fatal(err)
	}
	return last
}

func (r *rig) do(method, path string, header http.Header, body []byte) (int, map[string]any) {
	r.t.Helper()
	req, err := http.NewRequest(method, r.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	req.Header = header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	resp, err := r.srv.Client().Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		r.t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		r.t.Fatalf("response is not JSON: %v", err)
	}
	return resp.StatusCode, out
}

func golden(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonHeader(kv ...string) http.Header {
	h := http.Header{"Content-Type": {"application/json"}}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func klingSigned(body []byte) http.Header {
	return jsonHeader(verify.HeaderKlingSignature, verify.SignKling([]byte(klingSecret), body))
}

func standardSigned(body []byte, id string, ts time.Time) http.Header {
	key, _ := verify.DecodeStandardSecret(exampleSecret)
	return jsonHeader(verify.HeaderWebhookID, id, verify.HeaderWebhookTimestamp, strconv.FormatInt(ts.Unix(), 10),
		verify.HeaderWebhookSignature, verify.SignStandard(key, id, ts, body))
}

func TestIngest(t *testing.T) {
	r := newRig(t)
	example := golden(t, "standard_webhooks_example.json")
	flipped := bytes.Clone(example)
	flipped[10] ^= 1
	exampleHeader := jsonHeader(verify.HeaderWebhookID, exampleID, verify.HeaderWebhookTimestamp, exampleTimestamp, verify.HeaderWebhookSignature, exampleSignature)
	completed := golden(t, "kling_event_completed.json")
	legacy := golden(t, "legacy_succeed.json")
	v2 := golden(t, "v2_succeeded_video.json")
	processing := []byte(`{"event":"video.processing","timestamp":"2026-06-10T08:00:00Z","data":{"job_id":"j-9","status":"processing","progress":10}}`)
	unreadable := []byte(`{"task_id":"partial-1","task_status":"succeed","task_result":{"videos":[{"id":"v","url":"https://cdn/v.mp4","duration":"five"}]}}`)

	cases := []struct {
		name     string
		method   string
		path     string
		header   http.Header
		body     []byte
		status   int
		want     map[string]any // subset of the JSON answer
		appended int            // how many events the log gains
	}{
		{name: "kling signature, signed event format", path: "/webhooks/klingai", header: klingSigned(completed), body: completed,
			status: 200, want: map[string]any{"received": true}, appended: 1},
		{name: "kling signature, legacy callback", path: "/webhooks/kling/default", header: klingSigned(legacy), body: legacy,
			status: 200, want: map[string]any{"received": true}, appended: 1},
		{name: "kling signature, v2 callback", path: "/webhooks/klingai", header: klingSigned(v2), body: v2,
			status: 200, want: map[string]any{"received": true}, appended: 1},
		{name: "duplicate identical body is acknowledged, not logged", path: "/webhooks/klingai", header: klingSigned(v2), body: v2,
			status: 200, want: map[string]any{"received": true}},
		{name: "kling signature wrong", path: "/webhooks/klingai", header: jsonHeader(verify.HeaderKlingSignature, verify.SignKling([]byte("nope"), completed)), body: completed,
			status: 401, want: map[string]any{"error": "invalid signature"}},
		{name: "kling signature missing", path: "/webhooks/klingai", header: jsonHeader(), body: completed,
			status: 401, want: map[string]any{"error": "missing signature"}},
		{name: "body signature field is not the authority", path: "/webhooks/klingai", header: jsonHeader(),
			body: []byte(`{"event":"video.completed","signature":"sha256=00","data":{"job_id":"x"}}`), status: 401},
		{name: "standard webhooks published example", path: "/webhooks/kling/std", header: exampleHeader, body: example,
			status: 200, want: map[string]any{"received": true}, appended: 1},
		{name: "standard webhooks same webhook-id again", path: "/webhooks/kling/std", header: exampleHeader, body: example,
			status: 200, want: map[string]any{"received": true}},
		{name: "standard webhooks one byte flipped", path: "/webhooks/kling/std", header: exampleHeader, body: flipped,
			status: 401, want: map[string]any{"error": "invalid signature"}},
		{name: "standard webhooks stale", path: "/webhooks/kling/std", header: standardSigned(v2, "msg-stale", r.now.Add(-10*time.Minute)), body: v2,
			status: 401, want: map[string]any{"error": "timestamp outside tolerance"}},
		{name: "standard webhooks from the future", path: "/webhooks/kling/std", header: standardSigned(v2, "msg-future", r.now.Add(10*time.Minute)), body: v2,
			status: 401},
		{name: "standard webhooks legacy body", path: "/webhooks/kling/std", header: standardSigned(legacy, "msg-legacy", r.now), body: legacy,
			status: 200, appended: 1},
		{name: "url token", path: "/webhooks/kling/tok?token=" + urlToken, header: jsonHeader(), body: legacy,
			status: 200, want: map[string]any{"received": true}, appended: 1},
		{name: "url token wrong", path: "/webhooks/kling/tok?token=" + urlToken[:len(urlToken)-1] + "x", header: jsonHeader(), body: v2,
			status: 401, want: map[string]any{"error": "invalid signature"}},
		{name: "url token missing", path: "/webhooks/kling/tok", header: jsonHeader(), body: v2, status: 401},
		{name: "unknown registration", path: "/webhooks/kling/nobody", header: klingSigned(completed), body: completed,
			status: 401, want: map[string]any{"error": "invalid signature"}},
		{name: "inactive registration", path: "/webhooks/kling/inactive", header: klingSigned(completed), body: completed,
			status: 403, want: map[string]any{"error": "webhook is inactive"}},
		{name: "inactive registration, wrong signature, answered like an unknown id", path: "/webhooks/kling/inactive",
			header: http.Header{"Content-Type": {"application/json"}, verify.HeaderKlingSignature: {"sha256=00"}}, body: completed,
			status: 401, want: map[string]any{"error": "invalid signature"}},
		{name: "inactive registration, no signature, answered like an unknown id", path: "/webhooks/kling/inactive", header: jsonHeader(), body: completed,
			status: 401, want: map[string]any{"error": "missing signature"}},
		{name: "unknown registration, no signature, answered like a registered one", path: "/webhooks/kling/nobody", header: jsonHeader(), body: completed,
			status: 401, want: map[string]any{"error": "missing signature"}},
		{name: "unknown registration, content type not JSON, answered like a registered one", path: "/webhooks/kling/nobody",
			header: http.Header{"Content-Type": {"text/plain"}}, body: completed, status: 415},
		{name: "unknown registration, body too large, answered like a registered one", path: "/webhooks/kling/nobody",
			header: jsonHeader(), body: bytes.Repeat([]byte(" "), 5000), status: 413},
		{name: "standard webhooks stale and wrongly signed, answered like any bad signature", path: "/webhooks/kling/std",
			header: jsonHeader(verify.HeaderWebhookID, "msg-stale-forged", verify.HeaderWebhookTimestamp, strconv.FormatInt(r.now.Add(-10*time.Minute).Unix(), 10),
				verify.HeaderWebhookSignature, verify.SignStandard([]byte("not-the-key-0123456789"), "msg-stale-forged", r.now.Add(-10*time.Minute), v2)), body: v2,
			status: 401, want: map[string]any{"error": "invalid signature"}},
		{name: "event type outside the filter", path: "/webhooks/kling/completed-only", header: klingSigned(processing), body: processing,
			status: 200, want: map[string]any{"received": true, "ignored": true}},
		{name: "event type inside the filter", path: "/webhooks/kling/completed-only", header: klingSigned(completed), body: completed,
			status: 200, appended: 1},
		{name: "body too large", path: "/webhooks/klingai", header: klingSigned(bytes.Repeat([]byte(" "), 5000)), body: bytes.Repeat([]byte(" "), 5000), status: 413},
		{name: "not JSON content type", path: "/webhooks/klingai", header: http.Header{"Content-Type": {"text/plain"}}, body: completed, status: 415},
		{name: "malformed JSON", path: "/webhooks/klingai", header: klingSigned([]byte(`{"event":`)), body: []byte(`{"event":`), status: 400},
		{name: "unknown shape", path: "/webhooks/klingai", header: klingSigned([]byte(`{"hello":"world"}`)), body: []byte(`{"hello":"world"}`), status: 400},
		{name: "known shape with an unreadable field is kept", path: "/webhooks/klingai", header: klingSigned(unreadable), body: unreadable,
			status: 200, want: map[string]any{"received": true}, appended: 1},
		{name: "identifying field of the wrong kind", path: "/webhooks/klingai", header: klingSigned([]byte(`{"task_id":"x","task_status":5}`)), body: []byte(`{"task_id":"x","task_status":5}`), status: 400},
		{name: "GET is not allowed", method: http.MethodGet, path: "/webhooks/klingai", status: 405},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := r.last()
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			status, got := r.do(method, tc.path, tc.header, tc.body)
			if status != tc.status {
				t.Fatalf("status = %d, want %d (body %v)", status, tc.status, got)
			}
			if status >= 400 {
				if msg, ok := got["error"].(string); !ok || msg == "" {
					t.Errorf("error body = %v, want {\"error\": ...}", got)
				}
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %v, want %v (body %v)", k, got[k], v, got)
				}
			}
			if after := r.last(); after-before != uint64(tc.appended) {
				t.Errorf("log grew by %d events, want %d", after-before, tc.appended)
			}
		})
	}
}

func TestIngestStoredEvent(t *testing.T) {
	r := newRig(t)
	body := golden(t, "legacy_succeed.json")
	if status, got := r.do(http.MethodPost, "/webhooks/klingai", klingSigned(body), body); status != 200 {
		t.Fatalf("status %d: %v", status, got)
	}
	ev, err := r.store.Get(context.Background(), r.last())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ev.GetRawBody(), body) {
		t.Error("raw body not kept byte for byte")
	}
	if ev.GetWebhookId() != "default" || ev.GetSourceFormat() != gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_LEGACY ||
		ev.GetType() != gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED || !strings.HasPrefix(ev.GetId(), "evt_") ||
		!strings.HasPrefix(ev.GetDeliveryId(), "sha256:") || !ev.GetReceivedAt().AsTime().Equal(r.now) {
		t.Errorf("stored event = %v", ev)
	}
	if ev.GetId() != ingest.EventID("default", ev.GetDeliveryId()) {
		t.Errorf("event id %q is not derived from the delivery", ev.GetId())
	}
}

func TestIngestLogUnavailable(t *testing.T) {
	r := newRig(t)
	body := golden(t, "kling_event_completed.json")
	if err := r.store.Close(); err != nil {
		t.Fatal(err)
	}
	status, got := r.do(http.MethodPost, "/webhooks/klingai", klingSigned(body), body)
	if status != http.StatusServiceUnavailable {
		t.Fatalf("status = %d, want 503 (%v)", status, got)
	}
}

func TestIngestChunkedBodyTooLarge(t *testing.T) {
	r := newRig(t)
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write(bytes.Repeat([]byte("a"), 10000))
		pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPost, r.srv.URL+"/webhooks/klingai", pr)
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status = %d, want 413", resp.StatusCode)
	}
}

// Each registration has its own bucket: a flood on one is answered 429 with
// Retry-After and logs nothing, while another registration is unaffected.
func TestIngestRateLimit(t *testing.T) {
	r := newRig(t, func(c *ingest.Config) { c.RateLimit = 1; c.RateBurst = 2 })
	post := func(path string, i int, header func([]byte) http.Header) (int, http.Header) {
		body := []byte(`{"event":"video.created","data":{"job_id":"rl-` + strconv.Itoa(i) + `"}}`)
		req, _ := http.NewRequest(http.MethodPost, r.srv.URL+path, bytes.NewReader(body))
		req.Header = header(body)
		resp, err := r.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header
	}
	for i := range 2 {
		if status, _ := post("/webhooks/klingai", i, klingSigned); status != 200 {
			t.Fatalf("delivery %d within the burst: status %d", i, status)
		}
	}
	before := r.last()
	status, header := post("/webhooks/klingai", 2, klingSigned)
	if status != http.StatusTooManyRequests || header.Get("Retry-After") == "" {
		t.Fatalf("over the limit: status %d, Retry-After %q; want 429 with Retry-After", status, header.Get("Retry-After"))
	}
	if r.last() != before {
		t.Error("a rate-limited delivery was logged")
	}
	if status, _ := post("/webhooks/kling/tok?token="+urlToken, 3, func([]byte) http.Header { return jsonHeader() }); status != 200 {
		t.Errorf("another registration: status %d, want 200", status)
	}
}

// A verified delivery of a known shape whose non-identifying field cannot
// be read is stored with its raw body intact and everything else read: the
// unreadable value is left unset and kept on its output.
func TestIngestKeepsPartiallyReadableDelivery(t *testing.T) {
	r := newRig(t)
	body := []byte(`{"task_id":"partial-1","task_status":"succeed","task_result":{"videos":[{"duration":"five"}]}}`)
	if status, got := r.do(http.MethodPost, "/webhooks/klingai", klingSigned(body), body); status != 200 {
		t.Fatalf("status %d: %v", status, got)
	}
	ev, err := r.store.Get(context.Background(), r.last())
	if err != nil {
		t.Fatal(err)
	}
	if ev.GetJob().GetJobId() != "partial-1" || ev.GetType() != gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED ||
		ev.GetSourceFormat() != gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_LEGACY || !bytes.Equal(ev.GetRawBody(), body) ||
		len(ev.GetJob().GetVideos()) != 1 || ev.GetJob().GetVideos()[0].GetUnmappedJson() != `{"duration":"five"}` {
		t.Errorf("stored %v", ev)
	}
}

// A callback with an output klingfan does not know, or a known output with
// members it does not know, is stored (200) with every known field
// normalized, the header intact, and the unknown part kept on the output
// it belongs to (unmapped_json) or whole (unmapped_outputs).
func TestIngestKeepsUnknownParts(t *testing.T) {
	r := newRig(t)
	cases := []struct {
		name  string
		body  string
		check func(*gatewayv1.Job) bool
	}{
		{
			name: "unknown output type",
			body: `{"id":"u-1","status":"succeeded","external_id":"ext-u1","create_time":1781080778802,"update_time":1781080794151,` +
				`"outputs":[{"type":"hologram","id":"h-1","url":"https://x/h.glb"},{"type":"video","id":"v-1","url":"https://x/v.mp4","duration":"5.1"}],` +
				`"billing":[{"charge_type":"unit","amount":"5","package_type":"video"}]}`,
			check: func(j *gatewayv1.Job) bool {
				u := j.GetUnmappedOutputs()
				return j.GetExternalId() == "ext-u1" && j.GetCreatedAt().AsTime().UnixMilli() == 1781080778802 &&
					len(j.GetBilling()) == 1 && j.GetBilling()[0].GetAmount() == "5" &&
					len(j.GetVideos()) == 1 && j.GetVideos()[0].GetDuration().AsDuration() == 5100*time.Millisecond &&
					len(u) == 1 && u[0].GetPath() == "outputs[0]" && u[0].GetType() == "hologram" &&
					u[0].GetJson() == `{"type":"hologram","id":"h-1","url":"https://x/h.glb"}`
			},
		},
		{
			name: "element tag objects with unknown members",
			body: `{"id":"u-2","status":"succeeded","external_id":"ext-u2","create_time":1781080778802,"update_time":1781080794151,` +
				`"outputs":[{"type":"element","id":"e-1","name":"Cat","tags":[{"id":3,"name":"动物","description":"animal","weight":0.7}],"pose":"sitting"}],` +
				`"billing":[{"charge_type":"cash","cash_type":"balance","amount":"0.035","currency":"USD","list_price":"0.05"}]}`,
			check: func(j *gatewayv1.Job) bool {
				e := j.GetElements()
				return j.GetExternalId() == "ext-u2" && len(j.GetBilling()) == 1 && j.GetBilling()[0].GetCurrency() == "USD" &&
					len(e) == 1 && e[0].GetName() == "Cat" && len(e[0].GetTagDetails()) == 1 &&
					e[0].GetTagDetails()[0].GetName() == "动物" && e[0].GetTagDetails()[0].GetUnmappedJson() == `{"weight":0.7}` &&
					e[0].GetUnmappedJson() == `{"pose":"sitting"}`
			},
		},
		{
			name: "legacy audio with an unreadable and an unknown member",
			body: `{"task_id":"u-3","task_status":"succeed","task_info":{"external_task_id":"ext-u3"},"created_at":1781080778802,"updated_at":1781080794151,` +
				`"final_unit_deduction":"0.1","task_result":{"audios":[{"id":"a-1","url":"https://x/a.mp3","duration":"long","bitrate":128}]}}`,
			check: func(j *gatewayv1.Job) bool {
				a := j.GetAudios()
				return j.GetExternalId() == "ext-u3" && j.GetUnitsDeducted() == "0.1" && j.GetKind() == gatewayv1.JobKind_JOB_KIND_AUDIO &&
					len(a) == 1 && a[0].GetUrl() == "https://x/a.mp3" && a[0].GetDuration() == nil &&
					a[0].GetUnmappedJson() == `{"duration":"long","bitrate":128}`
			},
		},
		{
			// A protobuf string cannot hold invalid UTF-8: the kept
			// member must still be storable.
			name: "unknown member with invalid UTF-8",
			body: `{"id":"u-4","status":"succeeded","external_id":"ext-u4","create_time":1781080778802,"update_time":1781080794151,` +
				`"outputs":[{"type":"video","id":"v-4","note":"caf` + "\xe9" + `"}]}`,
			check: func(j *gatewayv1.Job) bool {
				v := j.GetVideos()
				return j.GetExternalId() == "ext-u4" && len(v) == 1 && v[0].GetId() == "v-4" &&
					v[0].GetUnmappedJson() == `{"note":"caf`+"\uFFFD"+`"}`
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte(tc.body)
			if status, got := r.do(http.MethodPost, "/webhooks/kling/tok?token="+urlToken, jsonHeader(), body); status != 200 {
				t.Fatalf("status %d: %v", status, got)
			}
			ev, err := r.store.Get(context.Background(), r.last())
			if err != nil {
				t.Fatal(err)
			}
			if ev.GetType() != gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED || !bytes.Equal(ev.GetRawBody(), body) ||
				ev.GetOccurredAt().AsTime().UnixMilli() != 1781080794151 {
				t.Errorf("stored event = %v", ev)
			}
			if !tc.check(ev.GetJob()) {
				t.Errorf("stored job = %v", ev.GetJob())
			}
		})
	}
}

// Every callback of Kling's contract corpus (testdata/kling/callbacks, from
// Kling's own pages) is stored with 200, and the stored job is exactly what
// the normalizer makes of it: nothing between the handler and the log
// drops or alters a field.
func TestIngestCallbackCorpus(t *testing.T) {
	r := newRig(t)
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "kling", "callbacks", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("corpus: %v (%d files)", err, len(files))
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			body, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			want, err := normalize.Normalize(body)
			if err != nil {
				t.Fatal(err)
			}
			if status, got := r.do(http.MethodPost, "/webhooks/kling/tok?token="+urlToken, jsonHeader(), body); status != 200 {
				t.Fatalf("status %d: %v", status, got)
			}
			ev, err := r.store.Get(context.Background(), r.last())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ev.GetRawBody(), body) || ev.GetType() != want.Event.GetType() || !proto.Equal(ev.GetJob(), want.Event.GetJob()) {
				t.Errorf("stored %v\nwant job %v", ev, want.Event.GetJob())
			}
		})
	}
}

// A captured delivery replayed after the duplicate window is acknowledged
// and not logged again, and replays, however
// many, take nothing from the registration's rate limit.
func TestIngestReplay(t *testing.T) {
	const window = 200 * time.Millisecond
	r := newRigWithStore(t, store.Config{DuplicateWindow: window}, func(c *ingest.Config) { c.RateLimit = 0.001; c.RateBurst = 2 })
	post := func(body []byte) (int, map[string]any) {
		return r.do(http.MethodPost, "/webhooks/klingai", klingSigned(body), body)
	}
	captured := []byte(`{"event":"video.completed","data":{"job_id":"replayed"}}`)
	status, first := post(captured)
	if status != 200 {
		t.Fatalf("first delivery: status %d %v", status, first)
	}
	last := r.last()
	// Wait out JetStream's duplicate window: only the event's own subject
	// can recognize the replay now.
	time.Sleep(2 * window)
	for i := range 10 {
		status, out := post(captured)
		if status != 200 {
			t.Fatalf("replay %d: status %d %v, want 200", i, status, out)
		}
	}
	if r.last() != last {
		t.Fatalf("a replay was logged again: last sequence %d -> %d", last, r.last())
	}
	// The bucket (2 deliveries) still has room for a genuine one.
	if status, out := post([]byte(`{"event":"video.completed","data":{"job_id":"genuine"}}`)); status != 200 {
		t.Fatalf("a genuine delivery after 10 replays: status %d %v", status, out)
	}
	// The bucket is empty now: a replay is still recognized, not refused.
	if status, out := post(captured); status != 200 {
		t.Fatalf("a replay with the bucket empty: status %d %v, want 200", status, out)
	}
	if status, _ := post([]byte(`{"event":"video.completed","data":{"job_id":"third"}}`)); status != http.StatusTooManyRequests {
		t.Fatalf("a new delivery with the bucket empty: status %d, want 429", status)
	}
}

// A verified body within the size limit whose normalized form is larger
// than the log's largest message (invalid UTF-8 in the prompt becomes
// three-byte U+FFFD) is stored with what identifies it and its raw body,
// never answered 503 for Kling to retry forever.
func TestIngestBodyTooLargeOnceNormalized(t *testing.T) {
	r := newRig(t, func(c *ingest.Config) { c.MaxBodyBytes = 8 << 20 })
	body := append([]byte(`{"event":"video.failed","data":{"job_id":"expands","prompt":"`), bytes.Repeat([]byte{0xff}, 3<<20)...)
	body = append(body, []byte(`"}}`)...)
	status, out := r.do(http.MethodPost, "/webhooks/klingai", klingSigned(body), body)
	if status != 200 {
		t.Fatalf("status %d %v, want 200 (stored partially)", status, out)
	}
	ev, err := r.store.Get(context.Background(), r.last())
	if err != nil {
		t.Fatal(err)
	}
	if ev.GetJob().GetJobId() != "expands" || !bytes.Equal(ev.GetRawBody(), body) || ev.GetJob().GetPrompt() != "" {
		t.Errorf("stored job %q, raw body %d bytes, prompt %d bytes; want the job id, the raw body and no prompt",
			ev.GetJob().GetJobId(), len(ev.GetRawBody()), len(ev.GetJob().GetPrompt()))
	}
}

// With --max-event-age, a seed-format delivery whose signed timestamp is
// far from now is refused as stale, so a capture cannot be replayed once
// the log has dropped its event; a registration with tolerance 0s opts out.
func TestIngestMaxEventAge(t *testing.T) {
	r := newRig(t, func(c *ingest.Config) { c.MaxEventAge = 24 * time.Hour })
	if _, err := r.reg.Create(context.Background(), &registry.Webhook{ID: "lenient", Scheme: gatewayv1.SignatureScheme_SIGNATURE_SCHEME_KLING_SIGNATURE,
		Secrets: []registry.Secret{{Value: klingSecret}}, Active: true, CreateTime: r.now, UpdateTime: r.now}); err != nil {
		t.Fatal(err)
	}
	at := func(d time.Duration, job string) []byte {
		return []byte(`{"event":"video.completed","timestamp":"` + r.now.Add(d).UTC().Format(time.RFC3339) + `","data":{"job_id":"` + job + `"}}`)
	}
	tests := []struct {
		name, path string
		body       []byte
		want       int
	}{
		{"an hour old", "/webhooks/klingai", at(-time.Hour, "fresh"), 200},
		{"two days old", "/webhooks/klingai", at(-48*time.Hour, "old"), 401},
		{"two days ahead", "/webhooks/klingai", at(48*time.Hour, "ahead"), 401},
		{"two days old, registration opted out", "/webhooks/kling/lenient", at(-48*time.Hour, "old-ok"), 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, out := r.do(http.MethodPost, tc.path, klingSigned(tc.body), tc.body)
			if status != tc.want {
				t.Fatalf("status %d %v, want %d", status, out, tc.want)
			}
			if tc.want == 401 && out["error"] != "timestamp outside tolerance" {
				t.Errorf("error %v, want timestamp outside tolerance", out["error"])
			}
		})
	}
}
