package jobs_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/verify"
)

const secret = "jobs-test-secret"

// env is a running server with the default registration and clients.
type env struct {
	srv    *apptest.Server
	jobs   gatewayv1.JobServiceClient
	events gatewayv1.EventServiceClient
}

func start(t *testing.T) *env {
	t.Helper()
	srv := apptest.Start(t, "", apptest.WithEnv("KLINGAI_WEBHOOK_SECRET", secret))
	conn := srv.DialAdmin(t)
	return &env{srv: srv, jobs: gatewayv1.NewJobServiceClient(conn), events: gatewayv1.NewEventServiceClient(conn)}
}

// post delivers testdata/name signed for the default registration; suffix
// makes a byte-different copy, which ingest logs as a new delivery.
func (e *env) post(t *testing.T, name, suffix string) {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	body = append(body, suffix...)
	code, resp := e.srv.Post(t, "/webhooks/klingai", http.Header{verify.HeaderKlingSignature: {verify.SignKling([]byte(secret), body)}}, body)
	if code != http.StatusOK {
		t.Fatalf("POST %s: %d %s", name, code, resp)
	}
}

// waitJob polls GetJob until the state has folded count events.
func (e *env) waitJob(t *testing.T, jobID string, count uint64) *gatewayv1.JobState {
	t.Helper()
	var st *gatewayv1.JobState
	apptest.Eventually(t, 10*time.Second, jobID+" folded", func() bool {
		resp, err := e.jobs.GetJob(context.Background(), &gatewayv1.GetJobRequest{JobId: jobID})
		if err != nil {
			if status.Code(err) != codes.NotFound {
				t.Fatalf("GetJob %s: %v", jobID, err)
			}
			return false
		}
		st = resp.GetJobState()
		return st.GetEventCount() >= count
	})
	return st
}

func (e *env) rest(t *testing.T, path string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.srv.HTTPURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+apptest.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// A succeeded job stays succeeded when an older processing delivery comes
// in later: the delivery is logged, the state does not go back.
func TestGetJobIgnoresOlderDeliveryAfterSuccess(t *testing.T) {
	e := start(t)
	e.post(t, "legacy_succeed.json", "")
	st := e.waitJob(t, "job-legacy-1", 1)
	if st.GetJob().GetStatus() != gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED || len(st.GetJob().GetVideos()) != 1 {
		t.Fatalf("state after success: %v", st)
	}

	e.post(t, "legacy_processing_older.json", "")
	list, err := e.events.ListEvents(context.Background(), &gatewayv1.ListEventsRequest{JobIds: []string{"job-legacy-1"}})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(list.GetEvents()); n != 2 || list.GetEvents()[1].GetJob().GetStatus() != gatewayv1.JobStatus_JOB_STATUS_PROCESSING {
		t.Fatalf("ListEvents: %d events, want the success and the later processing delivery: %v", n, list.GetEvents())
	}
	st = e.waitJob(t, "job-legacy-1", 2)
	if got := st.GetJob().GetStatus(); got != gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Errorf("status after the older processing delivery: %s, want succeeded", got)
	}
	if st.GetLastSequence() != list.GetEvents()[1].GetSequence() {
		t.Errorf("last_sequence %d, want %d (the processing delivery was folded, not applied)", st.GetLastSequence(), list.GetEvents()[1].GetSequence())
	}
	if st.GetLastEventType() != gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED {
		t.Errorf("last_event_type %s", st.GetLastEventType())
	}

	// The REST face: GET /v1/jobs/{job_id}, with the outputs.
	code, body := e.rest(t, "/v1/jobs/job-legacy-1")
	if code != http.StatusOK {
		t.Fatalf("GET /v1/jobs/job-legacy-1: %d %s", code, body)
	}
	var resp gatewayv1.GetJobResponse
	if err := protojson.Unmarshal(body, &resp); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	job := resp.GetJobState().GetJob()
	if job.GetStatus() != gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED || !strings.HasSuffix(job.GetVideos()[0].GetUrl(), "job-legacy-1.mp4") || job.GetUnitsDeducted() != "2.5" {
		t.Errorf("REST job: %s", body)
	}
	if !strings.Contains(string(body), `"status":"JOB_STATUS_SUCCEEDED"`) {
		t.Errorf("REST body lacks the status by name: %s", body)
	}
}

func TestGetJobErrors(t *testing.T) {
	e := start(t)
	tests := []struct {
		name string
		req  *gatewayv1.GetJobRequest
		code codes.Code
	}{
		{"never seen", &gatewayv1.GetJobRequest{JobId: "nope"}, codes.NotFound},
		{"never seen on a webhook", &gatewayv1.GetJobRequest{JobId: "nope", WebhookId: "default"}, codes.NotFound},
		{"webhook id that cannot exist", &gatewayv1.GetJobRequest{JobId: "nope", WebhookId: "a.b"}, codes.NotFound},
		{"no job id", &gatewayv1.GetJobRequest{}, codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.jobs.GetJob(context.Background(), tt.req)
			if status.Code(err) != tt.code {
				t.Errorf("GetJob: %v, want %s", err, tt.code)
			}
		})
	}
	if code, body := e.rest(t, "/v1/jobs/nope"); code != http.StatusNotFound || !strings.Contains(string(body), "job not found") {
		t.Errorf("GET /v1/jobs/nope: %d %s", code, body)
	}
}

// A job is counted once in the cost and finish metrics, even when its
// completion is delivered twice. (The second delivery differs by a byte, so
// it is not a duplicate of the first; the outcome guard answers it 200 and
// keeps it for audit without logging a second outcome for the job.)
func TestJobMetricsCountOncePerJob(t *testing.T) {
	e := start(t)
	e.post(t, "legacy_succeed.json", "")
	e.post(t, "legacy_succeed.json", "\n") // a second delivery of the same completion
	e.post(t, "legacy_failed.json", "")
	e.waitJob(t, "job-legacy-1", 1)
	e.waitJob(t, "job-legacy-2", 1)

	resp, err := http.Get(e.srv.HTTPURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(raw)
	for _, want := range []string{
		`klingfan_job_units_total{kind="video",model="unknown",webhook="default"} 2.5`,
		`klingfan_jobs_finished_total{kind="video",model="unknown",status="succeeded",webhook="default"} 1`,
		`klingfan_jobs_finished_total{kind="unknown",model="unknown",status="failed",webhook="default"} 1`,
		// legacy_succeed runs 90s from created_at to updated_at.
		`klingfan_job_duration_seconds_count{kind="video",model="unknown",webhook="default"} 1`,
		`klingfan_job_duration_seconds_bucket{kind="video",model="unknown",webhook="default",le="120"} 1`,
		`klingfan_job_duration_seconds_bucket{kind="video",model="unknown",webhook="default",le="30"} 0`,
		`klingfan_job_duration_seconds_count{kind="unknown",model="unknown",webhook="default"} 1`,
		// Two events logged: the second delivery of the completion was not.
		`klingfan_jobs_folded_sequence 2`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		for _, line := range strings.Split(text, "\n") {
			if strings.HasPrefix(line, "klingfan_job") {
				t.Log(line)
			}
		}
	}
}

func TestListJobs(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	e.post(t, "legacy_succeed.json", "")
	e.post(t, "legacy_failed.json", "")
	e.post(t, "legacy_processing.json", "")
	for _, id := range []string{"job-legacy-1", "job-legacy-2", "job-legacy-3"} {
		e.waitJob(t, id, 1)
	}
	ids := func(states []*gatewayv1.JobState) string {
		var out []string
		for _, st := range states {
			out = append(out, st.GetJobId())
		}
		return strings.Join(out, ",")
	}
	tests := []struct {
		name string
		req  *gatewayv1.ListJobsRequest
		want string
	}{
		{"newest first by default", &gatewayv1.ListJobsRequest{}, "job-legacy-3,job-legacy-2,job-legacy-1"},
		{"oldest first", &gatewayv1.ListJobsRequest{OrderBy: "update_time"}, "job-legacy-1,job-legacy-2,job-legacy-3"},
		{"by status", &gatewayv1.ListJobsRequest{Statuses: []gatewayv1.JobStatus{gatewayv1.JobStatus_JOB_STATUS_FAILED}}, "job-legacy-2"},
		{"by webhook", &gatewayv1.ListJobsRequest{WebhookIds: []string{"default"}, Statuses: []gatewayv1.JobStatus{gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED, gatewayv1.JobStatus_JOB_STATUS_PROCESSING}}, "job-legacy-3,job-legacy-1"},
		{"other webhook", &gatewayv1.ListJobsRequest{WebhookIds: []string{"other"}}, ""},
		{"updated in the future", &gatewayv1.ListJobsRequest{UpdatedAfter: timestamppb.New(time.Now().Add(time.Hour))}, ""},
		{"updated in the future, oldest first", &gatewayv1.ListJobsRequest{UpdatedAfter: timestamppb.New(time.Now().Add(time.Hour)), OrderBy: "update_time"}, ""},
		{"updated in the last hour", &gatewayv1.ListJobsRequest{UpdatedAfter: timestamppb.New(time.Now().Add(-time.Hour))}, "job-legacy-3,job-legacy-2,job-legacy-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := e.jobs.ListJobs(ctx, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(resp.GetJobStates()); got != tt.want {
				t.Errorf("ListJobs = %q, want %q", got, tt.want)
			}
		})
	}

	for _, order := range []string{"update_time desc", "update_time"} {
		t.Run("pages of one, "+order, func(t *testing.T) {
			var got []*gatewayv1.JobState
			req := &gatewayv1.ListJobsRequest{PageSize: 1, OrderBy: order}
			for range 10 {
				resp, err := e.jobs.ListJobs(ctx, req)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, resp.GetJobStates()...)
				if resp.GetNextPageToken() == "" {
					break
				}
				req.PageToken = resp.GetNextPageToken()
			}
			want := "job-legacy-3,job-legacy-2,job-legacy-1"
			if order == "update_time" {
				want = "job-legacy-1,job-legacy-2,job-legacy-3"
			}
			if ids(got) != want {
				t.Errorf("paged = %q, want %q", ids(got), want)
			}
		})
	}

	t.Run("bad requests", func(t *testing.T) {
		first, err := e.jobs.ListJobs(ctx, &gatewayv1.ListJobsRequest{PageSize: 1})
		if err != nil {
			t.Fatal(err)
		}
		for name, req := range map[string]*gatewayv1.ListJobsRequest{
			"order_by":            {OrderBy: "job_id"},
			"page_size":           {PageSize: -1},
			"statuses":            {Statuses: []gatewayv1.JobStatus{42}},
			"webhook_ids":         {WebhookIds: []string{""}},
			"token, other filter": {PageToken: first.GetNextPageToken(), Statuses: []gatewayv1.JobStatus{gatewayv1.JobStatus_JOB_STATUS_FAILED}},
			"forged token":        {PageToken: "AAAA"},
		} {
			if _, err := e.jobs.ListJobs(ctx, req); status.Code(err) != codes.InvalidArgument {
				t.Errorf("%s: %v, want InvalidArgument", name, err)
			}
		}
	})

	t.Run("REST", func(t *testing.T) {
		code, body := e.rest(t, "/v1/jobs?statuses=JOB_STATUS_FAILED&pageSize=5")
		if code != http.StatusOK {
			t.Fatalf("GET /v1/jobs: %d %s", code, body)
		}
		var resp gatewayv1.ListJobsResponse
		if err := protojson.Unmarshal(body, &resp); err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
		if ids(resp.GetJobStates()) != "job-legacy-2" {
			t.Errorf("REST list: %s", body)
		}
		if code, body := e.rest(t, "/v1/jobs?orderBy=nonsense"); code != http.StatusBadRequest {
			t.Errorf("bad order: %d %s", code, body)
		}
	})
}
