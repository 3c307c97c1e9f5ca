package reconcile_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/config"
	"github.com/klingfan/klingfan/internal/klingfamily"
	"github.com/klingfan/klingfan/internal/klingsim"
)

// TestStaleJobsQueriedOneByOne: tasks whose last callbacks were lost and
// whose last update at Kling is older than the listing lookback stay
// processing in klingfan; once their state is older than
// --reconcile-stale-after, a pass asks Kling about each one by id (a legacy
// task in the configured families in turn, a new-shape task through
// GET /tasks?task_ids=, which answers a list) and appends the outcome,
// while a job younger than the threshold is not asked about at all.
func TestStaleJobsQueriedOneByOne(t *testing.T) {
	clock := apptest.NewClock(time.Now())
	// Every legacy family but audio/video-to-audio, plus the newer API: a
	// task in that family is known to Kling but in no family klingfan asks.
	unlisted, lipSync, newer := klingfamily.MustByName("audio/video-to-audio"), klingfamily.MustByName("videos/lip-sync"), klingfamily.MustByName("text-to-video/kling-2.6")
	var listed []string
	for _, f := range klingfamily.All() {
		if f.Shape == klingfamily.Legacy && f.Reconcilable() && f.Name != unlisted.Name {
			listed = append(listed, f.Name)
		}
	}
	w := newWorld(t, klingsim.Faults{}, klingsim.Config{APIKey: simAPIKey, Now: clock.Now},
		apptest.WithClock(clock.Now),
		apptest.WithConfig(func(c *config.Config) {
			c.Reconcile.Families = strings.Join(append(listed, "tasks"), ",")
			c.Reconcile.Lookback = 10 * time.Minute
			c.Reconcile.StaleAfter = 30 * time.Minute
		}))

	// Each task's first two callbacks (submitted, processing) arrive; the
	// final one is lost.
	legacy := w.sim.MustCreate(lipSync, "stale-legacy")
	v2 := w.sim.MustCreate(newer, "stale-v2")
	unknown := w.sim.MustCreate(unlisted, "stale-unlisted")
	w.sim.Step()
	w.sim.Flush()
	w.waitJobStatus(t, gatewayv1.JobStatus_JOB_STATUS_PROCESSING, legacy, v2, unknown)
	w.sim.SetFaults(klingsim.Faults{Drop: 1})
	w.sim.Step()
	w.sim.Flush()

	// 40 minutes on, past the lookback and the stale threshold, a new job
	// arrives in the unlisted family and stays submitted: it is young.
	clock.Advance(40 * time.Minute)
	w.sim.SetFaults(klingsim.Faults{})
	young := w.sim.MustCreate(unlisted, "young")
	w.sim.Flush()
	w.waitJobStatus(t, gatewayv1.JobStatus_JOB_STATUS_PROCESSING, legacy, v2, unknown)
	w.waitJobStatus(t, gatewayv1.JobStatus_JOB_STATUS_SUBMITTED, young)

	rep := w.reconcile(t, 0)
	if rep.Error != "" {
		t.Fatalf("reconcile: %+v", rep)
	}
	simStatus := map[string]string{}
	for _, task := range w.sim.Tasks() {
		simStatus[task.ID] = task.Status
	}
	gotFamily := map[string]string{}
	for _, r := range rep.Recovered {
		gotFamily[r.JobID] = r.Family
		if r.Status != simStatus[r.JobID] || r.Sequence == 0 {
			t.Errorf("recovered %+v, simulator says %s", r, simStatus[r.JobID])
		}
	}
	if want := map[string]string{legacy: lipSync.Name, v2: "tasks"}; !maps.Equal(gotFamily, want) {
		t.Errorf("recovered jobs by family = %v, want %v (report %+v)", gotFamily, want, rep)
	}
	if want := map[string]int{"found": 2, "not_found": 1}; !maps.Equal(rep.StaleQueries, want) {
		t.Errorf("stale queries = %v, want %v", rep.StaleQueries, want)
	}
	logged := w.logged(t)
	for _, id := range []string{legacy, v2} {
		ts := terminals(logged[id])
		if len(ts) != 1 || ts[0].GetSourceFormat() != gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_QUERY || ts[0].GetJob().GetStatus() != wantStatus(simStatus[id]) {
			t.Errorf("job %s: terminal events %v, want one recovered %s", id, ts, simStatus[id])
		}
	}
	if n := len(terminals(logged[unknown])); n != 0 {
		t.Errorf("job %s in an unlisted family: %d terminal events, want none", unknown, n)
	}

	// One by one: the legacy task was looked for family by family until
	// found, the new-shape one asked once by id, the unlisted one in every
	// listed family; the young job never.
	queries := map[string]int{legacy: w.sim.Queries(legacy), v2: w.sim.Queries(v2), unknown: w.sim.Queries(unknown), young: w.sim.Queries(young)}
	if want := map[string]int{legacy: slices.Index(listed, lipSync.Name) + 1, v2: 1, unknown: len(listed), young: 0}; !maps.Equal(queries, want) {
		t.Errorf("single-task queries by job = %v, want %v", queries, want)
	}
	m := w.metrics(t)
	for _, line := range []string{
		`klingfan_reconcile_stale_queries_total{outcome="found"} 2`,
		`klingfan_reconcile_stale_queries_total{outcome="not_found"} 1`,
	} {
		if !strings.Contains(m, line) {
			t.Errorf("metrics lack %s:\n%s", line, grep(m, "klingfan_reconcile"))
		}
	}

	// Once the projection has the outcomes, the next pass leaves the
	// resolved jobs alone.
	w.waitJobStatus(t, wantStatus(simStatus[legacy]), legacy)
	w.waitJobStatus(t, wantStatus(simStatus[v2]), v2)
	if rep2 := w.reconcile(t, 0); len(rep2.Recovered) != 0 {
		t.Errorf("second pass recovered %+v", rep2.Recovered)
	}
	if got := w.sim.Queries(legacy) + w.sim.Queries(v2) + w.sim.Queries(young); got != queries[legacy]+queries[v2] {
		t.Errorf("the second pass queried resolved or young jobs again: %d queries in all, want %d", got, queries[legacy]+queries[v2])
	}
}

// waitJobStatus polls GetJob until every job has status.
func (w *world) waitJobStatus(t *testing.T, status gatewayv1.JobStatus, ids ...string) {
	t.Helper()
	jobs := gatewayv1.NewJobServiceClient(w.srv.DialAdmin(t))
	for _, id := range ids {
		apptest.Eventually(t, 20*time.Second, fmt.Sprintf("job %s %v", id, status), func() bool {
			resp, err := jobs.GetJob(context.Background(), &gatewayv1.GetJobRequest{JobId: id, WebhookId: simWebhook})
			return err == nil && resp.GetJobState().GetJob().GetStatus() == status
		})
	}
}
