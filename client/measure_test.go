package client_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/klingfan/klingfan/client"
	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// TestMeasureGroupThroughput measures events acknowledged per second by a
// group of four members, and plain Subscribe throughput over the same
// events for the ratio. It runs only with KLINGFAN_GROUP_MEASURE=<events>
// (without -race for meaningful numbers):
//
//	KLINGFAN_GROUP_MEASURE=5000 go test -run TestMeasureGroupThroughput -v ./client
func TestMeasureGroupThroughput(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("KLINGFAN_GROUP_MEASURE"))
	if n <= 0 {
		t.Skip("set KLINGFAN_GROUP_MEASURE to the number of events")
	}
	c := dial(t, server.GRPC)
	job := fmt.Sprintf("measure-%d", time.Now().UnixNano())
	var posts errgroup.Group
	posts.SetLimit(8)
	for i := range n {
		posts.Go(func() error { postEvent(fmt.Sprintf("%s-%d", job, i)); return nil })
	}
	if err := posts.Wait(); err != nil {
		t.Fatal(err)
	}
	first, err := c.Events().ListEvents(context.Background(), &gatewayv1.ListEventsRequest{OrderBy: "sequence desc", PageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	after := first.GetEvents()[0].GetSequence() - uint64(n)

	// Plain Subscribe over the same n events.
	began := time.Now()
	seen := 0
	_ = c.Subscribe(context.Background(), &gatewayv1.SubscribeRequest{Start: &gatewayv1.SubscribeRequest_AfterSequence{AfterSequence: after}},
		func(context.Context, *gatewayv1.Event) error {
			if seen++; seen == n {
				return errEnough
			}
			return nil
		})
	subscribeRate := float64(n) / time.Since(began).Seconds()

	// A group of four members, each with the client's defaults but 8
	// handlers, acking everything.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := c.ConsumerGroups().CreateConsumerGroup(ctx, &gatewayv1.CreateConsumerGroupRequest{ConsumerGroupId: "measure",
		ConsumerGroup: &gatewayv1.ConsumerGroup{Start: &gatewayv1.ConsumerGroup_AfterSequence{AfterSequence: after}}}); err != nil {
		t.Fatal(err)
	}
	var handled atomic.Int64
	began = time.Now()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.Consume(ctx, "measure", func(context.Context, *gatewayv1.Event) error {
				if handled.Add(1) >= int64(n) {
					cancel()
				}
				return nil
			}, client.WithConcurrency(8), client.WithMaxInFlight(256))
		}()
	}
	wg.Wait()
	groupRate := float64(n) / time.Since(began).Seconds()
	t.Logf("%d events: Subscribe %.0f events/s; group of 4 members %.0f events/s handled and acked (ratio %.2f)",
		n, subscribeRate, groupRate, groupRate/subscribeRate)
}
