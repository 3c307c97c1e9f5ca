package natscluster_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
)

// finishedCount reads klingfan_jobs_finished_total summed over labels from
// a replica's /metrics.
func finishedCount(t *testing.T, r *replica) int {
	t.Helper()
	resp, err := http.Get(r.srv.HTTPURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	total := 0
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "klingfan_jobs_finished_total{") {
			v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			total += int(v)
		}
	}
	return total
}

// Both replicas fold the shared log into the shared job bucket: a job
// taken by A is readable on B, and each finished job is counted by one
// replica only.
func TestJobStateAcrossReplicas(t *testing.T) {
	h := newHarness(t)
	a, b := h.replica("a"), h.replica("b")
	const n = 20
	for i := range n {
		r := a
		if i%2 == 1 {
			r = b
		}
		r.mustPost(t, newDelivery(fmt.Sprintf("job-x-%d", i)))
	}
	jobsOnB := gatewayv1.NewJobServiceClient(b.srv.DialAdmin(t))
	jobsOnA := gatewayv1.NewJobServiceClient(a.srv.DialAdmin(t))
	for i := range n {
		id := fmt.Sprintf("job-x-%d", i)
		for name, client := range map[string]gatewayv1.JobServiceClient{"a": jobsOnA, "b": jobsOnB} {
			apptest.Eventually(t, 15*time.Second, id+" on "+name, func() bool {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				resp, err := client.GetJob(ctx, &gatewayv1.GetJobRequest{JobId: id})
				return err == nil && resp.GetJobState().GetJob().GetStatus() == gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED &&
					resp.GetJobState().GetEventCount() == 1
			})
		}
	}
	apptest.Eventually(t, 15*time.Second, "both replicas to fold every event", func() bool {
		return finishedCount(t, a)+finishedCount(t, b) >= n
	})
	if got := finishedCount(t, a) + finishedCount(t, b); got != n {
		t.Errorf("finished jobs counted %d times over two replicas, want %d", got, n)
	}
}
