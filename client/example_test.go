package client_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/klingfan/klingfan/client"
	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
)

// errEnough ends an example's loop once it has seen what it came for.
var errEnough = errors.New("enough")

func ExampleDial() {
	ctx := context.Background()
	c, err := client.Dial(ctx, server.GRPC, client.WithInsecure(), client.WithToken(apptest.AdminToken))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	resp, err := c.Events().ListEvents(ctx, &gatewayv1.ListEventsRequest{JobIds: []string{"no-such-job"}})
	fmt.Println(len(resp.GetEvents()), err)
	// Output: 0 <nil>
}

func ExampleClient_Subscribe() {
	ctx := context.Background()
	c, err := client.Dial(ctx, server.GRPC, client.WithInsecure(), client.WithToken(apptest.AdminToken))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	postEvent("sub-example-1")
	postEvent("sub-example-2")

	// A cursor file makes a restarted process resume where it stopped.
	dir, _ := os.MkdirTemp("", "cursor")
	defer os.RemoveAll(dir)
	cursor := client.FileCursor{Path: filepath.Join(dir, "cursor")}

	req := &gatewayv1.SubscribeRequest{
		JobIds: []string{"sub-example-1", "sub-example-2"},
		Start:  &gatewayv1.SubscribeRequest_FromBeginning{FromBeginning: true},
	}
	seen := 0
	err = c.Subscribe(ctx, req, func(ctx context.Context, ev *gatewayv1.Event) error {
		fmt.Println(ev.GetType(), ev.GetJob().GetJobId())
		if seen++; seen == 2 {
			return errEnough
		}
		return nil
	}, client.WithCursorStore(cursor))
	fmt.Println(err)
	// Output:
	// EVENT_TYPE_VIDEO_COMPLETED sub-example-1
	// EVENT_TYPE_VIDEO_COMPLETED sub-example-2
	// enough
}

func ExampleClient_Consume() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := client.Dial(ctx, server.GRPC, client.WithInsecure(), client.WithToken(apptest.AdminToken))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	// An admin creates the group once; any number of replicas then
	// consume it, each event going to one of them.
	_, err = c.ConsumerGroups().CreateConsumerGroup(ctx, &gatewayv1.CreateConsumerGroupRequest{
		ConsumerGroupId: "thumbnailers",
		ConsumerGroup: &gatewayv1.ConsumerGroup{
			JobIds: []string{"group-example-1"},
			Start:  &gatewayv1.ConsumerGroup_FromBeginning{FromBeginning: true},
		},
	})
	if err != nil {
		panic(err)
	}
	postEvent("group-example-1")

	err = c.Consume(ctx, "thumbnailers", func(ctx context.Context, ev *gatewayv1.Event) error {
		fmt.Println("handled", ev.GetJob().GetJobId())
		cancel() // a real service keeps consuming
		return nil
	}, client.WithConcurrency(4))
	fmt.Println(err)
	// Output:
	// handled group-example-1
	// context canceled
}

func ExampleClient_WaitJob() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, server.GRPC, client.WithInsecure(), client.WithToken(apptest.AdminToken))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	// Kling reports the job as processing, then (here, at any moment
	// while WaitJob runs) as completed.
	postNamed(server, "video.processing", "wait-example")
	go postNamed(server, "video.completed", "wait-example")

	st, err := c.WaitJob(ctx, "wait-example")
	if err != nil {
		panic(err)
	}
	fmt.Println(st.GetJob().GetStatus(), st.GetJob().GetVideos()[0].GetUrl())
	// Output: JOB_STATUS_SUCCEEDED https://example.com/wait-example.mp4
}
