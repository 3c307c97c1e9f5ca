package bench

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/ingest"
	"github.com/klingfan/klingfan/internal/normalize"
	"github.com/klingfan/klingfan/internal/store"
)

// runLogOnly measures the physical limit under klingfan's ingest on this
// machine: conc goroutines appending distinct events (each normalized from
// the same kind of body the load sends, raw body included, as ingest
// stores them) straight to a fresh embedded store with store.Append, no
// HTTP and no signature check, for warmup+dur; syncAlways fsyncs before
// each append returns, as --sync always does. klingfan's ingest cannot
// run faster than this; the HMAC-only baseline shows the HTTP side alone.
func (r *runner) runLogOnly(ctx context.Context, conc int, syncAlways bool) (LoadResult, error) {
	dir, err := newDataDir()
	if err != nil {
		return LoadResult{}, err
	}
	defer r.removeDir(dir)
	s, err := store.Open(ctx, store.Config{DataDir: dir, Logger: r.log, SyncAlways: syncAlways})
	if err != nil {
		return LoadResult{}, err
	}
	defer s.Close()
	name := fmt.Sprintf("ingest-log-only-c%d", conc)
	if syncAlways {
		name = fmt.Sprintf("ingest-log-only-sync-always-c%d", conc)
	}
	stop := r.profile(name)
	defer stop()

	tag := fmt.Sprintf("log-c%d-%d", conc, time.Now().UnixNano())
	lr := closedLoop(ctx, conc, r.cfg.Warmup, r.cfg.IngestDuration, func(w int) loopWorker {
		body := make([]byte, 0, 1024)
		var ev *gatewayv1.Event
		return loopWorker{
			prepare: func(i int) error {
				prompt := []byte("klingbench log " + tag + " " + strconv.Itoa(w) + " " + strconv.Itoa(i))
				body = appendBody(body[:0], hotJob(w+i), prompt)
				norm, err := normalize.Normalize(body)
				if err != nil {
					return err
				}
				ev = norm.Event
				ev.WebhookId = "default"
				ev.DeliveryId = tag + "-" + strconv.Itoa(w) + "-" + strconv.Itoa(i)
				ev.Id = ingest.EventID(ev.WebhookId, ev.DeliveryId)
				ev.ReceivedAt = timestamppb.Now()
				ev.RawBody = body
				return nil
			},
			call: func() error {
				_, _, err := s.Append(ctx, ev)
				return err
			},
		}
	})
	r.logf("  %-36s c=%-3d %8.0f/s  p50 %6.2f ms  p99 %6.2f ms  errors %d  cores %.2f (others %.2f)",
		map[bool]string{false: "log only (store.Append, no HTTP)", true: "log only, sync always"}[syncAlways], conc, lr.PerSecond, lr.Latency.P50, lr.Latency.P99, lr.Errors, lr.Cores, lr.OtherCores)
	return lr, nil
}
