package app_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/klingfan/klingfan/internal/apptest"
)

// A REST client that PATCHes back the resource it read puts every field in
// the update mask (grpc-gateway derives it from the body), and a mask that
// names id, the scheme or an output-only field is refused, naming it, with
// nothing changed; naming the fields to change with ?updateMask= is the
// read-modify-write that works.
func TestPatchWhatGetReturned(t *testing.T) {
	srv := apptest.Start(t, "")
	call := func(method, path string, body []byte) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.HTTPURL+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+apptest.AdminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, out
	}
	if code, out := call("POST", "/v1/webhooks", []byte(`{"webhookId":"orders","webhook":{"displayName":"Orders","signatureScheme":"SIGNATURE_SCHEME_STANDARD_WEBHOOKS"}}`)); code != 200 {
		t.Fatalf("create: %d %s", code, out)
	}
	code, out := call("GET", "/v1/webhooks/orders", nil)
	if code != 200 {
		t.Fatalf("get: %d %s", code, out)
	}
	read := out
	var got struct {
		Webhook map[string]any `json:"webhook"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	got.Webhook["displayName"] = "Orders v2"
	body, _ := json.Marshal(got.Webhook)
	code, out = call("PATCH", "/v1/webhooks/orders", body)
	if code != 400 || !bytes.Contains(out, []byte(`is immutable`)) && !bytes.Contains(out, []byte(`is output only`)) {
		t.Fatalf("patch of what GET returned, mask from the body: %d %s, want 400 naming a field", code, out)
	}
	if _, now := call("GET", "/v1/webhooks/orders", nil); !bytes.Equal(now, read) {
		t.Fatalf("a refused PATCH changed the registration:\n%s\n%s", read, now)
	}
	code, out = call("PATCH", "/v1/webhooks/orders?updateMask=displayName", body)
	if code != 200 || !bytes.Contains(out, []byte(`"displayName":"Orders v2"`)) {
		t.Fatalf("patch of what GET returned, ?updateMask=displayName: %d %s", code, out)
	}
}
