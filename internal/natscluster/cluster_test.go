package natscluster_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/natscluster"
	"github.com/klingfan/klingfan/internal/store"
)

// A delivery taken by one replica reaches the subscribers of every replica;
// a redelivery to the other replica is acknowledged but logged once; and a
// secret rotated through one replica is honoured by the other at once.
func TestCrossReplicaFanOut(t *testing.T) {
	h := newHarness(t)
	a, b := h.replica("a"), h.replica("b")
	onA := subscribe(t, a, &gatewayv1.SubscribeRequest{})
	onB := subscribe(t, b, &gatewayv1.SubscribeRequest{})

	first, second, marker := newDelivery("job-a-1"), newDelivery("job-b-1"), newDelivery("job-a-2")
	a.mustPost(t, first)
	onB.waitFor(t, 1, 10*time.Second, "the subscriber on B to receive a delivery taken by A")
	b.mustPost(t, second)
	onA.waitFor(t, 2, 10*time.Second, "the subscriber on A to receive a delivery taken by B")

	// Each delivery again, through the other replica: deduplication is
	// the stream's, not a replica's.
	b.mustPost(t, first)
	a.mustPost(t, second)
	// Once the marker arrives, a duplicate would have arrived before it.
	a.mustPost(t, marker)
	want := []string{first.job, second.job, marker.job}
	for name, sub := range map[string]*subscriber{"a": onA, "b": onB} {
		sub.waitFor(t, 3, 10*time.Second, "the marker on "+name)
		seqs, jobs, err := sub.received()
		if !slices.Equal(jobs, want) || err != nil {
			t.Errorf("subscriber on %s received %v (sequences %v, err %v), want %v", name, jobs, seqs, err, want)
		}
		checkContiguous(t, "subscriber on "+name, seqs, 1, 3)
	}
	checkExactlyOnce(t, b.listAll(t), want)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const rotated = "rotated-cluster-secret"
	if _, err := a.webhooks.RotateWebhookSecret(ctx, &gatewayv1.RotateWebhookSecretRequest{
		Id: "default", Secret: rotated, GracePeriod: durationpb.New(0),
	}); err != nil {
		t.Fatalf("rotate the secret on A: %v", err)
	}
	apptest.Eventually(t, 5*time.Second, "B to accept the secret rotated on A", func() bool {
		status, err := b.post(newDelivery("job-rotated"), rotated)
		return err == nil && status == http.StatusOK
	})
	if status, err := b.post(newDelivery("job-old-secret"), secret); err != nil || status != http.StatusUnauthorized {
		t.Errorf("B with the revoked secret: status %d, err %v; want 401", status, err)
	}
}

// When a klingfan replica stops, its subscribers resume on another replica
// with after_sequence and see every event exactly once, although
// deliveries kept arriving meanwhile.
func TestReplicaFailover(t *testing.T) {
	h := newHarness(t)
	a, b := h.replica("a"), h.replica("b")
	sub := subscribe(t, a, &gatewayv1.SubscribeRequest{})

	n := 10
	if longRun() {
		n = 200
	}
	for i := range n {
		r := []*replica{a, b}[i%2]
		r.mustPost(t, newDelivery(fmt.Sprintf("before-%04d", i)))
	}
	sub.waitFor(t, n, 20*time.Second, "the subscriber on A to receive the first deliveries")

	// Deliveries keep arriving at B while A goes away and the subscriber
	// moves over.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stopLoad := make(chan struct{})
	var sent atomic.Int64
	loadErr := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stopLoad:
				loadErr <- nil
				return
			default:
			}
			if err := deliver(ctx, b, newDelivery(fmt.Sprintf("during-%05d", i))); err != nil {
				loadErr <- err
				return
			}
			sent.Add(1)
		}
	}()

	a.srv.Stop(t)
	if err := sub.waitEnded(t, 20*time.Second); status.Code(err) != codes.Unavailable {
		t.Fatalf("the stream on the stopped replica ended with %v, want UNAVAILABLE", err)
	}
	seenOnA, _, _ := sub.received()
	last := seenOnA[len(seenOnA)-1]
	apptest.Eventually(t, 20*time.Second, "deliveries to B while the subscriber is away", func() bool { return sent.Load() >= 3 })

	resumed := subscribe(t, b, &gatewayv1.SubscribeRequest{Start: &gatewayv1.SubscribeRequest_AfterSequence{AfterSequence: last}})
	// A few more arrive while the resumed stream is live.
	target := sent.Load() + 3
	apptest.Eventually(t, 20*time.Second, "deliveries to B after the resume", func() bool { return sent.Load() >= target })
	close(stopLoad)
	if err := <-loadErr; err != nil {
		t.Fatal(err)
	}

	total := n + int(sent.Load())
	resumed.waitFor(t, total-len(seenOnA), 20*time.Second, "the resumed stream on B to catch up")
	seenOnB, _, err := resumed.received()
	if err != nil {
		t.Errorf("the resumed stream ended: %v", err)
	}
	checkContiguous(t, "events seen on A, then on B", append(seenOnA, seenOnB...), 1, uint64(total))
}

// Killing one NATS node (the events stream's leader) while deliveries
// arrive at both replicas loses no acknowledged delivery and duplicates
// none, and live subscribers on both replicas carry on without a gap.
// The long variant kills and restarts a leader several times.
func TestNATSNodeLossUnderLoad(t *testing.T) {
	h := newHarness(t)
	a, b := h.replica("a"), h.replica("b")
	replicas := []*replica{a, b}
	subs := []*subscriber{subscribe(t, a, &gatewayv1.SubscribeRequest{}), subscribe(t, b, &gatewayv1.SubscribeRequest{})}

	total, workers, kills := 150, 4, 1
	timeout := 90 * time.Second
	if longRun() {
		total, workers, kills = 3000, 8, 3
		timeout = 15 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	var (
		mu     sync.Mutex
		acked  []string
		errs   []error
		nacked atomic.Int64
		wg     sync.WaitGroup
	)
	next := make(chan int)
	go func() {
		defer close(next)
		for i := range total {
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	for range workers {
		wg.Go(func() {
			for i := range next {
				d := newDelivery(fmt.Sprintf("load-%05d", i))
				err := deliver(ctx, replicas[i%2], d)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					acked = append(acked, d.job)
				}
				mu.Unlock()
				if err == nil {
					nacked.Add(1)
				}
			}
		})
	}

	for k := range kills {
		at := int64((k + 1) * total / (kills + 2))
		apptest.Eventually(t, timeout, fmt.Sprintf("%d acknowledged deliveries", at), func() bool { return nacked.Load() >= at })
		leader := h.nats.StreamLeader(store.StreamName)
		if leader < 0 {
			leader = k % h.nats.Nodes()
		}
		t.Logf("stopping NATS node %s (stream leader) after %d acknowledged deliveries", natscluster.NodeName(leader), nacked.Load())
		h.nats.StopNode(leader)
		if k == kills-1 {
			break // the last node stays down: two of three keep quorum
		}
		// Let some deliveries go through on two nodes, then bring the
		// node back before killing the next leader, so quorum holds.
		more := nacked.Load() + int64(total/(4*(kills+2)))
		apptest.Eventually(t, timeout, "deliveries on two nodes", func() bool { return nacked.Load() >= more })
		if err := h.nats.StartNode(leader); err != nil {
			t.Fatal(err)
		}
		h.waitNATS()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for i, err := range errs {
		if i < 5 {
			t.Error(err)
		}
	}
	if len(errs) > 0 {
		t.Fatalf("%d of %d deliveries were never acknowledged", len(errs), total)
	}

	events := a.listAll(t)
	checkExactlyOnce(t, events, acked)
	if got := len(b.listAll(t)); got != len(events) {
		t.Errorf("B lists %d events, A %d", got, len(events))
	}
	for i, sub := range subs {
		sub.waitFor(t, total, 30*time.Second, "the live subscriber on "+replicas[i].name+" to receive every delivery")
		seqs, _, err := sub.received()
		if err != nil {
			t.Errorf("the stream on %s ended: %v", replicas[i].name, err)
		}
		checkContiguous(t, "live subscriber on "+replicas[i].name, seqs, 1, uint64(total))
	}
	for _, r := range replicas {
		if code := r.readyz(); code != http.StatusOK {
			t.Errorf("%s /readyz = %d after losing one node, want 200", r.name, code)
		}
	}
}

// While the whole cluster is down, ingest answers 503, /readyz fails and
// live streams stay open; when the cluster comes back on the same store
// directories, the replicas reconnect on their own, the data and the
// deduplication window are intact, streams resume, and the registry watch
// still works. The long variant goes through several outages.
func TestWholeClusterRestart(t *testing.T) {
	h := newHarness(t)
	a, b := h.replica("a"), h.replica("b")
	replicas := []*replica{a, b}
	live := subscribe(t, b, &gatewayv1.SubscribeRequest{})

	cycles := 1
	if longRun() {
		cycles = 3
	}
	const n = 10
	var jobs []string
	var before []delivery
	for i := range n {
		d := newDelivery(fmt.Sprintf("before-%02d", i))
		replicas[i%2].mustPost(t, d)
		before = append(before, d)
		jobs = append(jobs, d.job)
	}
	live.waitFor(t, n, 10*time.Second, "the deliveries before the outage")

	for cycle := range cycles {
		h.nats.StopAll()
		apptest.Eventually(t, 20*time.Second, "/readyz to fail on both replicas", func() bool {
			return a.readyz() == http.StatusServiceUnavailable && b.readyz() == http.StatusServiceUnavailable
		})
		outage := newDelivery(fmt.Sprintf("during-outage-%d", cycle))
		for _, r := range replicas {
			if code, err := r.post(outage, secret); err != nil || code != http.StatusServiceUnavailable {
				t.Errorf("ingest on %s during the outage: status %d, err %v; want 503", r.name, code, err)
			}
		}
		if _, _, err := live.received(); err != nil {
			t.Fatalf("the live stream ended during the outage: %v", err)
		}

		if err := h.nats.StartAll(); err != nil {
			t.Fatal(err)
		}
		h.waitNATS()
		apptest.Eventually(t, 60*time.Second, "/readyz to pass again on both replicas", func() bool {
			return a.readyz() == http.StatusOK && b.readyz() == http.StatusOK
		})

		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		// Kling retries the delivery refused during the outage.
		if err := deliver(ctx, a, outage); err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, outage.job)
		for i := range n {
			d := newDelivery(fmt.Sprintf("after-%d-%02d", cycle, i))
			if err := deliver(ctx, replicas[i%2], d); err != nil {
				t.Fatal(err)
			}
			jobs = append(jobs, d.job)
		}
		cancel()
		// A redelivery of an old event is still recognised after the restart.
		replicas[(cycle+1)%2].mustPost(t, before[cycle])
		marker := newDelivery(fmt.Sprintf("marker-%d", cycle))
		a.mustPost(t, marker)
		jobs = append(jobs, marker.job)

		live.waitFor(t, len(jobs), 30*time.Second, "the live stream to resume after the restart")
		seqs, got, err := live.received()
		if err != nil {
			t.Errorf("the live stream ended: %v", err)
		}
		if !slices.Equal(got, jobs) {
			t.Errorf("after outage %d the live stream received %v, want %v", cycle+1, got, jobs)
		}
		checkContiguous(t, "live stream across the restart", seqs, 1, uint64(len(jobs)))
		checkExactlyOnce(t, a.listAll(t), jobs)
		if t.Failed() {
			return
		}
	}

	// The registry watch on B survived the outages.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const rotated = "rotated-after-restart"
	if _, err := a.webhooks.RotateWebhookSecret(ctx, &gatewayv1.RotateWebhookSecretRequest{
		Id: "default", Secret: rotated, GracePeriod: durationpb.New(0),
	}); err != nil {
		t.Fatalf("rotate the secret on A: %v", err)
	}
	apptest.Eventually(t, 20*time.Second, "B to accept the secret rotated on A after the restart", func() bool {
		code, err := b.post(newDelivery("job-rotated"), rotated)
		return err == nil && code == http.StatusOK
	})
}

// A replica configured with another replication factor than the cluster's
// stream and bucket refuses to start and names both differences, until
// --nats-update-config applies the new factor deliberately.
func TestReplicasDrift(t *testing.T) {
	h := newHarness(t)
	open := func(replicas int, update bool) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s, err := store.Open(ctx, store.Config{URL: h.nats.URL(), Replicas: replicas, UpdateAssets: update, Logger: h.log})
		if err == nil {
			err = s.Close()
		}
		return err
	}
	if err := open(3, false); err != nil {
		t.Fatal(err)
	}
	err := open(1, false)
	for _, want := range []string{
		"stream KLINGFAN_EVENTS: replicas (--replicas) is 3 on the server, configured 1",
		"key-value bucket klingfan-webhooks: replicas (--replicas) is 3 on the server, configured 1",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open with one replica = %v, want it to report %q", err, want)
		}
	}
	if err := open(1, true); err != nil {
		t.Fatalf("Open with UpdateAssets: %v", err)
	}
	if err := open(1, false); err != nil {
		t.Errorf("Open after the update: %v", err)
	}
}
