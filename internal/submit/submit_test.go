package submit_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/config"
	"github.com/klingfan/klingfan/internal/store"
)

// hook is the URL_TOKEN registration the tests create jobs on.
const hook = "jobs"

// env is a real klingfan whose Kling API is a fakeKling.
type env struct {
	srv   *apptest.Server
	kling *fakeKling
	jobs  gatewayv1.JobServiceClient
	// token is the registration's URL token.
	token string
}

func start(t *testing.T, k *fakeKling, opts ...apptest.Option) *env {
	t.Helper()
	srv := apptest.Start(t, "", append([]apptest.Option{apptest.WithConfig(func(c *config.Config) {
		c.Reconcile.APIURL = k.srv.URL
		c.Reconcile.APIKey = "test-api-key"
		c.Reconcile.Interval = 0
		c.PublicURLSet = true // apptest points --public-url at the HTTP listener
	})}, opts...)...)
	e := &env{srv: srv, kling: k, jobs: gatewayv1.NewJobServiceClient(srv.DialAdmin(t))}
	e.token = registerHook(t, srv)
	return e
}

// registerHook creates the URL_TOKEN registration hook, or reads it when
// another server on the same store created it, and returns its token.
func registerHook(t *testing.T, srv *apptest.Server) string {
	t.Helper()
	hooks := gatewayv1.NewWebhookServiceClient(srv.DialAdmin(t))
	resp, err := hooks.CreateWebhook(context.Background(), &gatewayv1.CreateWebhookRequest{
		WebhookId: hook,
		Webhook:   &gatewayv1.Webhook{SignatureScheme: gatewayv1.SignatureScheme_SIGNATURE_SCHEME_URL_TOKEN},
	})
	if status.Code(err) == codes.AlreadyExists {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetSecret()
}

func body(t *testing.T, js string) *structpb.Struct {
	t.Helper()
	s := &structpb.Struct{}
	if err := s.UnmarshalJSON([]byte(js)); err != nil {
		t.Fatal(err)
	}
	return s
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (e *env) create(t *testing.T, requestID, js string) (*gatewayv1.JobState, error) {
	t.Helper()
	resp, err := e.jobs.CreateJob(ctxT(t), &gatewayv1.CreateJobRequest{
		Endpoint: "/v1/videos/text2video", Body: body(t, js), RequestId: requestID, WebhookId: hook,
	})
	return resp.GetJobState(), err
}

// The create Kling receives carries the caller's body untouched, klingfan's
// callback URL with the registration's token, and the request id as
// external_task_id, signed with the account's key; the answer is the job
// as GetJob returns it, submitted, with its family's create path.
func TestCreateJobSendsCallbackAndExternalID(t *testing.T) {
	e := start(t, newFakeKling(t))
	st, err := e.create(t, "req-1", `{"model_name":"kling-v2-master","prompt":"a cat","duration":"5","camera_control":{"type":"simple"}}`)
	if err != nil {
		t.Fatal(err)
	}
	calls := e.kling.calls()
	if len(calls) != 1 {
		t.Fatalf("Kling got %d creates, want 1", len(calls))
	}
	c := calls[0]
	wantCallback := e.srv.HTTPURL + "/webhooks/kling/" + hook + "?token=" + url.QueryEscape(e.token)
	if c.Path != "/v1/videos/text2video" || c.Authorization != "Bearer test-api-key" {
		t.Errorf("create sent to %s with %q", c.Path, c.Authorization)
	}
	if c.Body["callback_url"] != wantCallback {
		t.Errorf("callback_url = %v, want %s", c.Body["callback_url"], wantCallback)
	}
	if c.Body["external_task_id"] != "req-1" {
		t.Errorf("external_task_id = %v, want req-1", c.Body["external_task_id"])
	}
	if c.Body["prompt"] != "a cat" || c.Body["duration"] != "5" || c.Body["model_name"] != "kling-v2-master" ||
		c.Body["camera_control"].(map[string]any)["type"] != "simple" {
		t.Errorf("body not passed through: %v", c.Body)
	}
	j := st.GetJob()
	if st.GetJobId() != "task-1" || st.GetWebhookId() != hook || j.GetStatus() != gatewayv1.JobStatus_JOB_STATUS_SUBMITTED ||
		j.GetExternalId() != "req-1" || j.GetCreateEndpoint() != "/v1/videos/text2video" || st.GetLastSequence() == 0 {
		t.Errorf("answer = %v", st)
	}
	got, err := e.jobs.GetJob(ctxT(t), &gatewayv1.GetJobRequest{JobId: "task-1", WebhookId: hook})
	if err != nil || got.GetJobState().GetLastSequence() != st.GetLastSequence() || got.GetJobState().GetJob().GetCreateEndpoint() == "" {
		t.Errorf("GetJob = %v, %v; want the answered state", got, err)
	}
	// The callback Kling sends to that URL reaches the job.
	cb := []byte(`{"task_id":"task-1","task_status":"succeed","created_at":1,"updated_at":2,"task_result":{"videos":[{"id":"v","url":"https://x/v.mp4","duration":"5"}]}}`)
	u, _ := url.Parse(wantCallback)
	if code, out := e.srv.Post(t, u.RequestURI(), nil, cb); code != http.StatusOK {
		t.Fatalf("callback: %d %s", code, out)
	}
	apptest.Eventually(t, 10*time.Second, "the callback to finish the job", func() bool {
		got, err := e.jobs.GetJob(ctxT(t), &gatewayv1.GetJobRequest{JobId: "task-1", WebhookId: hook})
		return err == nil && got.GetJobState().GetJob().GetStatus() == gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED &&
			got.GetJobState().GetJob().GetCreateEndpoint() == "/v1/videos/text2video"
	})
}

// A body that sets external_task_id keeps it; the request id stays the
// idempotency key. REST takes the same request at POST /v1/jobs.
func TestCreateJobRESTKeepsBodyExternalID(t *testing.T) {
	e := start(t, newFakeKling(t))
	req := []byte(`{"endpoint":"/v1/images/generations","requestId":"rest-1","webhookId":"jobs","body":{"prompt":"a dog","external_task_id":"mine-7"}}`)
	code, out := e.srv.Post(t, "/v1/jobs", http.Header{"Authorization": {"Bearer " + apptest.AdminToken}}, req)
	if code != http.StatusOK {
		t.Fatalf("POST /v1/jobs: %d %s", code, out)
	}
	var resp struct {
		JobState struct {
			JobID string `json:"jobId"`
			Job   struct {
				ExternalID     string `json:"externalId"`
				CreateEndpoint string `json:"createEndpoint"`
				Status         string `json:"status"`
			} `json:"job"`
		} `json:"jobState"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.JobState.Job.ExternalID != "mine-7" || resp.JobState.Job.CreateEndpoint != "/v1/images/generations" || resp.JobState.Job.Status != "JOB_STATUS_SUBMITTED" {
		t.Errorf("answer: %s", out)
	}
	if c := e.kling.calls(); len(c) != 1 || c[0].Body["external_task_id"] != "mine-7" || c[0].Path != "/v1/images/generations" {
		t.Errorf("Kling got %+v", c)
	}
}

// The same request id again answers the same job without a second Kling
// task: one after the other, at the same time, and with another body
// (refused: a request id names one request).
func TestCreateJobIdempotent(t *testing.T) {
	e := start(t, newFakeKling(t))
	first, err := e.create(t, "same", `{"prompt":"a cat"}`)
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.create(t, "same", `{"prompt":"a cat"}`)
	if err != nil || again.GetJobId() != first.GetJobId() {
		t.Fatalf("again: %v, %v; want job %s", again, err, first.GetJobId())
	}
	if _, err := e.create(t, "same", `{"prompt":"a dog"}`); status.Code(err) != codes.AlreadyExists {
		t.Errorf("same request id, other body: %v, want ALREADY_EXISTS", err)
	}

	// Concurrent: Kling holds the first create's answer while more
	// requests with the same id arrive; they wait for it.
	hold := make(chan struct{})
	e.kling.mu.Lock()
	e.kling.hold = hold
	e.kling.mu.Unlock()
	var wg sync.WaitGroup
	ids := make([]string, 4)
	errs := make([]error, 4)
	for i := range ids {
		wg.Go(func() {
			st, err := e.create(t, "concurrent", `{"prompt":"a bird"}`)
			ids[i], errs[i] = st.GetJobId(), err
		})
	}
	<-e.kling.entered // the create that holds the claim reached Kling
	<-e.kling.entered
	close(hold)
	wg.Wait()
	for i := range ids {
		if errs[i] != nil || ids[i] != ids[0] {
			t.Errorf("request %d: %q, %v; want %q", i, ids[i], errs[i], ids[0])
		}
	}
	if n := len(e.kling.calls()); n != 2 {
		t.Errorf("Kling got %d creates for two request ids, want 2", n)
	}
}

// Two klingfan servers on one JetStream: the same request id sent to each
// creates one Kling task, and both answer the same job.
func TestCreateJobIdempotentAcrossServers(t *testing.T) {
	k := newFakeKling(t)
	port := freePort(t)
	a := start(t, k, apptest.WithConfig(func(c *config.Config) { c.NATSListen = "127.0.0.1:" + port }))
	tok, err := os.ReadFile(filepath.Join(a.srv.Config.DataDir, store.NATSTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	b := start(t, k, apptest.WithConfig(func(c *config.Config) {
		c.NATSURL = "nats://127.0.0.1:" + port
		c.NATSToken = strings.TrimSpace(string(tok))
		c.Replicas = 1
	}))
	stA, err := a.create(t, "cluster-1", `{"prompt":"a cat"}`)
	if err != nil {
		t.Fatal(err)
	}
	stB, err := b.create(t, "cluster-1", `{"prompt":"a cat"}`)
	if err != nil {
		t.Fatal(err)
	}
	if stA.GetJobId() != stB.GetJobId() || stB.GetJob().GetCreateEndpoint() == "" {
		t.Errorf("A answered %v, B %v", stA, stB)
	}
	// At the same time on both, with Kling slow to answer.
	hold := make(chan struct{})
	k.mu.Lock()
	k.hold = hold
	k.mu.Unlock()
	var wg sync.WaitGroup
	got := make([]*gatewayv1.JobState, 2)
	errs := make([]error, 2)
	for i, e := range []*env{a, b} {
		wg.Go(func() { got[i], errs[i] = e.create(t, "cluster-2", `{"prompt":"a dog"}`) })
	}
	<-k.entered
	close(hold)
	wg.Wait()
	if errs[0] != nil || errs[1] != nil || got[0].GetJobId() != got[1].GetJobId() {
		t.Errorf("concurrent on A and B: %v %v, %v %v", got[0].GetJobId(), errs[0], got[1].GetJobId(), errs[1])
	}
	if n := len(k.calls()); n != 2 {
		t.Errorf("Kling got %d creates for two request ids on two servers, want 2", n)
	}
}

// A create whose answer is lost (Kling created the task, then timed out)
// is UNAVAILABLE; the retry with the same request id finds the task by its
// external id instead of creating a second one.
func TestCreateJobLostAnswerResolvedByExternalID(t *testing.T) {
	e := start(t, newFakeKling(t))
	e.kling.mu.Lock()
	e.kling.lost = true
	e.kling.mu.Unlock()
	if _, err := e.create(t, "lost-1", `{"prompt":"a cat"}`); status.Code(err) != codes.Unavailable {
		t.Fatalf("lost answer: %v, want UNAVAILABLE", err)
	}
	e.kling.mu.Lock()
	e.kling.lost = false
	e.kling.mu.Unlock()
	st, err := e.create(t, "lost-1", `{"prompt":"a cat"}`)
	if err != nil {
		t.Fatal(err)
	}
	if st.GetJobId() != "task-1" || st.GetJob().GetCreateEndpoint() != "/v1/videos/text2video" {
		t.Errorf("resolved = %v", st)
	}
	if n := len(e.kling.calls()); n != 1 {
		t.Errorf("Kling got %d creates, want 1", n)
	}
	if _, err := e.create(t, "lost-1", `{"prompt":"a cat"}`); err != nil {
		t.Fatal(err)
	}
	m := metrics(t, e.srv)
	for _, want := range []string{`klingfan_job_creates_total{outcome="unknown"} 1`, `klingfan_job_creates_total{outcome="resolved"} 1`,
		`klingfan_job_creates_total{outcome="replayed"} 1`, `klingfan_job_creates_total{outcome="created"} 0`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// metrics returns the server's /metrics page.
func metrics(t *testing.T, srv *apptest.Server) string {
	t.Helper()
	resp, err := http.Get(srv.HTTPURL + "/metrics")
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

// Kling's refusals map to gRPC codes by Kling's code table, with Kling's
// message and retry information; nothing is recorded for a refused task,
// and the request id can be used again once the cause is fixed.
func TestCreateJobKlingErrors(t *testing.T) {
	e := start(t, newFakeKling(t))
	for _, tc := range []struct {
		name    string
		refusal refusal
		want    codes.Code
		msg     string
		retry   time.Duration
	}{
		{"1201 invalid parameter", refusal{status: 400, code: 1201, message: "prompt is required"}, codes.InvalidArgument, "prompt is required", 0},
		{"1301 content policy", refusal{status: 400, code: 1301, message: "content security"}, codes.InvalidArgument, "content security", 0},
		{"1102 resource pack", refusal{status: 429, code: 1102, message: "resource pack exhausted"}, codes.ResourceExhausted, "resource pack exhausted", time.Second},
		{"1303 concurrency", refusal{status: 429, code: 1303, message: "parallel task over limit", retryAfter: "7"}, codes.ResourceExhausted, "parallel task over limit", 7 * time.Second},
		{"1302 rate", refusal{status: 429, code: 1302, message: "too many requests"}, codes.ResourceExhausted, "too many requests", time.Second},
		{"1004 expired token", refusal{status: 401, code: 1004, message: "token expired"}, codes.FailedPrecondition, "KLING_API_KEY", 0},
		{"1002 invalid auth", refusal{status: 401, code: 1002, message: "Authorization is invalid"}, codes.FailedPrecondition, "KLING_API_KEY", 0},
		{"1304 IP allow-list", refusal{status: 429, code: 1304, message: "ip whitelist"}, codes.FailedPrecondition, "ip whitelist", 0},
		{"5000 server error", refusal{status: 500, code: 5000, message: "internal error"}, codes.Unavailable, "internal error", time.Second},
		{"5001 maintenance", refusal{status: 503, code: 5001, message: "maintenance"}, codes.Unavailable, "maintenance", time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.kling.setRefusal(&tc.refusal)
			rid := "err-" + strings.ReplaceAll(tc.name, " ", "-")
			_, err := e.create(t, rid, `{"prompt":"x"}`)
			st := status.Convert(err)
			if st.Code() != tc.want || !strings.Contains(st.Message(), tc.msg) {
				t.Fatalf("got %v %q, want %v containing %q", st.Code(), st.Message(), tc.want, tc.msg)
			}
			var retry *errdetails.RetryInfo
			var info *errdetails.ErrorInfo
			for _, d := range st.Details() {
				switch d := d.(type) {
				case *errdetails.RetryInfo:
					retry = d
				case *errdetails.ErrorInfo:
					info = d
				}
			}
			if tc.retry > 0 && retry.GetRetryDelay().AsDuration() != tc.retry {
				t.Errorf("retry info %v, want %v", retry, tc.retry)
			}
			if info == nil || info.GetMetadata()["code"] != strings.Fields(tc.name)[0] {
				t.Errorf("error info %v", info)
			}
			// Nothing recorded; once Kling takes it, the same request id
			// creates the task.
			resp, err := e.jobs.ListJobs(ctxT(t), &gatewayv1.ListJobsRequest{WebhookIds: []string{hook}})
			if err != nil {
				t.Fatal(err)
			}
			for _, js := range resp.GetJobStates() {
				if js.GetJob().GetExternalId() == rid {
					t.Errorf("a job was recorded for the refused create: %v", js)
				}
			}
			e.kling.setRefusal(nil)
			st2, err := e.create(t, rid, `{"prompt":"x"}`)
			if err != nil || st2.GetJob().GetStatus() != gatewayv1.JobStatus_JOB_STATUS_SUBMITTED {
				t.Fatalf("retry after the refusal: %v, %v", st2, err)
			}
			if _, err := e.jobs.GetJob(ctxT(t), &gatewayv1.GetJobRequest{JobId: st2.GetJobId(), WebhookId: hook}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Requests klingfan refuses before calling Kling.
func TestCreateJobRefusedBeforeKling(t *testing.T) {
	k := newFakeKling(t)
	e := start(t, k)
	ctx := ctxT(t)
	for _, tc := range []struct {
		name string
		req  *gatewayv1.CreateJobRequest
		want codes.Code
		msg  string
	}{
		{"unknown endpoint", &gatewayv1.CreateJobRequest{Endpoint: "/v1/videos/nope", Body: body(t, `{}`), RequestId: "r", WebhookId: hook},
			codes.InvalidArgument, "/v1/videos/text2video"},
		{"no endpoint", &gatewayv1.CreateJobRequest{Body: body(t, `{}`), RequestId: "r", WebhookId: hook}, codes.InvalidArgument, "endpoint"},
		{"no request id", &gatewayv1.CreateJobRequest{Endpoint: "/v1/videos/text2video", Body: body(t, `{}`), WebhookId: hook}, codes.InvalidArgument, "request_id"},
		{"request id with a space", &gatewayv1.CreateJobRequest{Endpoint: "/v1/videos/text2video", Body: body(t, `{}`), RequestId: "a b", WebhookId: hook}, codes.InvalidArgument, "request_id"},
		{"no body", &gatewayv1.CreateJobRequest{Endpoint: "/v1/videos/text2video", RequestId: "r", WebhookId: hook}, codes.InvalidArgument, "body"},
		{"callback_url in the body", &gatewayv1.CreateJobRequest{Endpoint: "/v1/videos/text2video", Body: body(t, `{"callback_url":"https://elsewhere"}`), RequestId: "r", WebhookId: hook},
			codes.InvalidArgument, "callback_url"},
		{"unknown webhook", &gatewayv1.CreateJobRequest{Endpoint: "/v1/videos/text2video", Body: body(t, `{}`), RequestId: "r", WebhookId: "nope"}, codes.NotFound, "webhook"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.jobs.CreateJob(ctx, tc.req)
			if st := status.Convert(err); st.Code() != tc.want || !strings.Contains(st.Message(), tc.msg) {
				t.Errorf("got %v %q, want %v containing %q", st.Code(), st.Message(), tc.want, tc.msg)
			}
		})
	}
	if n := len(k.calls()); n != 0 {
		t.Errorf("Kling got %d creates, want none", n)
	}
}

// Without --public-url, without credentials, or on a registration Kling's
// callbacks cannot reach, CreateJob says what is missing.
func TestCreateJobPreconditions(t *testing.T) {
	k := newFakeKling(t)
	noURL := start(t, k, apptest.WithConfig(func(c *config.Config) { c.PublicURLSet = false }))
	if _, err := noURL.create(t, "p-1", `{}`); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "--public-url") {
		t.Errorf("without --public-url: %v", err)
	}
	noCreds := start(t, k, apptest.WithConfig(func(c *config.Config) { c.Reconcile.APIKey = "" }))
	if _, err := noCreds.create(t, "p-2", `{}`); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "KLING_API_KEY") {
		t.Errorf("without credentials: %v", err)
	}
	signed := start(t, k, apptest.WithEnv("KLINGAI_WEBHOOK_SECRET", "a-long-enough-secret-value"))
	_, err := signed.jobs.CreateJob(ctxT(t), &gatewayv1.CreateJobRequest{Endpoint: "/v1/videos/text2video", Body: body(t, `{}`), RequestId: "p-3"})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "X-Kling-Signature") {
		t.Errorf("on the X-Kling-Signature registration default: %v", err)
	}
	if n := len(k.calls()); n != 0 {
		t.Errorf("Kling got %d creates, want none", n)
	}
}

// --max-jobs-in-flight refuses a token's create while its earlier job is
// unfinished, before calling Kling, and lets it through once the job ends.
func TestCreateJobBudgetInFlight(t *testing.T) {
	k := newFakeKling(t)
	e := start(t, k, apptest.WithConfig(func(c *config.Config) { c.Create.MaxJobsInFlight = 1 }))
	first, err := e.create(t, "b-1", `{"prompt":"one"}`)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.create(t, "b-2", `{"prompt":"two"}`)
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "max-jobs-in-flight") {
		t.Fatalf("second create: %v, want RESOURCE_EXHAUSTED naming the budget", err)
	}
	if n := len(k.calls()); n != 1 {
		t.Fatalf("Kling got %d creates, want 1: the budget must refuse before calling Kling", n)
	}
	finish(t, e, first.GetJobId(), `"final_unit_deduction":"3"`)
	if _, err := e.create(t, "b-2", `{"prompt":"two"}`); err != nil {
		t.Fatalf("after the first job finished: %v", err)
	}
}

// --max-units-per-day refuses a token's creates once its finished jobs
// were charged that many units today.
func TestCreateJobBudgetUnitsPerDay(t *testing.T) {
	k := newFakeKling(t)
	e := start(t, k, apptest.WithConfig(func(c *config.Config) { c.Create.MaxUnitsPerDay = 5 }))
	first, err := e.create(t, "u-1", `{"prompt":"one"}`)
	if err != nil {
		t.Fatal(err)
	}
	finish(t, e, first.GetJobId(), `"final_unit_deduction":"5"`)
	_, err = e.create(t, "u-2", `{"prompt":"two"}`)
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "max-units-per-day") {
		t.Fatalf("create over the units budget: %v", err)
	}
	var retry *errdetails.RetryInfo
	for _, d := range st.Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok {
			retry = r
		}
	}
	if d := retry.GetRetryDelay().AsDuration(); d <= 0 || d > 24*time.Hour {
		t.Errorf("retry info %v: want the time until the next UTC day", retry)
	}
	if n := len(k.calls()); n != 1 {
		t.Errorf("Kling got %d creates, want 1", n)
	}
}

// finish posts Kling's succeed callback for job to the registration's
// ingest URL and waits until the job state says succeeded.
func finish(t *testing.T, e *env, job, extra string) {
	t.Helper()
	cb := []byte(`{"task_id":"` + job + `","task_status":"succeed","created_at":1,"updated_at":2,` + extra + `}`)
	if code, out := e.srv.Post(t, "/webhooks/kling/"+hook+"?token="+url.QueryEscape(e.token), nil, cb); code != http.StatusOK {
		t.Fatalf("callback: %d %s", code, out)
	}
	apptest.Eventually(t, 10*time.Second, "job "+job+" to finish", func() bool {
		got, err := e.jobs.GetJob(ctxT(t), &gatewayv1.GetJobRequest{JobId: job, WebhookId: hook})
		return err == nil && got.GetJobState().GetJob().GetStatus() == gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED
	})
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}
