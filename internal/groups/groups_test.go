package groups_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
)

const secret = "groups-test-secret"

// harness is a running server with a client for the groups service.
type harness struct {
	t      *testing.T
	srv    *apptest.Server
	groups gatewayv1.ConsumerGroupServiceClient
	http   *http.Client
	n      int
}

func start(t *testing.T, dataDir string) *harness {
	t.Helper()
	srv := apptest.Start(t, dataDir, apptest.WithEnv("KLINGAI_WEBHOOK_SECRET", secret))
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return &harness{t: t, srv: srv, groups: gatewayv1.NewConsumerGroupServiceClient(srv.DialAdmin(t)),
		http: &http.Client{Timeout: 10 * time.Second, Transport: tr}}
}

// post delivers n distinct signed events, four at a time.
func (h *harness) post(n int) {
	h.t.Helper()
	first := h.n
	h.n += n
	var g errgroup.Group
	g.SetLimit(4)
	for i := first; i < first+n; i++ {
		g.Go(func() error {
			body := fmt.Appendf(nil, `{"event":"video.completed","timestamp":"2026-11-26T12:00:00Z","data":{"job_id":"job-%d","progress":1}}`, i)
			mac := hmac.New(sha256.New, []byte(secret))
			mac.Write(body)
			req, _ := http.NewRequest(http.MethodPost, h.srv.HTTPURL+"/webhooks/klingai", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Kling-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
			resp, err := h.http.Do(req)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("post %d: status %d", i, resp.StatusCode)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) create(cg *gatewayv1.ConsumerGroup, id string) *gatewayv1.ConsumerGroup {
	h.t.Helper()
	resp, err := h.groups.CreateConsumerGroup(context.Background(), &gatewayv1.CreateConsumerGroupRequest{ConsumerGroup: cg, ConsumerGroupId: id})
	if err != nil {
		h.t.Fatalf("create group: %v", err)
	}
	return resp.GetConsumerGroup()
}

// consume opens a member's stream and waits until it is attached.
func (h *harness) consume(ctx context.Context, id string, maxInFlight int32) grpc.ServerStreamingClient[gatewayv1.ConsumeResponse] {
	h.t.Helper()
	stream, err := h.groups.Consume(ctx, &gatewayv1.ConsumeRequest{ConsumerGroupId: id, MaxInFlight: maxInFlight})
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := stream.Header(); err != nil {
		h.t.Fatalf("consume: %v", err)
	}
	return stream
}

// received collects what members received, by member.
type received struct {
	mu  sync.Mutex
	got map[string][]*gatewayv1.ConsumeResponse
}

func (r *received) add(member string, resp *gatewayv1.ConsumeResponse) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got[member] = append(r.got[member], resp)
}

func (r *received) count(member string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got[member])
}

// distinct counts the distinct sequences the given members received.
func (r *received) distinct(members ...string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[uint64]bool{}
	for _, m := range members {
		for _, d := range r.got[m] {
			seen[d.GetEvent().GetSequence()] = true
		}
	}
	return len(seen)
}

// TestMembersShareEvents: two acking members share 1,000 events, each gets
// part, together all, none twice; a third member that stops without
// acking has its events redelivered to the others after ack_wait.
func TestMembersShareEvents(t *testing.T) {
	h := start(t, "")
	// ack_wait is generous because every event is acked by its own call
	// and the test machine may be loaded; a member holds at most 8 at once.
	h.create(&gatewayv1.ConsumerGroup{AckWait: durationpb.New(10 * time.Second)}, "workers")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := &received{got: map[string][]*gatewayv1.ConsumeResponse{}}

	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for _, member := range []string{"a", "b"} {
		stream := h.consume(ctx, "workers", 8)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				resp, err := stream.Recv()
				if err != nil {
					return
				}
				rec.add(member, resp)
				if _, err := h.groups.AckEvents(ctx, &gatewayv1.AckEventsRequest{ConsumerGroupId: "workers", AckIds: []string{resp.GetAckId()}}); err != nil {
					if ctx.Err() == nil {
						t.Errorf("ack: %v", err)
					}
					return
				}
			}
		}()
	}
	// The third member takes up to 20 events and dies holding them.
	cctx, kill := context.WithCancel(ctx)
	third := h.consume(cctx, "workers", 20)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			resp, err := third.Recv()
			if err != nil {
				return
			}
			rec.add("c", resp)
			if rec.count("c") == 20 {
				kill()
			}
		}
	}()

	began := time.Now()
	h.post(1000)
	t.Logf("posted 1,000 events in %s", time.Since(began))
	apptest.Eventually(t, 60*time.Second, "members a and b to receive all 1,000 events", func() bool {
		return rec.distinct("a", "b") == 1000
	})
	t.Logf("all received after %s", time.Since(began))
	cancel()
	wg.Wait()

	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.got["a"]) == 0 || len(rec.got["b"]) == 0 {
		t.Errorf("a member got nothing: a %d, b %d", len(rec.got["a"]), len(rec.got["b"]))
	}
	held := map[uint64]bool{}
	for _, d := range rec.got["c"] {
		held[d.GetEvent().GetSequence()] = true
	}
	if len(held) != 20 {
		t.Fatalf("the third member held %d events, want 20", len(held))
	}
	seen := map[uint64]string{}
	redelivered := 0
	for _, m := range []string{"a", "b"} {
		for _, d := range rec.got[m] {
			seq := d.GetEvent().GetSequence()
			if prev, dup := seen[seq]; dup {
				t.Errorf("event %d delivered to %s and %s while they acked", seq, prev, m)
			}
			seen[seq] = m
			switch {
			case held[seq] && d.GetDeliveryAttempt() < 2:
				t.Errorf("event %d held by the dead member came to %s as attempt %d, want a redelivery", seq, m, d.GetDeliveryAttempt())
			case held[seq]:
				redelivered++
			case d.GetDeliveryAttempt() != 1:
				t.Errorf("event %d came to %s as attempt %d, want 1", seq, m, d.GetDeliveryAttempt())
			}
		}
	}
	if redelivered != 20 {
		t.Errorf("%d of the dead member's 20 events were redelivered, want 20", redelivered)
	}
}

// TestDeadLettersAndRedrive: a handler that always fails sends its event to
// the dead letters after max_deliveries; a redrive delivers it again.
func TestDeadLettersAndRedrive(t *testing.T) {
	h := start(t, "")
	h.create(&gatewayv1.ConsumerGroup{AckWait: durationpb.New(time.Second), MaxDeliveries: 3}, "fails")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream := h.consume(ctx, "fails", 1)
	h.post(1)

	var attempts []int32
	for range 3 {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		attempts = append(attempts, resp.GetDeliveryAttempt())
		if _, err := h.groups.AckEvents(ctx, &gatewayv1.AckEventsRequest{ConsumerGroupId: "fails", NackIds: []string{resp.GetAckId()}}); err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(attempts) != "[1 2 3]" {
		t.Errorf("delivery attempts %v, want [1 2 3]", attempts)
	}
	var dead []*gatewayv1.DeadLetter
	apptest.Eventually(t, 20*time.Second, "a dead letter", func() bool {
		resp, err := h.groups.ListDeadLetters(ctx, &gatewayv1.ListDeadLettersRequest{ConsumerGroupId: "fails"})
		if err != nil {
			t.Fatal(err)
		}
		dead = resp.GetDeadLetters()
		return len(dead) > 0
	})
	if len(dead) != 1 || dead[0].GetDeliveryAttempts() != 3 || dead[0].GetEvent().GetJob().GetJobId() != "job-0" {
		t.Fatalf("dead letters %v, want one for job-0 after 3 attempts", dead)
	}
	got, err := h.groups.GetConsumerGroup(ctx, &gatewayv1.GetConsumerGroupRequest{Id: "fails"})
	if err != nil {
		t.Fatal(err)
	}
	if cg := got.GetConsumerGroup(); cg.GetDeadLettered() != 1 || cg.GetMembers() != 1 {
		t.Errorf("dead_lettered %d, members %d; want 1 and 1", cg.GetDeadLettered(), cg.GetMembers())
	}

	rd, err := h.groups.RedriveDeadLetters(ctx, &gatewayv1.RedriveDeadLettersRequest{ConsumerGroupId: "fails"})
	if err != nil || rd.GetRedriven() != 1 {
		t.Fatalf("redrive: %v, %d redriven; want 1", err, rd.GetRedriven())
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetEvent().GetSequence() != dead[0].GetSequence() || resp.GetDeliveryAttempt() != 1 {
		t.Errorf("after redrive got event %d attempt %d, want event %d attempt 1", resp.GetEvent().GetSequence(), resp.GetDeliveryAttempt(), dead[0].GetSequence())
	}
	if _, err := h.groups.AckEvents(ctx, &gatewayv1.AckEventsRequest{ConsumerGroupId: "fails", AckIds: []string{resp.GetAckId()}}); err != nil {
		t.Fatal(err)
	}
	left, err := h.groups.ListDeadLetters(ctx, &gatewayv1.ListDeadLettersRequest{ConsumerGroupId: "fails"})
	if err != nil || len(left.GetDeadLetters()) != 0 {
		t.Errorf("dead letters after redrive: %v, %v; want none", left.GetDeadLetters(), err)
	}
}

// TestGroupSurvivesRestart: a group's definition and position outlive a
// restart of the embedded server.
func TestGroupSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	h := start(t, dir)
	h.create(&gatewayv1.ConsumerGroup{DisplayName: "durable", AckWait: durationpb.New(time.Second)}, "durable")
	ctx, cancel := context.WithCancel(context.Background())
	stream := h.consume(ctx, "durable", 10)
	h.post(3)
	for range 3 {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.groups.AckEvents(ctx, &gatewayv1.AckEventsRequest{ConsumerGroupId: "durable", AckIds: []string{resp.GetAckId()}}); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	h.srv.Stop(t)

	h2 := start(t, dir)
	h2.n = 3
	got, err := h2.groups.GetConsumerGroup(context.Background(), &gatewayv1.GetConsumerGroupRequest{Id: "durable"})
	if err != nil || got.GetConsumerGroup().GetDisplayName() != "durable" {
		t.Fatalf("after restart: %v, %v", got, err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	stream2 := h2.consume(ctx2, "durable", 10)
	h2.post(2)
	// h.post delivers concurrently, so the log order of the two is open.
	got2 := map[string]int32{}
	for range 2 {
		resp, err := stream2.Recv()
		if err != nil {
			t.Fatal(err)
		}
		got2[resp.GetEvent().GetJob().GetJobId()] = resp.GetDeliveryAttempt()
	}
	if fmt.Sprint(got2) != "map[job-3:1 job-4:1]" {
		t.Errorf("after restart got %v, want job-3 and job-4 at attempt 1 (acked events must not come back)", got2)
	}
}

// TestBadRequests checks the statuses of malformed requests.
func TestBadRequests(t *testing.T) {
	h := start(t, "")
	h.create(&gatewayv1.ConsumerGroup{}, "exists")
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"duplicate id", func() error {
			_, err := h.groups.CreateConsumerGroup(ctx, &gatewayv1.CreateConsumerGroupRequest{ConsumerGroup: &gatewayv1.ConsumerGroup{}, ConsumerGroupId: "exists"})
			return err
		}, codes.AlreadyExists},
		{"bad id", func() error {
			_, err := h.groups.CreateConsumerGroup(ctx, &gatewayv1.CreateConsumerGroupRequest{ConsumerGroup: &gatewayv1.ConsumerGroup{}, ConsumerGroupId: "Bad.Id"})
			return err
		}, codes.InvalidArgument},
		{"ack wait too short", func() error {
			_, err := h.groups.CreateConsumerGroup(ctx, &gatewayv1.CreateConsumerGroupRequest{ConsumerGroup: &gatewayv1.ConsumerGroup{AckWait: durationpb.New(time.Millisecond)}})
			return err
		}, codes.InvalidArgument},
		{"resume before retention", func() error {
			_, err := h.groups.CreateConsumerGroup(ctx, &gatewayv1.CreateConsumerGroupRequest{ConsumerGroup: &gatewayv1.ConsumerGroup{Start: &gatewayv1.ConsumerGroup_AfterSequence{AfterSequence: 0}}})
			return err
		}, codes.OK},
		{"unknown group", func() error {
			_, err := h.groups.GetConsumerGroup(ctx, &gatewayv1.GetConsumerGroupRequest{Id: "nope"})
			return err
		}, codes.NotFound},
		{"forged ack id", func() error {
			_, err := h.groups.AckEvents(ctx, &gatewayv1.AckEventsRequest{ConsumerGroupId: "exists", AckIds: []string{"$JS.ACK.KLINGFAN_EVENTS.group-other.1.1.1.1.0"}})
			return err
		}, codes.InvalidArgument},
		{"wildcard ack id", func() error {
			_, err := h.groups.AckEvents(ctx, &gatewayv1.AckEventsRequest{ConsumerGroupId: "exists", AckIds: []string{"$JS.ACK.KLINGFAN_EVENTS.group-exists.*.1.1.1.0"}})
			return err
		}, codes.InvalidArgument},
		{"consume unknown group", func() error {
			stream, err := h.groups.Consume(ctx, &gatewayv1.ConsumeRequest{ConsumerGroupId: "nope"})
			if err != nil {
				return err
			}
			_, err = stream.Recv()
			return err
		}, codes.NotFound},
		{"update without mask", func() error {
			_, err := h.groups.UpdateConsumerGroup(ctx, &gatewayv1.UpdateConsumerGroupRequest{ConsumerGroup: &gatewayv1.ConsumerGroup{Id: "exists"}})
			return err
		}, codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if got := status.Code(err); got != tc.want {
				t.Errorf("code %s (%v), want %s", got, err, tc.want)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatal(err)
			}
		})
	}
}

// TestSeekReplays: seeking a group to the beginning replays events it had
// already acknowledged, to the members already attached.
func TestSeekReplays(t *testing.T) {
	h := start(t, "")
	h.create(&gatewayv1.ConsumerGroup{}, "replay")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream := h.consume(ctx, "replay", 10)
	h.post(2)
	recvAck := func() string {
		t.Helper()
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.groups.AckEvents(ctx, &gatewayv1.AckEventsRequest{ConsumerGroupId: "replay", AckIds: []string{resp.GetAckId()}}); err != nil {
			t.Fatal(err)
		}
		return resp.GetEvent().GetJob().GetJobId()
	}
	// h.post delivers concurrently, so the log order of the two is open.
	pair := func() string {
		a, b := recvAck(), recvAck()
		return min(a, b) + " " + max(a, b)
	}
	if got := pair(); got != "job-0 job-1" {
		t.Fatalf("got %s; want job-0 and job-1", got)
	}
	if _, err := h.groups.SeekConsumerGroup(ctx, &gatewayv1.SeekConsumerGroupRequest{Id: "replay", Start: &gatewayv1.SeekConsumerGroupRequest_FromBeginning{FromBeginning: true}}); err != nil {
		t.Fatal(err)
	}
	if got := pair(); got != "job-0 job-1" {
		t.Errorf("after seeking to the beginning got %s; want job-0 and job-1 again", got)
	}
}

// TestDeleteEndsMembers: deleting a group ends its members' streams with
// NOT_FOUND, as the API promises.
func TestDeleteEndsMembers(t *testing.T) {
	h := start(t, "")
	h.create(&gatewayv1.ConsumerGroup{}, "doomed")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream := h.consume(ctx, "doomed", 1)
	if _, err := h.groups.DeleteConsumerGroup(ctx, &gatewayv1.DeleteConsumerGroupRequest{Id: "doomed"}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.NotFound {
		t.Errorf("member stream after delete: %v, want NOT_FOUND", err)
	}
	if _, err := h.groups.DeleteConsumerGroup(ctx, &gatewayv1.DeleteConsumerGroupRequest{Id: "doomed"}); status.Code(err) != codes.NotFound {
		t.Errorf("second delete: %v, want NOT_FOUND", err)
	}
}
