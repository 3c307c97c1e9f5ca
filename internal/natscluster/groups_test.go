package natscluster_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
)

// TestConsumerGroupAcrossReplicas: members attached to two replicas share
// one group, each acking through the other replica; when one replica is
// killed, the group carries on with the member on the other.
func TestConsumerGroupAcrossReplicas(t *testing.T) {
	h := newHarness(t)
	a, b := h.replica("a"), h.replica("b")
	groupsOn := func(r *replica) gatewayv1.ConsumerGroupServiceClient {
		return gatewayv1.NewConsumerGroupServiceClient(r.srv.DialAdmin(t))
	}
	ga, gb := groupsOn(a), groupsOn(b)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := ga.CreateConsumerGroup(ctx, &gatewayv1.CreateConsumerGroupRequest{
		ConsumerGroupId: "shared", ConsumerGroup: &gatewayv1.ConsumerGroup{AckWait: durationpb.New(5 * time.Second)},
	}); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	got := map[string][]string{} // member → jobs, in arrival order
	total := func() int {        // distinct events received
		mu.Lock()
		defer mu.Unlock()
		seen := map[string]bool{}
		for _, jobs := range got {
			for _, j := range jobs {
				seen[j] = true
			}
		}
		return len(seen)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	// Each member consumes on one replica and acks on the other.
	for _, m := range []struct {
		name         string
		consume, ack gatewayv1.ConsumerGroupServiceClient
	}{{"a", ga, gb}, {"b", gb, ga}} {
		stream, err := m.consume.Consume(ctx, &gatewayv1.ConsumeRequest{ConsumerGroupId: "shared", MaxInFlight: 4})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Header(); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				resp, err := stream.Recv()
				if err != nil {
					return
				}
				mu.Lock()
				got[m.name] = append(got[m.name], resp.GetEvent().GetJob().GetJobId())
				mu.Unlock()
				ack := &gatewayv1.AckEventsRequest{ConsumerGroupId: "shared", AckIds: []string{resp.GetAckId()}}
				if _, err := m.ack.AckEvents(ctx, ack); err != nil {
					// The other replica is gone: ack where the event came from.
					_, _ = m.consume.AckEvents(ctx, ack)
				}
			}
		}()
	}
	const n = 40
	for i := range n {
		[]*replica{a, b}[i%2].mustPost(t, newDelivery(fmt.Sprintf("g-%03d", i)))
	}
	apptest.Eventually(t, 60*time.Second, "the members to receive every event", func() bool { return total() >= n })

	// Kill replica a: the member on b carries the group on.
	a.srv.Stop(t)
	for i := n; i < n+5; i++ {
		b.mustPost(t, newDelivery(fmt.Sprintf("g-%03d", i)))
	}
	apptest.Eventually(t, 60*time.Second, "the member on b to receive the events posted after the kill", func() bool { return total() >= n+5 })
	resp, err := gb.GetConsumerGroup(ctx, &gatewayv1.GetConsumerGroupRequest{Id: "shared"})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	seen := map[string]string{}
	for _, m := range []string{"a", "b"} {
		for _, job := range got[m] {
			if prev, dup := seen[job]; dup {
				t.Errorf("%s delivered to %s and %s", job, prev, m)
			}
			seen[job] = m
		}
	}
	if len(seen) != n+5 || len(got["a"]) == 0 {
		t.Errorf("members saw %d distinct events (a %d, b %d), want %d with both members taking part", len(seen), len(got["a"]), len(got["b"]), n+5)
	}
	if cg := resp.GetConsumerGroup(); cg.GetId() != "shared" {
		t.Errorf("group after the kill: %v", cg)
	}
}
