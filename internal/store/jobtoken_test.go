package store_test

import (
	"context"
	"strings"
	"testing"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// Job ids of any length are stored on bounded subjects (long ones hashed),
// and the job filter still finds exactly their events. An unbounded subject
// once made NATS drop the connection and stopped the server.
func TestLongJobIDs(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, t.TempDir())
	jobs := []string{strings.Repeat("a", 48), strings.Repeat("a", 49), strings.Repeat("b", 6000), "short.with.dots"}
	for i, job := range jobs {
		ev := &gatewayv1.Event{Id: "evt_" + string(rune('a'+i)), WebhookId: "w", DeliveryId: job, Job: &gatewayv1.Job{JobId: job}}
		if _, _, err := st.Append(ctx, ev); err != nil {
			t.Fatalf("append job of %d bytes: %v", len(job), err)
		}
	}
	for i, job := range jobs {
		events, _, err := st.Read(ctx, 1, 10, nil, []string{job})
		if err != nil {
			t.Fatal(err)
		}
		var got []uint64
		for _, ev := range events {
			if ev.GetJob().GetJobId() == job {
				got = append(got, ev.GetSequence())
			}
		}
		if len(got) != 1 || got[0] != uint64(i+1) {
			t.Errorf("job of %d bytes: found sequences %v, want [%d]", len(job), got, i+1)
		}
	}
	if err := st.Ready(ctx); err != nil {
		t.Fatalf("the store is no longer usable: %v", err)
	}
}
