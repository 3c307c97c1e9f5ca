package jobs_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/jobs"
)

// TestListUpdatedBefore: UpdatedBefore keeps only states last updated
// before it, in both orders and with the other filters, which is how the
// reconciler finds jobs left non-terminal for too long.
func TestListUpdatedBefore(t *testing.T) {
	s := openStore(t, t.TempDir())
	now := time.Now()
	var last uint64
	add := func(id string, status gatewayv1.JobStatus, age time.Duration) {
		ev := &gatewayv1.Event{
			Id: "ev-" + id + status.String(), DeliveryId: "d-" + id + status.String(), WebhookId: "w1",
			Type: gatewayv1.EventType(status), ReceivedAt: timestamppb.New(now.Add(-age)),
			Job: &gatewayv1.Job{JobId: id, Status: status},
		}
		seq, _, err := s.Append(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		last = seq
	}
	add("old-submitted", gatewayv1.JobStatus_JOB_STATUS_SUBMITTED, 2*time.Hour)
	add("old-processing", gatewayv1.JobStatus_JOB_STATUS_PROCESSING, 90*time.Minute)
	add("old-done", gatewayv1.JobStatus_JOB_STATUS_SUBMITTED, 3*time.Hour)
	add("old-done", gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED, 80*time.Minute)
	add("young", gatewayv1.JobStatus_JOB_STATUS_SUBMITTED, time.Minute)
	r := runReplica(t, s)
	r.waitFolded(t, last)

	nonTerminal := []gatewayv1.JobStatus{gatewayv1.JobStatus_JOB_STATUS_SUBMITTED, gatewayv1.JobStatus_JOB_STATUS_PROCESSING}
	for _, tc := range []struct {
		name string
		q    jobs.Query
		want string
	}{
		{"before an hour ago, newest first", jobs.Query{UpdatedBefore: now.Add(-time.Hour)}, "old-done,old-processing,old-submitted"},
		{"before an hour ago, oldest first", jobs.Query{UpdatedBefore: now.Add(-time.Hour), OldestFirst: true}, "old-submitted,old-processing,old-done"},
		{"non-terminal, before an hour ago", jobs.Query{UpdatedBefore: now.Add(-time.Hour), Statuses: nonTerminal}, "old-processing,old-submitted"},
		{"non-terminal, within a window", jobs.Query{UpdatedAfter: now.Add(-100 * time.Minute), UpdatedBefore: now.Add(-time.Hour), Statuses: nonTerminal}, "old-processing"},
		{"before everything", jobs.Query{UpdatedBefore: now.Add(-4 * time.Hour)}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.q.Limit = 10
			got, next, err := r.p.List(context.Background(), tc.q)
			if err != nil {
				t.Fatal(err)
			}
			ids := make([]string, len(got))
			for i, st := range got {
				ids[i] = st.GetJobId()
			}
			if strings.Join(ids, ",") != tc.want || next != 0 {
				t.Errorf("List = %s (next %d), want %s", strings.Join(ids, ","), next, tc.want)
			}
		})
	}
}
