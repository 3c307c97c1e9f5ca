package app_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/klingfan/klingfan/internal/apptest"
)

// A REST client can PATCH back the resource it read, with one field
// changed: grpc-gateway puts every body field in the update mask, so the
// output-only and unchanged immutable ones must not make it fail.
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
	var got struct {
		Webhook map[string]any `json:"webhook"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	got.Webhook["displayName"] = "Orders v2"
	body, _ := json.Marshal(got.Webhook)
	code, out = call("PATCH", "/v1/webhooks/orders", body)
	if code != 200 || !bytes.Contains(out, []byte(`"displayName":"Orders v2"`)) {
		t.Fatalf("patch of what GET returned: %d %s", code, out)
	}
}
