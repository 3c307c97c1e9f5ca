package outcome_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/outcome"
	"github.com/klingfan/klingfan/internal/store"
)

func openGuard(ctx context.Context, t *testing.T) (*outcome.Guard, *store.Store, *prometheus.Registry) {
	t.Helper()
	st, err := store.Open(ctx, store.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	reg := prometheus.NewRegistry()
	g, err := outcome.New(ctx, outcome.Config{Log: st, Store: st, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	return g, st, reg
}

func event(job, delivery string, status gatewayv1.JobStatus) *gatewayv1.Event {
	return &gatewayv1.Event{Id: "evt_" + delivery, WebhookId: "w", DeliveryId: delivery, SourceFormat: gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_V2,
		Job: &gatewayv1.Job{JobId: job, Status: status}}
}

func jsonEvent(ev *gatewayv1.Event) *gatewayv1.Event {
	ev.SourceFormat = gatewayv1.SourceFormat_SOURCE_FORMAT_KLING_EVENT
	return ev
}

func TestGuardLogsOneOutcomePerJob(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		events     []*gatewayv1.Event
		wantLogged int
		wantLate   float64
	}{
		{"progress then outcome", []*gatewayv1.Event{
			event("j", "a", gatewayv1.JobStatus_JOB_STATUS_PROCESSING),
			event("j", "b", gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED),
		}, 2, 0},
		{"same delivery twice is a plain duplicate", []*gatewayv1.Event{
			event("j", "b", gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED),
			event("j", "b", gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED),
		}, 1, 0},
		{"callback after the reconciler's outcome", []*gatewayv1.Event{
			event("j", "query:j:succeed", gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED),
			event("j", "msg_j_succeed", gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED),
		}, 1, 1},
		{"a different terminal status is late too", []*gatewayv1.Event{
			event("j", "a", gatewayv1.JobStatus_JOB_STATUS_FAILED),
			event("j", "b", gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED),
		}, 1, 1},
		{"a late progress event is still logged", []*gatewayv1.Event{
			event("j", "a", gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED),
			event("j", "b", gatewayv1.JobStatus_JOB_STATUS_PROCESSING),
		}, 2, 0},
		{"signed JSON events keep one event per delivery", []*gatewayv1.Event{
			jsonEvent(event("j", "a", gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED)),
			jsonEvent(event("j", "b", gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED)),
		}, 2, 0},
		{"a task callback after a signed JSON outcome is late", []*gatewayv1.Event{
			jsonEvent(event("j", "a", gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED)),
			event("j", "b", gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED),
		}, 1, 1},
		{"other jobs are independent", []*gatewayv1.Event{
			event("j1", "a", gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED),
			event("j2", "b", gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED),
		}, 2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, st, reg := openGuard(ctx, t)
			var first uint64
			for i, ev := range tc.events {
				seq, dup, err := g.Append(ctx, ev)
				if err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					first = seq
				} else if dup && seq != first {
					t.Errorf("duplicate answered sequence %d, want the outcome's %d", seq, first)
				}
			}
			_, last, err := st.Bounds(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if int(last) != tc.wantLogged {
				t.Errorf("log holds %d events, want %d", last, tc.wantLogged)
			}
			if got := lateOutcomes(t, reg); got != tc.wantLate {
				t.Errorf("late outcomes = %v, want %v", got, tc.wantLate)
			}
		})
	}
}

// TestGuardConcurrentOutcomes races many writers (replicas, the reconciler,
// duplicated callbacks) on one job: exactly one outcome is logged.
func TestGuardConcurrentOutcomes(t *testing.T) {
	ctx := context.Background()
	g, st, _ := openGuard(ctx, t)
	// A second guard on the same log plays another replica.
	g2, err := outcome.New(ctx, outcome.Config{Log: st})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gg := g
			if i%2 == 1 {
				gg = g2
			}
			if _, _, err := gg.Append(ctx, event("race", fmt.Sprintf("d%d", i), gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	events, _, err := st.JobEvents(ctx, "w", "race")
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 {
		t.Fatalf("%d outcomes logged for one job, want 1", len(events))
	}
}

// lateOutcomes reads klingfan_late_outcomes_total from reg.
func lateOutcomes(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "klingfan_late_outcomes_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("klingfan_late_outcomes_total not registered")
	return 0
}

// TestLateOutcomeKeptForAudit: a superseded outcome is not in the log but
// is kept, raw body included, in the audit stream, pointing at the outcome.
func TestLateOutcomeKeptForAudit(t *testing.T) {
	ctx := context.Background()
	g, st, _ := openGuard(ctx, t)
	first := event("j", "query:j:succeed", gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED)
	seq, _, err := g.Append(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	late := event("j", "msg_j_succeed", gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED)
	late.RawBody = []byte(`{"task_id":"j","task_status":"succeed"}`)
	got, dup, err := g.Append(ctx, late)
	if err != nil || !dup || got != seq {
		t.Fatalf("late outcome: seq %d dup %v err %v; want the outcome's %d as a duplicate", got, dup, err, seq)
	}
	stream, err := st.JetStream().Stream(ctx, outcome.LateStreamName)
	if err != nil {
		t.Fatal(err)
	}
	m, err := stream.GetLastMsgForSubject(ctx, "klingfan.late.>")
	if err != nil {
		t.Fatal(err)
	}
	var kept gatewayv1.Event
	if err := proto.Unmarshal(m.Data, &kept); err != nil {
		t.Fatal(err)
	}
	if string(kept.GetRawBody()) != string(late.RawBody) || kept.GetDeliveryId() != late.GetDeliveryId() {
		t.Errorf("audit record = %v, want the late delivery with its raw body", &kept)
	}
	if h := m.Header.Get("Klingfan-Outcome-Sequence"); h != fmt.Sprint(seq) {
		t.Errorf("Klingfan-Outcome-Sequence = %q, want %d", h, seq)
	}
}
