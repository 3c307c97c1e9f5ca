package app_test

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/config"
	"github.com/klingfan/klingfan/internal/verify"
)

// refusal is everything a sender sees of an answer, but its Date.
type refusal struct {
	status int
	header http.Header
	close  bool
	body   string
}

func (r refusal) String() string {
	return fmt.Sprintf("%d %q close=%v %v", r.status, r.body, r.close, r.header)
}

func (r refusal) equal(o refusal) bool {
	return r.status == o.status && r.body == o.body && r.close == o.close && maps.EqualFunc(r.header, o.header, slices.Equal)
}

// expectRefusalsHideRegistrations sends every request that is refused
// before a signature verifies to registered ids of each scheme (an active
// and an inactive one among them) and to ids that were never registered or
// were deleted, and requires one answer for all, headers included:
// otherwise a stranger guessing ids at the ingest URL learns which exist.
// It is the hostile table's "unknown webhook" row.
func expectRefusalsHideRegistrations(t *testing.T) {
	const limit = 4096
	f := startFanout(t, apptest.WithConfig(func(c *config.Config) { c.MaxBodyBytes = limit }))
	hooks := gatewayv1.NewWebhookServiceClient(f.conn)
	ctx := context.Background()
	for _, w := range []struct {
		id     string
		scheme gatewayv1.SignatureScheme
		active bool
	}{
		{"kling", gatewayv1.SignatureScheme_SIGNATURE_SCHEME_KLING_SIGNATURE, true},
		{"std", gatewayv1.SignatureScheme_SIGNATURE_SCHEME_STANDARD_WEBHOOKS, true},
		{"tok", gatewayv1.SignatureScheme_SIGNATURE_SCHEME_URL_TOKEN, true},
		{"off", gatewayv1.SignatureScheme_SIGNATURE_SCHEME_KLING_SIGNATURE, false},
		{"gone", gatewayv1.SignatureScheme_SIGNATURE_SCHEME_KLING_SIGNATURE, true},
	} {
		active := w.active
		if _, err := hooks.CreateWebhook(ctx, &gatewayv1.CreateWebhookRequest{WebhookId: w.id,
			Webhook: &gatewayv1.Webhook{SignatureScheme: w.scheme, Active: &active}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := hooks.DeleteWebhook(ctx, &gatewayv1.DeleteWebhookRequest{Id: "gone"}); err != nil {
		t.Fatal(err)
	}
	// The first path is the reference every other is compared with.
	paths := []string{"/webhooks/kling/nobody", "/webhooks/kling/gone", "/webhooks/kling/default",
		"/webhooks/kling/kling", "/webhooks/kling/std", "/webhooks/kling/tok", "/webhooks/kling/off"}

	body := []byte(`{"event":"video.completed","timestamp":"2026-11-26T12:00:00Z","data":{"job_id":"guess"}}`)
	now := time.Now()
	standard := func(id string, ts time.Time, sig string) http.Header {
		return http.Header{verify.HeaderWebhookID: {id}, verify.HeaderWebhookTimestamp: {fmt.Sprint(ts.Unix())}, verify.HeaderWebhookSignature: {sig}}
	}
	forgedStandard := verify.SignStandard([]byte("not-the-key-0123456789"), "m1", now, body)
	big := bytes.Repeat([]byte(" "), limit+1)
	cases := []struct {
		name   string
		method string
		query  string
		header http.Header
		body   []byte
		// chunked sends the body without a Content-Length.
		chunked bool
	}{
		{name: "unsigned", header: http.Header{"Content-Type": {"application/json"}}, body: body},
		{name: "unsigned, no content type", body: body},
		{name: "unsigned, empty body", header: http.Header{"Content-Type": {"application/json"}}},
		{name: "unsigned, malformed JSON", header: http.Header{"Content-Type": {"application/json"}}, body: []byte(`{"event":`)},
		{name: "X-Kling-Signature, wrong key", header: http.Header{verify.HeaderKlingSignature: {verify.SignKling([]byte("not-the-key"), body)}}, body: body},
		{name: "X-Kling-Signature, malformed", header: http.Header{verify.HeaderKlingSignature: {"sha256=00"}}, body: body},
		{name: "Standard Webhooks, wrong key", header: standard("m1", now, forgedStandard), body: body},
		{name: "Standard Webhooks, wrong key, stale timestamp", header: standard("m1", now.Add(-time.Hour), forgedStandard), body: body},
		{name: "Standard Webhooks, wrong key, future timestamp", header: standard("m1", now.Add(time.Hour), forgedStandard), body: body},
		{name: "Standard Webhooks, timestamp not a number", header: http.Header{verify.HeaderWebhookID: {"m1"}, verify.HeaderWebhookTimestamp: {"soon"}, verify.HeaderWebhookSignature: {forgedStandard}}, body: body},
		{name: "Standard Webhooks, signature without id", header: http.Header{verify.HeaderWebhookTimestamp: {fmt.Sprint(now.Unix())}, verify.HeaderWebhookSignature: {forgedStandard}}, body: body},
		{name: "URL token, wrong", query: "?token=guessed-token", body: body},
		{name: "URL token, empty", query: "?token=", body: body},
		{name: "every scheme at once, all wrong", query: "?token=guessed-token", header: func() http.Header {
			h := standard("m1", now, forgedStandard)
			h.Set(verify.HeaderKlingSignature, verify.SignKling([]byte("not-the-key"), body))
			return h
		}(), body: body},
		{name: "content type not JSON", header: http.Header{"Content-Type": {"text/plain"}}, body: body},
		{name: "content type not JSON, wrongly signed", header: http.Header{"Content-Type": {"text/plain"}, verify.HeaderKlingSignature: {verify.SignKling([]byte("not-the-key"), body)}}, body: body},
		{name: "content type unparsable", header: http.Header{"Content-Type": {"application/json; ;"}}, body: body},
		{name: "declared body over the limit", header: http.Header{"Content-Type": {"application/json"}}, body: big},
		{name: "declared body over the limit, not JSON", header: http.Header{"Content-Type": {"text/plain"}}, body: big},
		{name: "chunked body over the limit", header: http.Header{"Content-Type": {"application/json"}}, body: big, chunked: true},
		{name: "chunked body within the limit, unsigned", header: http.Header{"Content-Type": {"application/json"}}, body: body, chunked: true},
		{name: "method other than POST", method: http.MethodPut, body: body},
	}
	client := &http.Client{Timeout: 10 * time.Second}
	send := func(t *testing.T, method, url string, header http.Header, b []byte, chunked bool) refusal {
		t.Helper()
		var r io.Reader = bytes.NewReader(b)
		if chunked {
			r = io.MultiReader(r) // hides the length: sent chunked
		}
		req, err := http.NewRequest(method, url, r)
		if err != nil {
			t.Fatal(err)
		}
		maps.Copy(req.Header, header)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		h := resp.Header.Clone()
		h.Del("Date")
		return refusal{status: resp.StatusCode, header: h, close: resp.Close, body: string(out)}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			method := cmp.Or(c.method, http.MethodPost)
			var want refusal
			for i, p := range paths {
				got := send(t, method, f.srv.HTTPURL+p+c.query, c.header, c.body, c.chunked)
				if i == 0 {
					want = got
					if got.status < 400 {
						t.Fatalf("%s answered %s: not a refusal", p, got)
					}
					continue
				}
				if !got.equal(want) {
					t.Errorf("%s answers %s\n%s answers %s", strings.TrimPrefix(p, "/webhooks/kling/"), got, strings.TrimPrefix(paths[0], "/webhooks/kling/"), want)
				}
			}
			t.Logf("every id: %s", want)
		})
	}
}
