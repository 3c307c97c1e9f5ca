package app_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/config"
)

// consumerGroup creates a consumer group named id with the admin token.
func (h *hostile) consumerGroup(t *testing.T, id string) {
	t.Helper()
	_, err := gatewayv1.NewConsumerGroupServiceClient(h.conn).CreateConsumerGroup(t.Context(), &gatewayv1.CreateConsumerGroupRequest{
		ConsumerGroupId: id, ConsumerGroup: &gatewayv1.ConsumerGroup{}})
	if err != nil && !isAlreadyExists(err) {
		t.Fatal(err)
	}
}

func isAlreadyExists(err error) bool { return status.Code(err) == codes.AlreadyExists }

// tryConsume opens a Consume stream and returns its first error: nil once the
// server says the member is attached.
func tryConsume(ctx context.Context, c gatewayv1.ConsumerGroupServiceClient, group string) error {
	s, err := c.Consume(ctx, &gatewayv1.ConsumeRequest{ConsumerGroupId: group})
	if err != nil {
		return err
	}
	md, err := s.Header()
	if err != nil {
		return err
	}
	if len(md) == 0 {
		_, err = s.Recv() // a refusal comes as trailers only
	}
	return err
}

// restConsume opens REST's Consume stream with token and returns its
// status, closing it at once.
func restConsume(t *testing.T, h *hostile, token, group string) int {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.srv.HTTPURL+"/v1/consumerGroups/"+group+":consume", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// expectStreamQuota: Subscribe and Consume streams of one token share its
// --max-streams-per-token quota (3 here); a refused Consume is
// RESOURCE_EXHAUSTED over gRPC and 429 over REST, and a closed stream
// frees its slot.
func (h *hostile) expectStreamQuota(t *testing.T, events gatewayv1.EventServiceClient, groups gatewayv1.ConsumerGroupServiceClient) {
	h.consumerGroup(t, "quota")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	first, cancelFirst := context.WithCancel(ctx)
	defer cancelFirst()
	for i := range 3 {
		sctx := ctx
		if i == 0 {
			sctx = first
		}
		s, err := events.Subscribe(sctx, &gatewayv1.SubscribeRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Header(); err != nil {
			t.Fatal(err)
		}
	}
	s, err := events.Subscribe(ctx, &gatewayv1.SubscribeRequest{})
	if err == nil {
		_, err = s.Recv()
	}
	grpcCode(t, err, codes.ResourceExhausted)
	grpcCode(t, tryConsume(ctx, groups, "quota"), codes.ResourceExhausted)
	if code := restConsume(t, h, subscribeToken, "quota"); code != http.StatusTooManyRequests {
		t.Fatalf("REST consume beyond the quota: status %d, want 429", code)
	}
	cancelFirst()
	apptest.Eventually(t, 10*time.Second, "a Consume stream in the freed slot", func() bool {
		return tryConsume(ctx, groups, "quota") == nil
	})
}

// expectAuxStreamCap: health Watch (and reflection) streams count per
// token against a cap of their own, so one token's 64 streams refuse its
// 65th but take nothing from another token's Subscribe, Consume or
// Watch; and a Watch stream ends after its lifetime (shortened here)
// rather than holding its connection open for good.
func (h *hostile) expectAuxStreamCap(t *testing.T) {
	h.consumerGroup(t, "aux")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	watch := func(conn *grpc.ClientConn) error {
		w, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
		if err == nil {
			_, err = w.Recv()
		}
		return err
	}
	reader := h.srv.Dial(t, grpc.WithPerRPCCredentials(apptest.BearerCreds(subscribeToken)))
	for i := range 64 {
		if err := watch(reader); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
	}
	grpcCode(t, watch(reader), codes.ResourceExhausted)
	// The admin token's streams are untouched by the reader's 64.
	if err := tryConsume(ctx, gatewayv1.NewConsumerGroupServiceClient(h.conn), "aux"); err != nil {
		t.Fatalf("another token's Consume: %v", err)
	}
	if code := restConsume(t, h, apptest.AdminToken, "aux"); code != http.StatusOK {
		t.Fatalf("another token's REST Consume: status %d", code)
	}
	if err := watch(h.conn); err != nil {
		t.Fatalf("another token's Watch: %v", err)
	}

	f := startFanout(t, apptest.WithConfig(func(c *config.Config) { c.AuxStreamLifetime = 200 * time.Millisecond }))
	w, err := healthpb.NewHealthClient(f.conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() {
		for {
			if _, err := w.Recv(); err != nil {
				ended <- err
				return
			}
		}
	}()
	select {
	case err := <-ended:
		t.Logf("the Watch stream ended: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("a Watch stream outlived its lifetime")
	}
}
