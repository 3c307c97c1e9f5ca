package client_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/klingfan/klingfan/client"
	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
)

// waitResult is what a WaitJob call running in the background returned.
type waitResult struct {
	st  *gatewayv1.JobState
	err error
}

// waitInBackground runs WaitJob on its own goroutine.
func waitInBackground(ctx context.Context, c *client.Client, job string) <-chan waitResult {
	done := make(chan waitResult, 1)
	go func() {
		st, err := c.WaitJob(ctx, job, client.WithWaitBackoff(client.Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond}))
		done <- waitResult{st, err}
	}()
	return done
}

// TestWaitJob: WaitJob returns the job's final state however the final
// event and the call are ordered, and gives up with the state it knew.
func TestWaitJob(t *testing.T) {
	c := dial(t, server.GRPC)
	cases := []struct {
		name   string
		before []string // Kling events posted before WaitJob is called
		during []string // posted while it waits
		want   gatewayv1.JobStatus
	}{
		{name: "finished before the call", before: []string{"video.processing", "video.failed"}, want: gatewayv1.JobStatus_JOB_STATUS_FAILED},
		{name: "finishes while waiting", before: []string{"video.processing"}, during: []string{"video.completed"}, want: gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED},
		{name: "cancelled", before: []string{"video.processing"}, during: []string{"video.cancelled"}, want: gatewayv1.JobStatus_JOB_STATUS_CANCELLED},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			job := "wait-" + strings.ReplaceAll(tc.name, " ", "-")
			for _, name := range tc.before {
				postNamed(server, name, job)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			done := waitInBackground(ctx, c, job)
			for _, name := range tc.during {
				postNamed(server, name, job)
			}
			r := <-done
			if r.err != nil || r.st.GetJob().GetStatus() != tc.want || r.st.GetJobId() != job {
				t.Fatalf("WaitJob returned %v, %v; want %v", r.st, r.err, tc.want)
			}
			if got := r.st.GetEventCount(); got != uint64(len(tc.before)+len(tc.during)) {
				t.Errorf("state folded from %d events, want %d", got, len(tc.before)+len(tc.during))
			}
		})
	}

	t.Run("gives up with the state it knew", func(t *testing.T) {
		postNamed(server, "video.processing", "wait-running")
		apptest.Eventually(t, 20*time.Second, "the job projected as processing", func() bool {
			resp, err := c.Jobs().GetJob(context.Background(), &gatewayv1.GetJobRequest{JobId: "wait-running"})
			return err == nil && resp.GetJobState().GetJob().GetStatus() == gatewayv1.JobStatus_JOB_STATUS_PROCESSING
		})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, err := c.WaitJob(ctx, "wait-running")
		if !errors.Is(err, context.DeadlineExceeded) && status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("WaitJob returned %v, want the context's deadline", err)
		}
		if st.GetJob().GetStatus() != gatewayv1.JobStatus_JOB_STATUS_PROCESSING {
			t.Errorf("last known state %v, want processing", st)
		}
	})
}

// TestWaitJobAcrossRestart: a job the server has not seen yet is followed
// from the beginning of the log, and the wait outlives a server restart.
func TestWaitJobAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	srv := apptest.Start(t, dir, apptest.WithEnv("KLINGAI_WEBHOOK_SECRET", secret))
	c := dial(t, srv.GRPC)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := waitInBackground(ctx, c, "wait-restart")
	apptest.Eventually(t, 20*time.Second, "WaitJob's subscription", func() bool { return subscribers(t, srv) == "1" })

	srv.Stop(t)
	srv2 := apptest.Start(t, dir, apptest.WithEnv("KLINGAI_WEBHOOK_SECRET", secret), sameGRPCAddr(t, srv.GRPC))
	postNamed(srv2, "video.processing", "wait-restart")
	postNamed(srv2, "video.completed", "wait-restart")
	r := <-done
	if r.err != nil || r.st.GetJob().GetStatus() != gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED || r.st.GetEventCount() != 2 {
		t.Fatalf("WaitJob returned %v, %v; want succeeded after 2 events", r.st, r.err)
	}
}

// subscribers reads srv's live subscription count from /metrics.
func subscribers(t *testing.T, srv *apptest.Server) string {
	t.Helper()
	resp, err := http.Get(srv.HTTPURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "klingfan_hub_subscribers "); ok {
			return v
		}
	}
	return ""
}
