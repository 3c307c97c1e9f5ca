//go:build unix

package crashtest_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/jobstate"
)

// jobKey names one job: the same job id on two registrations is two jobs.
type jobKey struct{ webhook, job string }

// foldLog folds the log the way the projection must: every event, in
// sequence order, per job.
func foldLog(events []*gatewayv1.Event) map[jobKey]*gatewayv1.JobState {
	want := make(map[jobKey]*gatewayv1.JobState)
	for _, ev := range events {
		if ev.GetJob().GetJobId() == "" {
			continue
		}
		k := jobKey{ev.GetWebhookId(), ev.GetJob().GetJobId()}
		want[k], _ = jobstate.Fold(want[k], ev)
	}
	return want
}

// checkJobs compares GetJob with a fold of the log for every job, until
// they all agree or the projection had a minute to catch up after the
// crashes. It returns the disagreements left.
func checkJobs(ctx context.Context, addr string, events []*gatewayv1.Event) (jobCount int, problems []string, err error) {
	conn, err := dial(addr)
	if err != nil {
		return 0, nil, err
	}
	defer conn.Close()
	client := gatewayv1.NewJobServiceClient(conn)
	want := foldLog(events)
	pending := make([]jobKey, 0, len(want))
	for k := range want {
		pending = append(pending, k)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		var (
			mu    sync.Mutex
			wrong []jobKey
			last  = map[jobKey]string{}
		)
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(8)
		for _, k := range pending {
			g.Go(func() error {
				resp, err := client.GetJob(authCtx(gctx), &gatewayv1.GetJobRequest{JobId: k.job, WebhookId: k.webhook})
				var problem string
				switch {
				case err != nil:
					problem = err.Error()
				case !proto.Equal(resp.GetJobState(), want[k]):
					problem = fmt.Sprintf("got %v, the log folds to %v", resp.GetJobState(), want[k])
				default:
					return nil
				}
				mu.Lock()
				wrong = append(wrong, k)
				last[k] = problem
				mu.Unlock()
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return len(want), nil, err
		}
		if len(wrong) == 0 || time.Now().After(deadline) {
			for _, k := range wrong {
				problems = append(problems, fmt.Sprintf("GetJob(%s on %s): %s", k.job, k.webhook, last[k]))
			}
			return len(want), problems, nil
		}
		pending = wrong
		select {
		case <-ctx.Done():
			return len(want), nil, ctx.Err()
		case <-time.After(200 * time.Millisecond): // polling the projection's catch-up
		}
	}
}
