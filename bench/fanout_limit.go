package bench

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/hub"
	"github.com/klingfan/klingfan/internal/ingest"
	"github.com/klingfan/klingfan/internal/normalize"
)

// fanoutWindow is how many events the fan-out alone lets its subscribers
// fall behind by: far below bareBuffer, so the bare server drops none.
const fanoutWindow = 256

// runFanoutAlone measures the fan-out under the ingest rows whose
// subscribers receive every event: the bare gRPC server of the latency
// scenario (bareFanout: one goroutine per stream, each event encoded once
// for all) sending each event to subs streams of this process, drained by
// the same harness subscribers those rows use, for warmup+dur. Events
// (normalized from the bodies the load sends, basic view, as the rows'
// subscribers receive them) are handed over as fast as the subscribers
// take them, at most fanoutWindow ahead: gRPC then batches its writes as
// well as it can, so this is the least the sends cost. No log, no HTTP, no
// hub. Deliveries per second is events handed to every stream.
func (r *runner) runFanoutAlone(ctx context.Context, subs int) (LoadResult, error) {
	b, addr, stopServer, err := startBareFanout()
	if err != nil {
		return LoadResult{}, err
	}
	defer stopServer()
	sub, err := startSubscribers(ctx, addr, subs, 25, everyEvent, nil)
	if err != nil {
		return LoadResult{}, err
	}
	defer sub.close()

	// A few distinct events, each with a fixed sequence: the items made of
	// them are new per hand-over (and so encoded once each, as the hub
	// encodes each event once), but the events are never modified while a
	// stream may be encoding one.
	const distinct = 64
	tag := fmt.Sprintf("fanout-%d", time.Now().UnixNano())
	events := make([]*gatewayv1.Event, distinct)
	for i := range events {
		body := appendBody(nil, hotJob(i), []byte("klingbench "+tag+" "+strconv.Itoa(i)))
		norm, err := normalize.Normalize(body)
		if err != nil {
			return LoadResult{}, err
		}
		ev := norm.Event
		ev.WebhookId, ev.DeliveryId = "default", tag+"-"+strconv.Itoa(i)
		ev.Id = ingest.EventID(ev.WebhookId, ev.DeliveryId)
		ev.ReceivedAt = timestamppb.Now()
		ev.Sequence = uint64(i + 1) //nolint:gosec // i < distinct
		events[i] = ev
	}

	stop := r.profile(fmt.Sprintf("ingest-fanout-alone-%d", subs))
	measureFrom := time.Now().Add(r.cfg.Warmup)
	stopAt := measureFrom.Add(r.cfg.IngestDuration)
	var (
		cpu        cpuMeter
		sent, from int64
		measuring  bool
	)
	for ctx.Err() == nil {
		now := time.Now()
		if now.After(stopAt) {
			break
		}
		if !measuring && !now.Before(measureFrom) {
			measuring, cpu, from = true, startCPU(), sent
		}
		// Wait for the subscribers to come within the window; polling a
		// counter, which costs this process next to nothing.
		if sent-sub.received.Load()/int64(subs) >= fanoutWindow {
			time.Sleep(200 * time.Microsecond)
			continue
		}
		for range fanoutWindow / 4 {
			b.publish(&hub.Item{Event: events[sent%distinct]})
			sent++
		}
	}
	elapsed := time.Since(measureFrom)
	lr := LoadResult{Concurrency: 1, Subscribers: subs, Seconds: round2(elapsed.Seconds())}
	if measuring && elapsed > 0 {
		lr.Requests = int(sent - from)
		lr.PerSecond = float64(int64(float64(sent-from) / elapsed.Seconds()))
		lr.Cores, lr.OtherCores = cpu.cores(), cpu.others()
	}
	stop()
	// Every event handed over must reach every stream, or the figure is
	// not a fan-out's.
	want := sent * int64(subs)
	_ = waitFor(ctx, 30*time.Second, func() bool { return sub.received.Load() >= want })
	lr.Missing = max(0, want-sub.received.Load())
	lr.StreamError = sub.streamErr()
	r.logf("  %-36s %d subs %8.0f events/s  cores %.2f (others %.2f)  missing %d",
		"fan-out alone (bare gRPC, no log)", subs, lr.PerSecond, lr.Cores, lr.OtherCores, lr.Missing)
	if lr.Missing > 0 {
		return lr, fmt.Errorf("bench: fan-out alone: %d deliveries missing %s", lr.Missing, lr.StreamError)
	}
	return lr, nil
}
