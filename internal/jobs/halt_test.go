package jobs_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/hub"
	"github.com/klingfan/klingfan/internal/jobs"
)

// haltingLog is the hub, with the projection's stop arriving while the hub
// is handing it event at: the events the hub has already read from the log
// keep coming, as they do when a stop lands mid catch-up.
type haltingLog struct {
	h    *hub.Hub
	at   uint64
	stop context.CancelFunc
}

func (l haltingLog) Follow(ctx context.Context, after uint64, fn func(*gatewayv1.Event)) error {
	return l.h.Follow(ctx, after, func(ev *gatewayv1.Event) {
		if ev.GetSequence() == l.at {
			l.stop()
		}
		fn(ev)
	})
}

// A projection stopped while the tail is still handing it events leaves no
// hole: every state counts every event of its job through its
// last_sequence, and the checkpoint covers only events that were folded.
func TestProjectionHaltLeavesNoHole(t *testing.T) {
	for _, at := range []uint64{20, 150, 300} {
		t.Run(fmt.Sprint("stop at ", at), func(t *testing.T) {
			s := openStore(t, t.TempDir())
			a := &appender{s: s}
			var last uint64
			for i := range 400 {
				last = a.add(t, "w1", &gatewayv1.Job{JobId: fmt.Sprintf("job-%d", i%40),
					Status: gatewayv1.JobStatus_JOB_STATUS_PROCESSING, UpdatedAt: timestamppb.New(time.Now())})
			}
			h := hub.New(hub.Config{Log: s})
			ctx, cancel := context.WithCancel(context.Background())
			p, err := jobs.Open(context.Background(), jobs.Config{Store: s, Log: haltingLog{h: h, at: at, stop: cancel},
				Metrics: jobs.NewMetrics(prometheus.NewRegistry()), Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			tailed := make(chan struct{})
			go func() {
				defer close(tailed)
				_ = s.Tail(ctx, 0, h.Publish)
			}()
			if err := p.Run(ctx); err != nil {
				t.Fatal(err)
			}
			<-tailed
			h.Close()

			// A second replica resumes from the checkpoint and must end
			// with every job's full count.
			r := runReplica(t, s)
			r.waitFolded(t, last)
			for job := range 40 {
				st, err := r.p.Get(context.Background(), "w1", fmt.Sprintf("job-%d", job))
				if err != nil {
					t.Fatal(err)
				}
				if st.GetEventCount() != 10 {
					t.Errorf("job-%d: event_count %d after the restart, the log has 10 (stopped at %d, first replica folded %d)",
						job, st.GetEventCount(), at, p.Folded())
				}
			}
		})
	}
}
