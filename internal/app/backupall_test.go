package app_test

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/app"
	"github.com/klingfan/klingfan/internal/apptest"
)

// A backup of a server holding deliveries, job states and two consumer
// groups (with acknowledged, pending and dead-lettered events) restores
// into a new directory on which every API answers as the original did:
// events, each event by id, jobs, groups with their positions, and dead
// letters.
func TestBackupRestoresEveryAPIAnswer(t *testing.T) {
	env := apptest.WithEnv("KLINGAI_WEBHOOK_SECRET", storageSecret, "KLINGFAN_SECRET_KEY", strings.Repeat("k", 40))
	src := apptest.Start(t, "", env)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	groups := gatewayv1.NewConsumerGroupServiceClient(src.DialAdmin(t))
	for _, id := range []string{"alpha", "beta"} {
		if _, err := groups.CreateConsumerGroup(ctx, &gatewayv1.CreateConsumerGroupRequest{ConsumerGroupId: id, ConsumerGroup: &gatewayv1.ConsumerGroup{
			Start:   &gatewayv1.ConsumerGroup_FromBeginning{FromBeginning: true},
			AckWait: durationpb.New(time.Hour), MaxDeliveries: 2,
		}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 12 {
		if code, _ := postDelivery(t, src, fmt.Sprintf("job-%d", i)); code != 200 {
			t.Fatalf("delivery %d: %d", i, code)
		}
	}

	// alpha: a member takes seven, acknowledges four and leaves (three
	// stay pending acknowledgement for the hour of ack_wait); a second
	// fails the next event until it is dead-lettered; the rest are never
	// delivered. beta: a member acknowledges two.
	consumeSome(ctx, t, groups, "alpha", 7, 4)
	consumeSome(ctx, t, groups, "beta", 2, 2)
	deadLetter(ctx, t, src, groups)

	jobsClient := gatewayv1.NewJobServiceClient(src.DialAdmin(t))
	waitFor(t, "the job projection to fold every delivery", func() bool { return len(allJobs(ctx, t, jobsClient)) == 12 })
	before := answers(ctx, t, src)

	file := filepath.Join(t.TempDir(), "klingfan.backup")
	lookup := func(k string) (string, bool) { return apptest.AdminToken, k == "KLINGFAN_ADMIN_TOKEN" }
	if err := app.BackupCommand(ctx, []string{"--to", file, "--server", src.GRPC}, lookup, io.Discard); err != nil {
		t.Fatalf("backup: %v", err)
	}
	src.Stop(t)
	dir := filepath.Join(t.TempDir(), "restored")
	var out strings.Builder
	if err := app.RestoreCommand(ctx, []string{"--from", file, "--data-dir", dir}, &out); err != nil {
		t.Fatalf("restore: %v", err)
	}
	t.Log(out.String())
	dst := apptest.Start(t, dir, env)
	after := answers(ctx, t, dst)
	for name, want := range before {
		if got := after[name]; got != want {
			t.Errorf("%s differs after restore:\n--- original\n%s\n--- restored\n%s", name, want, got)
		}
	}
}

// consumeSome opens a member of group id that may hold inFlight events,
// acknowledges the first ack of them and leaves.
func consumeSome(ctx context.Context, t *testing.T, groups gatewayv1.ConsumerGroupServiceClient, id string, inFlight int32, ack int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	stream, err := groups.Consume(ctx, &gatewayv1.ConsumeRequest{ConsumerGroupId: id, MaxInFlight: inFlight})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for len(ids) < int(inFlight) {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("consume %s: %v", id, err)
		}
		ids = append(ids, resp.GetAckId())
	}
	if _, err := groups.AckEvents(ctx, &gatewayv1.AckEventsRequest{ConsumerGroupId: id, AckIds: ids[:ack]}); err != nil {
		t.Fatal(err)
	}
}

// deadLetter makes group alpha dead-letter one event: a member that fails
// every delivery of the first event it gets beyond those already pending.
func deadLetter(ctx context.Context, t *testing.T, srv *apptest.Server, groups gatewayv1.ConsumerGroupServiceClient) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	stream, err := groups.Consume(ctx, &gatewayv1.ConsumeRequest{ConsumerGroupId: "alpha", MaxInFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	job := first.GetEvent().GetJob().GetJobId()
	for resp := first; ; {
		if _, err := groups.AckEvents(ctx, &gatewayv1.AckEventsRequest{ConsumerGroupId: "alpha", NackIds: []string{resp.GetAckId()}}); err != nil {
			t.Fatal(err)
		}
		dead, err := groups.ListDeadLetters(ctx, &gatewayv1.ListDeadLettersRequest{ConsumerGroupId: "alpha"})
		if err != nil {
			t.Fatal(err)
		}
		if len(dead.GetDeadLetters()) > 0 {
			return
		}
		next := make(chan *gatewayv1.ConsumeResponse, 1)
		go func() {
			r, err := stream.Recv()
			if err == nil {
				next <- r
			}
			close(next)
		}()
		select {
		case r, ok := <-next:
			if !ok {
				t.Fatal("the member's stream ended before a dead letter")
			}
			if r.GetEvent().GetJob().GetJobId() != job {
				// The next event arrives once the failed one has used its
				// deliveries, which can be before ListDeadLetters shows it.
				waitFor(t, "the dead letter of "+job, func() bool {
					dead, err := groups.ListDeadLetters(ctx, &gatewayv1.ListDeadLettersRequest{ConsumerGroupId: "alpha"})
					return err == nil && len(dead.GetDeadLetters()) > 0
				})
				return
			}
			resp = r
		case <-time.After(50 * time.Millisecond):
			// The dead letter may be recorded without another delivery:
			// check again. Polling, not ordering.
		}
	}
}

// answers returns every API's answer about the server's state, as text.
func answers(ctx context.Context, t *testing.T, srv *apptest.Server) map[string]string {
	t.Helper()
	conn := srv.DialAdmin(t)
	events := gatewayv1.NewEventServiceClient(conn)
	jobs := gatewayv1.NewJobServiceClient(conn)
	groups := gatewayv1.NewConsumerGroupServiceClient(conn)
	out := map[string]string{}
	text := func(m proto.Message) string { return prototext.MarshalOptions{Multiline: true}.Format(m) }

	var all []string
	req := &gatewayv1.ListEventsRequest{PageSize: 500}
	for {
		resp, err := events.ListEvents(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range resp.GetEvents() {
			all = append(all, text(ev))
			got, err := events.GetEvent(ctx, &gatewayv1.GetEventRequest{Id: ev.GetId()})
			if err != nil {
				t.Fatalf("GetEvent %s: %v", ev.GetId(), err)
			}
			out["GetEvent "+ev.GetId()] = text(got)
		}
		if resp.GetNextPageToken() == "" {
			break
		}
		req.PageToken = resp.GetNextPageToken()
	}
	out["ListEvents"] = strings.Join(all, "\n")
	var js []string
	for _, j := range allJobs(ctx, t, jobs) {
		js = append(js, text(j))
	}
	out["ListJobs"] = strings.Join(js, "\n")
	cgs, err := groups.ListConsumerGroups(ctx, &gatewayv1.ListConsumerGroupsRequest{PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(cgs.GetConsumerGroups()) != 2 {
		t.Fatalf("%d consumer groups, want 2", len(cgs.GetConsumerGroups()))
	}
	for _, cg := range cgs.GetConsumerGroups() {
		got, err := groups.GetConsumerGroup(ctx, &gatewayv1.GetConsumerGroupRequest{Id: cg.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		g := got.GetConsumerGroup()
		g.Members = 0 // who is attached now, not state a backup keeps
		if g.GetId() == "alpha" && (g.GetDeadLettered() != 1 || g.GetAckPending() == 0) {
			t.Fatalf("group alpha lacks the state the test set up: %v", g)
		}
		out["GetConsumerGroup "+cg.GetId()] = text(g)
		dead, err := groups.ListDeadLetters(ctx, &gatewayv1.ListDeadLettersRequest{ConsumerGroupId: cg.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		out["ListDeadLetters "+cg.GetId()] = text(dead)
	}

	return out
}

func allJobs(ctx context.Context, t *testing.T, jobs gatewayv1.JobServiceClient) []*gatewayv1.JobState {
	t.Helper()
	var all []*gatewayv1.JobState
	req := &gatewayv1.ListJobsRequest{PageSize: 500}
	for {
		resp, err := jobs.ListJobs(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, resp.GetJobStates()...)
		if resp.GetNextPageToken() == "" {
			return all
		}
		req.PageToken = resp.GetNextPageToken()
	}
}
