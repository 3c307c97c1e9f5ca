package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/klingfan/klingfan/client"
	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// PhaseGroups is the consumer-group scenario: events acknowledged per
// second by a group of members, next to plain Subscribe over the same
// events, and how long a dead member's events take to reach the others.
const PhaseGroups = "groups"

// Consumer-group scenario sizes.
const (
	groupEvents      = 100_000 // events in the log the group reads
	groupMembers     = 4
	groupConcurrency = 8   // handlers per member (client.WithConcurrency)
	groupMaxInFlight = 512 // unacknowledged deliveries per member
	// groupAckWait is the redelivery part's ack_wait, short so the run
	// stays short; the latency after a member dies is about this long.
	groupAckWait = 2 * time.Second
	// redeliveryHeld is how many events the member that dies holds.
	redeliveryHeld = 100
	// targetGroupAckedPerSec is the target for a group of four.
	targetGroupAckedPerSec = 20_000
)

// GroupsResult is the consumer-group scenario's figures.
type GroupsResult struct {
	Events      int `json:"events"`
	Members     int `json:"members"`
	Concurrency int `json:"handlers_per_member"`
	MaxInFlight int `json:"max_in_flight_per_member"`
	// SubscribePerSecond is one client.Subscribe reading the same events
	// from the same log in the same run: the baseline of the ratio.
	SubscribePerSecond float64 `json:"subscribe_per_second"`
	// SubscribeCPUMicros and CPUMicros are the harness process's CPU time
	// (server and clients together) per event, for Subscribe and for the
	// group: unlike a rate they hold on a machine others share, and
	// 2e6 / CPUMicros is what two idle cores could sustain.
	SubscribeCPUMicros float64 `json:"subscribe_cpu_us_per_event"`
	CPUMicros          float64 `json:"cpu_us_per_event"`
	// AckedPerSecond counts until the group reports nothing pending and
	// nothing awaiting an ack, so every acknowledgement has reached
	// JetStream.
	AckedPerSecond float64 `json:"acked_per_second"`
	Ratio          float64 `json:"ratio"`
	// Duplicates and Missing count events handled more than once or never
	// (both must be 0: members that ack see every event once).
	Duplicates int     `json:"duplicates"`
	Missing    int     `json:"missing"`
	Cores      float64 `json:"cores"`
	OtherCores float64 `json:"other_cores"`

	Redelivery *RedeliveryResult `json:"redelivery,omitempty"`
}

// RedeliveryResult is how long the events a dead member held took to reach
// a surviving member.
type RedeliveryResult struct {
	AckWaitSeconds float64 `json:"ack_wait_seconds"`
	Events         int     `json:"events"`
	// AfterKill runs from the dead member's connection closing;
	// AfterDelivery from when it had received each event. JetStream
	// redelivers once ack_wait has passed since the first delivery.
	AfterKill     Percentiles `json:"after_kill"`
	AfterDelivery Percentiles `json:"after_delivery"`
}

// errGroupDone ends the baseline subscription once it has every event.
var errGroupDone = errors.New("bench: all events received")

// runGroups fills a fresh log, then measures the baseline, the group and
// the redelivery on one server.
func (r *runner) runGroups(ctx context.Context) (*GroupsResult, error) {
	dir, err := newDataDir()
	if err != nil {
		return nil, err
	}
	defer r.removeDir(dir)
	r.logf("groups: filling a fresh log with %d events", groupEvents)
	if _, err := fillLog(ctx, dir, groupEvents); err != nil {
		return nil, err
	}
	srv, err := startServer(ctx, dir, r.log, nil)
	if err != nil {
		return nil, err
	}
	defer srv.stopLogged()
	admin, err := dialClient(ctx, srv)
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	// A fresh server folds the whole log into job states first; measure
	// after that, so the figures are the group's and Subscribe's alone.
	if err := waitFor(ctx, 5*time.Minute, func() bool { return foldedSequence(srv) >= groupEvents }); err != nil {
		return nil, fmt.Errorf("bench: job projection did not catch up: %w", err)
	}

	res := &GroupsResult{Events: groupEvents, Members: groupMembers, Concurrency: groupConcurrency, MaxInFlight: groupMaxInFlight}
	if res.SubscribePerSecond, res.SubscribeCPUMicros, err = r.groupBaseline(ctx, admin); err != nil {
		return nil, err
	}
	if err := r.groupThroughput(ctx, srv, admin, res); err != nil {
		return nil, err
	}
	res.Ratio = round2(res.AckedPerSecond / res.SubscribePerSecond)
	r.logf("  group of %d: %.0f events/s acknowledged = %.2f× Subscribe (%.0f/s); %.1f µs CPU per event; %d duplicates, %d missing; cores %.2f, others %.2f",
		groupMembers, res.AckedPerSecond, res.Ratio, res.SubscribePerSecond, res.CPUMicros, res.Duplicates, res.Missing, res.Cores, res.OtherCores)
	if res.Redelivery, err = r.groupRedelivery(ctx, srv, admin); err != nil {
		return res, err
	}
	return res, nil
}

// dialClient connects the public Go client to srv with the bench token.
func dialClient(ctx context.Context, srv *server) (*client.Client, error) {
	return client.Dial(ctx, srv.grpcAddr, client.WithInsecure(), client.WithToken(benchToken))
}

// groupBaseline times one client.Subscribe reading every event of the log
// with a handler that does nothing.
func (r *runner) groupBaseline(ctx context.Context, c *client.Client) (perSec, cpuMicros float64, err error) {
	r.logf("groups: baseline, one Subscribe reading %d events", groupEvents)
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	stop := r.profile("groups-subscribe")
	defer stop()
	n := 0
	cpu := startCPU()
	start := time.Now()
	err = c.Subscribe(sctx, &gatewayv1.SubscribeRequest{Start: &gatewayv1.SubscribeRequest_FromBeginning{FromBeginning: true}},
		func(context.Context, *gatewayv1.Event) error {
			if n++; n == groupEvents {
				return errGroupDone
			}
			return nil
		})
	if !errors.Is(err, errGroupDone) {
		return 0, 0, fmt.Errorf("bench: baseline subscription after %d events: %w", n, err)
	}
	took := time.Since(start)
	cpuMicros = cpuPerEvent(cpu, groupEvents)
	perSec = float64(int64(float64(groupEvents) / took.Seconds()))
	r.logf("  %.0f events/s, %.1f µs CPU per event (cores %.2f, others %.2f)", perSec, cpuMicros, cpu.cores(), cpu.others())
	return perSec, cpuMicros, nil
}

// groupThroughput has groupMembers members, each on its own connection as
// separate replicas would be, consume every event of the log and ack it.
func (r *runner) groupThroughput(ctx context.Context, srv *server, admin *client.Client, res *GroupsResult) error {
	r.logf("groups: %d members × %d handlers acknowledging %d events", groupMembers, groupConcurrency, groupEvents)
	groups := admin.ConsumerGroups()
	if _, err := groups.CreateConsumerGroup(ctx, &gatewayv1.CreateConsumerGroupRequest{
		ConsumerGroupId: "bench",
		ConsumerGroup:   &gatewayv1.ConsumerGroup{Start: &gatewayv1.ConsumerGroup_FromBeginning{FromBeginning: true}},
	}); err != nil {
		return err
	}
	seen := make([]atomic.Uint32, groupEvents+1)
	var handled atomic.Int64
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	memberErrs := make(chan error, groupMembers)

	stop := r.profile("groups-consume")
	cpu := startCPU()
	start := time.Now()
	for range groupMembers {
		c, err := dialClient(ctx, srv)
		if err != nil {
			return err
		}
		defer c.Close()
		wg.Go(func() {
			err := c.Consume(mctx, "bench", func(_ context.Context, ev *gatewayv1.Event) error {
				if seq := ev.GetSequence(); seq < uint64(len(seen)) {
					seen[seq].Add(1)
				}
				handled.Add(1)
				return nil
			}, client.WithConcurrency(groupConcurrency), client.WithMaxInFlight(groupMaxInFlight))
			if mctx.Err() == nil {
				memberErrs <- err
			}
		})
	}
	settled := func() bool {
		if handled.Load() < groupEvents {
			return false
		}
		resp, err := groups.GetConsumerGroup(ctx, &gatewayv1.GetConsumerGroupRequest{Id: "bench"})
		g := resp.GetConsumerGroup()
		return err == nil && g.GetPending() == 0 && g.GetAckPending() == 0
	}
	err := waitFor(ctx, 3*time.Minute, func() bool {
		select {
		case err := <-memberErrs:
			memberErrs <- err
			return true
		default:
		}
		return settled()
	})
	took := time.Since(start)
	res.Cores, res.OtherCores = cpu.cores(), cpu.others()
	res.CPUMicros = cpuPerEvent(cpu, groupEvents)
	stop()
	cancel()
	wg.Wait()
	select {
	case merr := <-memberErrs:
		return fmt.Errorf("bench: group member: %w", merr)
	default:
	}
	if err != nil {
		return fmt.Errorf("bench: group after %d of %d events: %w", handled.Load(), groupEvents, err)
	}
	res.AckedPerSecond = float64(int64(float64(groupEvents) / took.Seconds()))
	for seq := 1; seq < len(seen); seq++ {
		switch n := seen[seq].Load(); {
		case n == 0:
			res.Missing++
		case n > 1:
			res.Duplicates++
		}
	}
	return nil
}

// groupRedelivery lets one member take redeliveryHeld new events and die
// (its connection closes, nothing acknowledged) while another member is
// attached, and times each event's arrival at the survivor.
func (r *runner) groupRedelivery(ctx context.Context, srv *server, admin *client.Client) (*RedeliveryResult, error) {
	r.logf("groups: redelivery after a member holding %d events dies (ack_wait %s)", redeliveryHeld, groupAckWait)
	const id = "bench-redelivery"
	if _, err := admin.ConsumerGroups().CreateConsumerGroup(ctx, &gatewayv1.CreateConsumerGroupRequest{
		ConsumerGroupId: id,
		ConsumerGroup:   &gatewayv1.ConsumerGroup{AckWait: durationpb.New(groupAckWait)},
	}); err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()

	// The member that dies: a bare stream, so nothing acknowledges.
	conn, err := grpc.NewClient(srv.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	doomed, err := gatewayv1.NewConsumerGroupServiceClient(conn).Consume(authContext(rctx),
		&gatewayv1.ConsumeRequest{ConsumerGroupId: id, MaxInFlight: redeliveryHeld})
	if err != nil {
		return nil, err
	}
	if _, err := doomed.Header(); err != nil {
		return nil, err
	}
	hc := newHTTPClient(8)
	defer hc.CloseIdleConnections()
	for i := range redeliveryHeld {
		if err := post(rctx, hc, srv.httpURL+"/webhooks/klingai", appendBody(nil, "kb-redeliver-"+strconv.Itoa(i), nil)); err != nil {
			return nil, fmt.Errorf("bench: post: %w", err)
		}
	}
	delivered := make(map[uint64]time.Time, redeliveryHeld)
	for len(delivered) < redeliveryHeld {
		d, err := doomed.Recv()
		if err != nil {
			return nil, fmt.Errorf("bench: the member that dies, after %d deliveries: %w", len(delivered), err)
		}
		delivered[d.GetEvent().GetSequence()] = time.Now()
	}

	// The survivor is attached (and idle) before the other member dies.
	survivor, err := dialClient(ctx, srv)
	if err != nil {
		return nil, err
	}
	defer survivor.Close()
	var mu sync.Mutex
	arrived := make(map[uint64]time.Time, redeliveryHeld)
	done := make(chan error, 1)
	go func() {
		done <- survivor.Consume(rctx, id, func(_ context.Context, ev *gatewayv1.Event) error {
			mu.Lock()
			defer mu.Unlock()
			if _, ok := arrived[ev.GetSequence()]; !ok {
				arrived[ev.GetSequence()] = time.Now()
			}
			return nil
		}, client.WithConcurrency(groupConcurrency))
	}()
	if err := waitFor(rctx, 10*time.Second, func() bool { return groupMembersOf(rctx, admin, id) == 2 }); err != nil {
		return nil, fmt.Errorf("bench: survivor did not attach: %w", err)
	}
	killed := time.Now()
	_ = conn.Close()
	err = waitFor(rctx, 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(arrived) >= redeliveryHeld
	})
	cancel()
	if cerr := <-done; cerr != nil && !errors.Is(cerr, context.Canceled) && err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("bench: redelivered %d of %d events: %w", len(arrived), redeliveryHeld, err)
	}
	var afterKill, afterDelivery []int64
	for seq, at := range arrived {
		first, ok := delivered[seq]
		if !ok {
			return nil, fmt.Errorf("bench: the survivor got sequence %d, which the dead member never held", seq)
		}
		afterKill = append(afterKill, int64(at.Sub(killed)))
		afterDelivery = append(afterDelivery, int64(at.Sub(first)))
	}
	res := &RedeliveryResult{
		AckWaitSeconds: groupAckWait.Seconds(),
		Events:         redeliveryHeld,
		AfterKill:      percentiles(afterKill),
		AfterDelivery:  percentiles(afterDelivery),
	}
	r.logf("  redelivered after the kill: p50 %.0f ms, max %.0f ms; after the first delivery: p50 %.0f ms, max %.0f ms",
		res.AfterKill.P50, res.AfterKill.Max, res.AfterDelivery.P50, res.AfterDelivery.Max)
	return res, nil
}

// foldedSequence reads how far the server's job projection has folded the
// log, from its metrics; 0 when it cannot be read.
func foldedSequence(srv *server) float64 {
	resp, err := http.Get(srv.httpURL + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "klingfan_jobs_folded_sequence "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// cpuPerEvent is the process's CPU time per event over a measured span.
func cpuPerEvent(m cpuMeter, events int) float64 {
	return round2(float64(cpuTime()-m.cpu) / 1e3 / float64(events))
}

// groupMembersOf is the group's member count, or -1 when it cannot be read.
func groupMembersOf(ctx context.Context, c *client.Client, id string) int {
	resp, err := c.ConsumerGroups().GetConsumerGroup(ctx, &gatewayv1.GetConsumerGroupRequest{Id: id})
	if err != nil {
		return -1
	}
	return int(resp.GetConsumerGroup().GetMembers())
}

// groupChecks are the scenario's rows of the summary table.
func groupChecks(g *GroupsResult) []Check {
	if g == nil {
		return nil
	}
	out := []Check{{
		Figure: fmt.Sprintf("Consumer group of %d members (%d handlers, %d in flight each) acknowledging %d stored events", g.Members, g.Concurrency, g.MaxInFlight, g.Events),
		Measured: fmt.Sprintf("%.0f events/s acknowledged, %.2f× one Subscribe (%.0f events/s) in the same run; CPU per event %.0f µs (Subscribe %.0f µs), i.e. %.0f events/s if the process had both cores; %d duplicates, %d missing",
			g.AckedPerSecond, g.Ratio, g.SubscribePerSecond, g.CPUMicros, g.SubscribeCPUMicros, 2e6/max(g.CPUMicros, 1), g.Duplicates, g.Missing),
		Reference: fmt.Sprintf("≥ %d events/s", targetGroupAckedPerSec),
		Ratio:     g.Ratio,
		Holds:     holds(g.Duplicates == 0 && g.Missing == 0 && g.AckedPerSecond >= targetGroupAckedPerSec),
	}}
	if rd := g.Redelivery; rd != nil {
		out = append(out, Check{
			Figure: fmt.Sprintf("Redelivery to a surviving member after one holding %d events dies (ack_wait %.0f s)", rd.Events, rd.AckWaitSeconds),
			Measured: fmt.Sprintf("after the kill p50 %.0f ms, max %.0f ms; after the first delivery p50 %.0f ms, max %.0f ms",
				rd.AfterKill.P50, rd.AfterKill.Max, rd.AfterDelivery.P50, rd.AfterDelivery.Max),
			Reference: "no target; bounded by ack_wait after the first delivery",
		})
	}
	return out
}
