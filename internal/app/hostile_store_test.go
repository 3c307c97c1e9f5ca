package app_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/store"
)

// expectGetEventIndexed: every appended event gets an entry in the id
// index, through which GetByID finds it without the wildcard lookup whose
// cost grows with the number of jobs (internal/store BenchmarkGetByID
// measures both).
func expectGetEventIndexed(t *testing.T) {
	s, err := store.Open(context.Background(), store.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	const n = 20
	for i := range n {
		ev := &gatewayv1.Event{Id: fmt.Sprintf("evt_%d", i), WebhookId: "w", DeliveryId: fmt.Sprint(i),
			Job: &gatewayv1.Job{JobId: fmt.Sprintf("job-%d", i)}, ReceivedAt: timestamppb.Now()}
		if _, _, err := s.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	idx, err := s.JetStream().Stream(ctx, store.IDIndexStreamName)
	if err != nil {
		t.Fatalf("no id index: %v", err)
	}
	apptest.Eventually(t, 10*time.Second, "an index entry per event", func() bool {
		info, err := idx.Info(ctx)
		return err == nil && info.State.Msgs == n
	})
	for i := range n {
		id := fmt.Sprintf("evt_%d", i)
		if ev, err := s.GetByID(ctx, id); err != nil || ev.GetId() != id {
			t.Fatalf("GetByID(%s): %v %v", id, ev, err)
		}
	}
}
