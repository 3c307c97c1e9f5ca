package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/config"
	"github.com/klingfan/klingfan/internal/klingsim"
)

// kling stands in for Kling over real HTTP: it answers a create with a
// submitted task and then, unless told to drop it, posts the task's succeed
// callback to the callback_url the create carried, as Kling does.
type kling struct {
	srv  *httptest.Server
	mu   sync.Mutex
	n    int
	fail bool
}

func newKling(t *testing.T) *kling {
	k := &kling{}
	// callbacks is waited for before the test ends, so no callback outlives
	// the server it posts to.
	var callbacks sync.WaitGroup
	k.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		data, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || json.Unmarshal(data, &body) != nil {
			http.Error(w, `{"code":1200,"message":"bad request"}`, http.StatusBadRequest)
			return
		}
		k.mu.Lock()
		k.n++
		id, status := fmt.Sprintf("cli-task-%d", k.n), "succeed"
		if k.fail {
			status = "failed"
		}
		k.mu.Unlock()
		ext, _ := body["external_task_id"].(string)
		cb, _ := body["callback_url"].(string)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"code":0,"message":"SUCCEED","request_id":"r","data":{"task_id":%q,"task_status":"submitted","task_info":{"external_task_id":%q},"created_at":1,"updated_at":1}}`, id, ext)
		callbacks.Add(1)
		go func() {
			defer callbacks.Done()
			final := fmt.Sprintf(`{"task_id":%q,"task_status":%q,"task_info":{"external_task_id":%q},"created_at":1,"updated_at":2,"task_result":{"videos":[{"id":"v","url":"https://x/v.mp4","duration":"5"}]}}`, id, status, ext)
			resp, err := http.Post(cb, "application/json", bytes.NewReader([]byte(final)))
			if err == nil {
				resp.Body.Close()
			}
		}()
	}))
	t.Cleanup(k.srv.Close)
	t.Cleanup(callbacks.Wait) // runs first: cleanups run last-registered first
	return k
}

// `klingctl create --wait` creates the task, prints its final state once
// Kling's callback completes it, and exits like `klingctl wait`.
func TestCreateWait(t *testing.T) {
	k := newKling(t)
	srv := startServer(t, "", apptest.WithConfig(func(c *config.Config) {
		c.Reconcile.APIURL = k.srv.URL
		c.Reconcile.APIKey = "cli-api-key"
		c.Reconcile.Interval = 0
		c.PublicURLSet = true
	}))
	c := conn(srv)
	klingctl(t, with(c, "webhooks", "create", "--id", "jobs", "--scheme", "token")...).must(t)

	r := klingctl(t, with(c, "create", "--endpoint", "/v1/videos/text2video", "--body", `{"prompt":"a cat"}`,
		"--webhook", "jobs", "--request-id", "cli-1", "--wait", "--timeout", "20s", "--json")...).must(t)
	var st struct {
		JobID string `json:"jobId"`
		Job   struct {
			Status         string `json:"status"`
			ExternalID     string `json:"externalId"`
			CreateEndpoint string `json:"createEndpoint"`
		} `json:"job"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if st.JobID != "cli-task-1" || st.Job.Status != "JOB_STATUS_SUCCEEDED" || st.Job.ExternalID != "cli-1" || st.Job.CreateEndpoint != "/v1/videos/text2video" {
		t.Errorf("final state: %s", r.stdout)
	}

	// The same request id again: the same job, no second task.
	r = klingctl(t, with(c, "create", "--endpoint", "/v1/videos/text2video", "--body", `{"prompt":"a cat"}`,
		"--webhook", "jobs", "--request-id", "cli-1")...).must(t)
	if !strings.Contains(r.stdout, "cli-task-1") {
		t.Errorf("again: %s", r.stdout)
	}

	// A failed job exits 1; a fresh request id is printed on stderr.
	k.mu.Lock()
	k.fail = true
	k.mu.Unlock()
	r = klingctl(t, with(c, "create", "--endpoint", "/v1/videos/text2video", "--body", `{"prompt":"a dog"}`,
		"--webhook", "jobs", "--wait", "--timeout", "20s")...)
	if r.code != 1 || !strings.Contains(r.stderr, "request id req_") || !strings.Contains(r.stdout, "failed") {
		t.Errorf("failed job: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.n != 2 {
		t.Errorf("Kling got %d creates, want 2", k.n)
	}
}

// A body that is not JSON, or an unknown endpoint, is refused with a clear
// message and no create.
func TestCreateRefused(t *testing.T) {
	k := newKling(t)
	srv := startServer(t, "", apptest.WithConfig(func(c *config.Config) {
		c.Reconcile.APIURL = k.srv.URL
		c.Reconcile.APIKey = "cli-api-key"
		c.Reconcile.Interval = 0
		c.PublicURLSet = true
	}))
	c := conn(srv)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no endpoint", []string{"create", "--body", "{}"}, "--endpoint"},
		{"no body", []string{"create", "--endpoint", "/v1/videos/text2video"}, "--body"},
		{"not JSON", []string{"create", "--endpoint", "/v1/videos/text2video", "--body", "nope"}, "JSON object"},
		{"unknown endpoint", []string{"create", "--endpoint", "/v1/nope", "--body", "{}"}, "/v1/videos/text2video"},
		{"missing file", []string{"create", "--endpoint", "/v1/videos/text2video", "--body", "@/nonexistent.json"}, "nonexistent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := klingctl(t, with(c, tc.args...)...)
			if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want a failure naming %q", r.code, r.stderr, tc.want)
			}
		})
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.n != 0 {
		t.Errorf("Kling got %d creates", k.n)
	}
}

// simWorld is a gateway whose Kling is klingsim: creates go to the
// simulator, which moves its tasks on every step and calls back to the
// callback_url each create carried. Jobs are created on the URL_TOKEN
// registration "jobs", which is also --reconcile-webhook, and the
// reconciler lists only images/generations, so a video job is found by a
// stale query alone; opts may change either.
type simWorld struct {
	srv *apptest.Server
	sim *klingsim.Sim
}

func newSimWorld(t *testing.T, opts ...apptest.Option) *simWorld {
	t.Helper()
	sim, err := klingsim.New(klingsim.Config{APIKey: "sim-key", Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(sim.Handler())
	t.Cleanup(api.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); sim.Run(ctx, 0, 200*time.Millisecond) }()
	t.Cleanup(func() { cancel(); <-done; sim.Flush() })
	srv := startServer(t, "", append([]apptest.Option{apptest.WithConfig(func(c *config.Config) {
		c.Reconcile.APIURL = api.URL
		c.Reconcile.APIKey = "sim-key"
		c.Reconcile.Interval = 0
		c.Reconcile.WebhookID = "jobs"
		c.Reconcile.Families = "images/generations"
		c.Reconcile.StaleAfter = time.Millisecond
		c.PublicURLSet = true
	})}, opts...)...)
	klingctl(t, with(conn(srv), "webhooks", "create", "--id", "jobs", "--scheme", "token")...).must(t)
	return &simWorld{srv: srv, sim: sim}
}

// Issue 32, "Done when": against klingsim, `klingctl create --wait`
// creates a task and exits 0 when the simulator's callback completes it.
func TestCreateWaitAgainstKlingsim(t *testing.T) {
	w := newSimWorld(t)
	r := klingctl(t, with(conn(w.srv), "create", "--endpoint", "/v1/videos/text2video", "--body", `{"prompt":"a cat"}`,
		"--webhook", "jobs", "--request-id", "sim-1", "--wait", "--timeout", "20s", "--json")...).must(t)
	if !strings.Contains(r.stdout, `"JOB_STATUS_SUCCEEDED"`) || !strings.Contains(r.stdout, `"createEndpoint":"/v1/videos/text2video"`) {
		t.Errorf("final state: %s", r.stdout)
	}
}

// Issue 32, "Done when": a simulator that drops the callbacks still ends
// the job SUCCEEDED through one reconcile pass, whichever registration the
// job was created on: asked about in its own family with one query when
// the listings do not cover it, found by a listing when they do, and in
// either case recovered on the registration it was created on.
func TestCreateDroppedCallbacksReconciled(t *testing.T) {
	for _, tc := range []struct {
		name string
		// reconcile is --reconcile-webhook, families --reconcile-families.
		reconcile, families string
		listed              bool
	}{
		{name: "on --reconcile-webhook, its family not listed", reconcile: "jobs", families: "images/generations"},
		{name: "on another registration, its family not listed", reconcile: "default", families: "images/generations"},
		{name: "on another registration, its family listed", reconcile: "default", families: "videos/text2video", listed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newSimWorld(t, apptest.WithConfig(func(c *config.Config) {
				c.Reconcile.WebhookID, c.Reconcile.Families = tc.reconcile, tc.families
			}))
			w.sim.SetFaults(klingsim.Faults{Drop: 1})
			r := klingctl(t, with(conn(w.srv), "create", "--endpoint", "/v1/videos/text2video", "--body", `{"prompt":"a dog"}`,
				"--webhook", "jobs", "--request-id", "sim-2", "--json")...).must(t)
			var st struct {
				JobID string `json:"jobId"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.JobID == "" {
				t.Fatalf("create printed %s (%v)", r.stdout, err)
			}
			apptest.Eventually(t, waitFor, "the simulator to finish the task", func() bool {
				for _, ts := range w.sim.Tasks() {
					if ts.ID == st.JobID {
						return ts.Status == klingsim.StatusSucceed
					}
				}
				return false
			})
			resp, err := gatewayv1.NewAdminServiceClient(w.srv.DialAdmin(t)).Reconcile(context.Background(), &gatewayv1.ReconcileRequest{})
			if err != nil {
				t.Fatalf("reconcile: %v", err)
			}
			rep := resp.GetReport()
			if rc := rep.GetRecovered(); len(rc) != 1 || rc[0].GetJobId() != st.JobID || rc[0].GetFamily() != "videos/text2video" {
				t.Errorf("reconcile report: %v", rep)
			}
			if !tc.listed {
				if rep.GetStaleQueries()["found"] != 1 {
					t.Errorf("reconcile report: %v, want the job found by a stale query", rep)
				}
				if n := w.sim.Queries(st.JobID); n != 1 {
					t.Errorf("the simulator was asked %d times about the job, want once, in its own family", n)
				}
			}
			r = klingctl(t, with(conn(w.srv), "wait", st.JobID, "--webhook", "jobs", "--timeout", "20s")...)
			if r.code != 0 || !strings.Contains(r.stdout, "succeeded") {
				t.Errorf("wait: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			_, err = gatewayv1.NewJobServiceClient(w.srv.DialAdmin(t)).GetJob(context.Background(), &gatewayv1.GetJobRequest{JobId: st.JobID, WebhookId: "default"})
			if status.Code(err) != codes.NotFound {
				t.Errorf("the job on registration default: %v, want NotFound (its events belong to jobs)", err)
			}
		})
	}
}
