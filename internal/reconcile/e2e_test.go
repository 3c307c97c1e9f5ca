package reconcile_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/cli"
	"github.com/klingfan/klingfan/internal/config"
	"github.com/klingfan/klingfan/internal/klingfamily"
	"github.com/klingfan/klingfan/internal/klingsim"
	"github.com/klingfan/klingfan/internal/reconcile"
	"github.com/klingfan/klingfan/internal/verify"
)

const (
	simWebhook = "sim"
	simAPIKey  = "sim-api-key"
)

// world is a klingfan wired to a klingsim: the simulator's callbacks go to
// the registration simWebhook, and the reconciler queries the simulator.
type world struct {
	srv *apptest.Server
	sim *klingsim.Sim
	api *httptest.Server
}

func newWorld(t *testing.T, faults klingsim.Faults, creds klingsim.Config, opts ...apptest.Option) *world {
	t.Helper()
	w := &world{}
	simHandler := http.NotFoundHandler()
	w.api = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { simHandler.ServeHTTP(rw, r) }))
	t.Cleanup(w.api.Close)
	w.srv = apptest.Start(t, "", append([]apptest.Option{apptest.WithConfig(func(c *config.Config) {
		c.Reconcile.APIURL = w.api.URL
		c.Reconcile.APIKey = simAPIKey
		c.Reconcile.WebhookID = simWebhook
		c.Reconcile.Interval = 0 // passes run on request in these tests
	})}, opts...)...)
	secret := verify.NewStandardSecret()
	active := true
	hooks := gatewayv1.NewWebhookServiceClient(w.srv.DialAdmin(t))
	if _, err := hooks.CreateWebhook(context.Background(), &gatewayv1.CreateWebhookRequest{
		WebhookId: simWebhook, Secret: secret,
		Webhook: &gatewayv1.Webhook{SignatureScheme: gatewayv1.SignatureScheme_SIGNATURE_SCHEME_STANDARD_WEBHOOKS, Active: &active},
	}); err != nil {
		t.Fatal(err)
	}
	creds.CallbackURL = w.srv.HTTPURL + "/webhooks/kling/" + simWebhook
	creds.WebhookSecret = secret
	creds.Faults = faults
	creds.FailShare, creds.Seed = 0.2, 7
	sim, err := klingsim.New(creds)
	if err != nil {
		t.Fatal(err)
	}
	w.sim = sim
	simHandler = sim.Handler()
	return w
}

// reconcile runs one pass through AdminService.Reconcile (lookback 0: the
// server's) and returns its report.
func (w *world) reconcile(t *testing.T, lookback time.Duration) reconcile.Report {
	t.Helper()
	req := &gatewayv1.ReconcileRequest{}
	if lookback > 0 {
		req.Lookback = durationpb.New(lookback)
	}
	resp, err := gatewayv1.NewAdminServiceClient(w.srv.DialAdmin(t)).Reconcile(context.Background(), req)
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	r := resp.GetReport()
	rep := reconcile.Report{Error: r.GetError(), TasksChecked: int(r.GetTasksChecked()), DryRun: r.GetDryRun()}
	for _, rc := range r.GetRecovered() {
		rep.Recovered = append(rep.Recovered, reconcile.Recovery{JobID: rc.GetJobId(), Status: rc.GetStatus(), Family: rc.GetFamily(),
			Sequence: rc.GetSequence(), Superseded: rc.GetSuperseded()})
	}
	ints := func(m map[string]int32) map[string]int {
		out := map[string]int{}
		for k, v := range m {
			out[k] = int(v)
		}
		return out
	}
	rep.StaleQueries, rep.APIErrors = ints(r.GetStaleQueries()), ints(r.GetApiErrors())
	return rep
}

// logged returns every event of the sim registration, by job.
func (w *world) logged(t *testing.T) map[string][]*gatewayv1.Event {
	t.Helper()
	events := gatewayv1.NewEventServiceClient(w.srv.DialAdmin(t))
	out := map[string][]*gatewayv1.Event{}
	token := ""
	for {
		resp, err := events.ListEvents(context.Background(), &gatewayv1.ListEventsRequest{WebhookIds: []string{simWebhook}, PageSize: 500, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range resp.GetEvents() {
			out[e.GetJob().GetJobId()] = append(out[e.GetJob().GetJobId()], e)
		}
		if token = resp.GetNextPageToken(); token == "" {
			return out
		}
	}
}

func terminals(events []*gatewayv1.Event) []*gatewayv1.Event {
	var out []*gatewayv1.Event
	for _, e := range events {
		switch e.GetJob().GetStatus() {
		case gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED, gatewayv1.JobStatus_JOB_STATUS_FAILED, gatewayv1.JobStatus_JOB_STATUS_CANCELLED:
			out = append(out, e)
		}
	}
	return out
}

func wantStatus(simStatus string) gatewayv1.JobStatus {
	switch simStatus {
	case "succeed", "succeeded":
		return gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED
	case "failed":
		return gatewayv1.JobStatus_JOB_STATUS_FAILED
	}
	return gatewayv1.JobStatus_JOB_STATUS_UNSPECIFIED
}

// runTasks creates n tasks across every simulated family of the table
// (legacy and newer APIs) and moves them all to a final status.
func (w *world) runTasks(t *testing.T, n int) {
	t.Helper()
	var fams []klingfamily.Family
	for _, f := range klingfamily.All() {
		if klingsim.Simulated(f) {
			fams = append(fams, f)
		}
	}
	for i := range n {
		w.sim.MustCreate(fams[i%len(fams)], fmt.Sprintf("ext-%d", i))
	}
	w.sim.Step()
	w.sim.Step()
	w.sim.Flush()
}

// TestReconcileRecoversDroppedCallbacks is the acceptance test:
// with 30% of callbacks dropped and 10% duplicated, after one pass every
// task's final status is in the log exactly once, a second pass recovers
// nothing, and a late callback is answered 200 without a second outcome.
func TestReconcileRecoversDroppedCallbacks(t *testing.T) {
	w := newWorld(t, klingsim.Faults{Drop: 0.3, Duplicate: 0.1}, klingsim.Config{APIKey: simAPIKey})
	w.runTasks(t, 60)
	st := w.sim.Stats()
	if st.Dropped == 0 || st.Duplicated == 0 || st.Failed != 0 {
		t.Fatalf("simulator stats %+v: want drops, duplicates and no refused callbacks", st)
	}
	before := w.logged(t)
	missing := 0
	for _, task := range w.sim.Tasks() {
		if len(terminals(before[task.ID])) == 0 {
			missing++
		}
	}
	if missing == 0 {
		t.Fatal("no outcome was lost; the test proves nothing")
	}

	// klingctl reconcile --dry-run reports what is missing and appends nothing.
	var out strings.Builder
	if code := cli.Run(context.Background(), []string{"reconcile", "--server", w.srv.GRPC, "--token", apptest.AdminToken, "--since", "1h", "--dry-run"},
		cli.Env{Stdout: &out}); code != cli.ExitOK {
		t.Fatalf("klingctl reconcile --dry-run exited %d: %s", code, out.String())
	}
	if want := fmt.Sprintf("missing (dry run, nothing appended): %d\n", missing); !strings.Contains(out.String(), want) {
		t.Errorf("klingctl reconcile --dry-run printed %q, want it to contain %q", out.String(), want)
	}
	// The pass names every family of the table: the ones it listed, and
	// those Kling documents no query for.
	for _, f := range klingfamily.All() {
		if !strings.Contains(out.String(), f.Name) {
			t.Errorf("klingctl reconcile does not name family %s:\n%s", f.Name, out.String())
		}
	}
	if n := countEvents(w.logged(t)); n != countEvents(before) {
		t.Fatalf("a dry run changed the log from %d to %d events", countEvents(before), n)
	}

	rep := w.reconcile(t, time.Hour)
	if rep.Error != "" {
		t.Fatalf("reconcile: %+v", rep)
	}
	if rep.TasksChecked != 60 {
		t.Errorf("tasks checked = %d, want 60", rep.TasksChecked)
	}
	after := w.logged(t)
	recoveredTerminals := 0
	for _, task := range w.sim.Tasks() {
		ts := terminals(after[task.ID])
		if len(ts) != 1 {
			t.Errorf("job %s: %d terminal events, want exactly 1", task.ID, len(ts))
			continue
		}
		if got, want := ts[0].GetJob().GetStatus(), wantStatus(task.Status); got != want {
			t.Errorf("job %s: logged %v, simulator says %s", task.ID, got, task.Status)
		}
		if ts[0].GetSourceFormat() == gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_QUERY {
			recoveredTerminals++
		}
	}
	if recoveredTerminals != missing {
		t.Errorf("recovered %d outcomes from the query API, %d were missing", recoveredTerminals, missing)
	}

	// GetJob, through real gRPC, agrees with the simulator for every task
	// once the asynchronous jobs projection has folded the pass.
	w.waitJobsAgree(t, after)

	if ready := w.get(t, "/readyz"); !strings.Contains(ready, `"reconcile":{`) || !strings.Contains(ready, fmt.Sprintf(`"recovered":%d`, missing)) {
		t.Errorf("/readyz does not describe the last pass: %s", ready)
	}

	// A second pass finds nothing missing.
	if rep2 := w.reconcile(t, time.Hour); len(rep2.Recovered) != 0 {
		t.Errorf("second pass recovered %+v, want nothing", rep2.Recovered)
	}

	// Late callbacks for jobs the reconciler completed: 200, no second outcome.
	late := 0
	for _, task := range w.sim.Tasks() {
		if ts := terminals(after[task.ID]); len(ts) == 1 && ts[0].GetSourceFormat() == gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_QUERY {
			if err := w.sim.Resend(task.ID); err != nil {
				t.Fatal(err)
			}
			late++
		}
	}
	if got := w.sim.Stats().Failed; got != 0 {
		t.Errorf("%d late callbacks were refused, want all answered 2xx", got)
	}
	final := w.logged(t)
	for _, task := range w.sim.Tasks() {
		if len(final[task.ID]) != len(after[task.ID]) {
			t.Errorf("job %s: late callback changed the log from %d to %d events", task.ID, len(after[task.ID]), len(final[task.ID]))
		}
	}
	if late == 0 {
		t.Error("no late callback was tried")
	}
}

// TestReconcileAPIFailures: wrong credentials, an unreachable API and rate
// limits fail or slow the pass, never ingest; metrics name the failure and
// nothing is appended twice.
func TestReconcileAPIFailures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		simKey  string
		prepare func(w *world)
		// failed: the pass stops early and its report says why.
		failed bool
		label  string
	}{
		{name: "wrong credentials", simKey: "another-key", failed: true, label: "1000"},
		{name: "unreachable API", simKey: simAPIKey, prepare: func(w *world) { w.api.Close() }, failed: true, label: "unreachable"},
		{name: "rate limited", simKey: simAPIKey, prepare: func(w *world) { w.sim.RateLimit(2) }, label: "1302"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, klingsim.Faults{Drop: 0.5}, klingsim.Config{APIKey: tc.simKey})
			w.runTasks(t, 12)
			if tc.prepare != nil {
				tc.prepare(w)
			}
			rep := w.reconcile(t, 0)
			if (rep.Error != "") != tc.failed || rep.APIErrors[tc.label] == 0 {
				t.Fatalf("pass: %+v, want failed=%v with %s counted", rep, tc.failed, tc.label)
			}
			if m := w.metrics(t); !strings.Contains(m, `klingfan_reconcile_api_errors_total{code="`+tc.label+`"}`) ||
				!strings.Contains(m, "klingfan_reconcile_passes_total") {
				t.Errorf("metrics do not show the failure:\n%s", grep(m, "klingfan_reconcile"))
			}
			// A second pass, then late callbacks for every task: ingest
			// answers 2xx and the log keeps at most one outcome per job.
			w.reconcile(t, 0)
			for _, task := range w.sim.Tasks() {
				if err := w.sim.Resend(task.ID); err != nil {
					t.Fatal(err)
				}
			}
			if st := w.sim.Stats(); st.Failed != 0 {
				t.Fatalf("ingest refused callbacks after the failed pass: %+v", st)
			}
			logged := w.logged(t)
			for _, task := range w.sim.Tasks() {
				if n := len(terminals(logged[task.ID])); n != 1 {
					t.Errorf("job %s: %d terminal events, want 1", task.ID, n)
				}
			}
		})
	}
}

// waitJobsAgree polls GetJob until every simulated task's job state has
// the simulator's final status and, where the logged outcome carries
// outputs, the same outputs; it fails at the deadline with the last
// disagreement.
func (w *world) waitJobsAgree(t *testing.T, logged map[string][]*gatewayv1.Event) {
	t.Helper()
	jobs := gatewayv1.NewJobServiceClient(w.srv.DialAdmin(t))
	deadline := time.Now().Add(20 * time.Second)
	for {
		disagree, withOutputs := "", 0
		for _, task := range w.sim.Tasks() {
			resp, err := jobs.GetJob(context.Background(), &gatewayv1.GetJobRequest{JobId: task.ID, WebhookId: simWebhook})
			if err != nil {
				disagree = fmt.Sprintf("job %s: GetJob: %v", task.ID, err)
				break
			}
			got := resp.GetJobState().GetJob()
			if want := wantStatus(task.Status); got.GetStatus() != want {
				disagree = fmt.Sprintf("job %s: GetJob says %v, simulator says %s", task.ID, got.GetStatus(), task.Status)
				break
			}
			if ts := terminals(logged[task.ID]); len(ts) == 1 && !sameOutputs(got, ts[0].GetJob()) {
				disagree = fmt.Sprintf("job %s: GetJob outputs %v differ from the outcome's %v", task.ID, got, ts[0].GetJob())
				break
			}
			if len(got.GetVideos())+len(got.GetImages())+len(got.GetAudios()) > 0 {
				withOutputs++
			}
		}
		if disagree == "" && withOutputs == 0 {
			t.Fatal("no job state carries outputs; the output comparison proves nothing")
		}
		if disagree == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(disagree)
		}
		time.Sleep(50 * time.Millisecond) // polling an asynchronous projection, not ordering events
	}
}

// sameOutputs compares what a job made: videos, images and audio tracks.
func sameOutputs(a, b *gatewayv1.Job) bool {
	eq := func(x, y []proto.Message) bool {
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if !proto.Equal(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return eq(msgs(a.GetVideos()), msgs(b.GetVideos())) && eq(msgs(a.GetImages()), msgs(b.GetImages())) && eq(msgs(a.GetAudios()), msgs(b.GetAudios()))
}

func msgs[M proto.Message](in []M) []proto.Message {
	out := make([]proto.Message, len(in))
	for i, m := range in {
		out[i] = m
	}
	return out
}

func (w *world) metrics(t *testing.T) string { return w.get(t, "/metrics") }

func countEvents(byJob map[string][]*gatewayv1.Event) int {
	n := 0
	for _, evs := range byJob {
		n += len(evs)
	}
	return n
}

func (w *world) get(t *testing.T, path string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, w.srv.HTTPURL+path, nil)
	req.Header.Set("Authorization", "Bearer "+apptest.AdminToken) // /readyz's detail needs one
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func grep(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
