package groups_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/config"
)

const subscribeToken = "groups-subscribe-token-0123456789"

// TestSubscribeScopeOverREST: a subscribe token consumes (NDJSON over
// REST) and acks, but cannot manage groups.
func TestSubscribeScopeOverREST(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("worker subscribe "+subscribeToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := apptest.Start(t, "", apptest.WithEnv("KLINGAI_WEBHOOK_SECRET", secret),
		apptest.WithConfig(func(c *config.Config) { c.TokensFile = tokens }))
	h := &harness{t: t, srv: srv, groups: gatewayv1.NewConsumerGroupServiceClient(srv.DialAdmin(t)), http: &http.Client{Timeout: 10 * time.Second}}
	h.create(&gatewayv1.ConsumerGroup{}, "rest")

	worker := gatewayv1.NewConsumerGroupServiceClient(srv.Dial(t, grpc.WithPerRPCCredentials(apptest.BearerCreds(subscribeToken))))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := worker.CreateConsumerGroup(ctx, &gatewayv1.CreateConsumerGroupRequest{ConsumerGroup: &gatewayv1.ConsumerGroup{}})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("create with a subscribe token: %v, want PERMISSION_DENIED", err)
	}

	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.HTTPURL+"/v1/consumerGroups/rest:consume?maxInFlight=1", nil)
	req.Header.Set("Authorization", "Bearer "+subscribeToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("consume over REST: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// The headers arrived: the member is attached.
	h.post(2)
	lines := bufio.NewScanner(resp.Body)
	var line struct {
		Result struct {
			Event struct {
				Sequence string `json:"sequence"`
			} `json:"event"`
			AckID           string `json:"ackId"`
			DeliveryAttempt int    `json:"deliveryAttempt"`
		} `json:"result"`
	}
	if !lines.Scan() {
		t.Fatalf("no line: %v", lines.Err())
	}
	if err := json.Unmarshal(lines.Bytes(), &line); err != nil || line.Result.AckID == "" || line.Result.DeliveryAttempt != 1 {
		t.Fatalf("line %s: %v", lines.Text(), err)
	}
	first := line.Result.Event.Sequence

	ack, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.HTTPURL+"/v1/consumerGroups/rest:ack",
		strings.NewReader(`{"ackIds":[`+jsonString(line.Result.AckID)+`]}`))
	ack.Header.Set("Authorization", "Bearer "+subscribeToken)
	ack.Header.Set("Content-Type", "application/json")
	ackResp, err := http.DefaultClient.Do(ack)
	if err != nil {
		t.Fatal(err)
	}
	ackResp.Body.Close()
	if ackResp.StatusCode != http.StatusOK {
		t.Fatalf("ack over REST: %d", ackResp.StatusCode)
	}
	// With max_in_flight 1, the second event comes only after the ack.
	if !lines.Scan() {
		t.Fatalf("no second line: %v", lines.Err())
	}
	if err := json.Unmarshal(lines.Bytes(), &line); err != nil || line.Result.Event.Sequence == first {
		t.Fatalf("second line %s: %v", lines.Text(), err)
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
