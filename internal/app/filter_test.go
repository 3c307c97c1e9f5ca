package app_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
)

// kindPayloads are Kling payloads of several task families, from the
// normalizer's golden corpus, keyed by the job id each carries.
var kindPayloads = []struct {
	file, job string
	kind      gatewayv1.JobKind
}{
	{"legacy_text_to_audio_succeed", "861254119619698760", gatewayv1.JobKind_JOB_KIND_AUDIO},
	{"v2_succeeded_video", "860123456789012345", gatewayv1.JobKind_JOB_KIND_VIDEO},
	{"v2_audio_succeeded", "870001234567890001", gatewayv1.JobKind_JOB_KIND_AUDIO},
	{"v2_voice_succeeded", "870001234567890101", gatewayv1.JobKind_JOB_KIND_VOICE},
	{"v2_subtitle_succeeded", "870001234567890401", gatewayv1.JobKind_JOB_KIND_SUBTITLE},
	{"legacy_omni_image_series_succeed", "861254119619705555", gatewayv1.JobKind_JOB_KIND_IMAGE},
}

// postPayload delivers a normalizer testdata payload on the default webhook.
func postPayload(t *testing.T, srv *apptest.Server, file string) {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("..", "normalize", "testdata", file+".json"))
	if err != nil {
		t.Fatal(err)
	}
	if code, out := srv.Post(t, "/webhooks/klingai", signed(body), body); code != http.StatusOK {
		t.Fatalf("post %s: %d %s", file, code, out)
	}
}

func restGet(t *testing.T, srv *apptest.Server, path string, q url.Values) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.HTTPURL+path+"?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+apptest.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func jobIDs(events []*gatewayv1.Event) []string {
	var ids []string
	for _, ev := range events {
		ids = append(ids, ev.GetJob().GetJobId())
	}
	return ids
}

// TestFilterByKindAndExpression posts one job of each family and checks
// that Subscribe, ListEvents and GET /v1/events return exactly the events a
// job_kinds list or a CEL filter selects, and refuse a bad expression with
// its position.
func TestFilterByKindAndExpression(t *testing.T) {
	f := startFanout(t)
	for _, p := range kindPayloads {
		postPayload(t, f.srv, p.file)
	}
	audioJobs := []string{"861254119619698760", "870001234567890001"}

	t.Run("ListEvents", func(t *testing.T) {
		cases := []struct {
			name string
			req  *gatewayv1.ListEventsRequest
			want []string
		}{
			{"job kinds", &gatewayv1.ListEventsRequest{JobKinds: []gatewayv1.JobKind{gatewayv1.JobKind_JOB_KIND_AUDIO}}, audioJobs},
			{"kind in CEL", &gatewayv1.ListEventsRequest{Filter: `event.job.kind == JOB_KIND_AUDIO`}, audioJobs},
			{"audio url in CEL", &gatewayv1.ListEventsRequest{Filter: `event.job.audios.exists(a, a.mp3_url.endsWith(".mp3")) && event.source_format == SOURCE_FORMAT_TASK_CALLBACK_V2`}, audioJobs[1:]},
			{"billing in CEL", &gatewayv1.ListEventsRequest{Filter: `event.job.billing.exists(c, c.currency == "CNY")`}, []string{"870001234567890401"}},
			{"kinds and CEL together", &gatewayv1.ListEventsRequest{JobKinds: []gatewayv1.JobKind{gatewayv1.JobKind_JOB_KIND_IMAGE, gatewayv1.JobKind_JOB_KIND_VOICE}, Filter: `size(event.job.images) == 3`}, []string{"861254119619705555"}},
			{"nothing", &gatewayv1.ListEventsRequest{Filter: `event.job.model == "kling-v2-master"`}, nil},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				resp, err := f.events().ListEvents(context.Background(), tc.req)
				if err != nil {
					t.Fatal(err)
				}
				if got := jobIDs(resp.GetEvents()); !slices.Equal(got, tc.want) {
					t.Errorf("jobs = %v, want %v", got, tc.want)
				}
			})
		}
	})

	t.Run("Subscribe", func(t *testing.T) {
		cases := []struct {
			name string
			req  *gatewayv1.SubscribeRequest
		}{
			{"job kinds", &gatewayv1.SubscribeRequest{JobKinds: []gatewayv1.JobKind{gatewayv1.JobKind_JOB_KIND_AUDIO}}},
			{"CEL", &gatewayv1.SubscribeRequest{Filter: `event.job.kind == JOB_KIND_AUDIO && event.type == EVENT_TYPE_VIDEO_COMPLETED`}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				// The deadline turns a missing event into a failure, not a hang.
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				tc.req.Start = &gatewayv1.SubscribeRequest_FromBeginning{FromBeginning: true}
				stream := f.subscribe(ctx, tc.req)
				var got []string
				for range audioJobs {
					resp, err := stream.Recv()
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, resp.GetEvent().GetJob().GetJobId())
				}
				if !slices.Equal(got, audioJobs) {
					t.Fatalf("catch-up jobs = %v, want %v", got, audioJobs)
				}
				// Live: a non-matching event is skipped, the next matching
				// one arrives next.
				f.post("live-video-"+tc.name, gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED)
				body := `{"event":"audio.completed","timestamp":"2026-11-26T12:00:00Z","data":{"job_id":"live-audio"}}`
				if code, out := f.srv.Post(t, "/webhooks/klingai", signed([]byte(body+strings.Repeat(" ", len(tc.name)))), []byte(body+strings.Repeat(" ", len(tc.name)))); code != http.StatusOK {
					t.Fatalf("post: %d %s", code, out)
				}
				resp, err := stream.Recv()
				if err != nil {
					t.Fatal(err)
				}
				if ev := resp.GetEvent(); ev.GetJob().GetJobId() != "live-audio" || ev.GetJob().GetKind() != gatewayv1.JobKind_JOB_KIND_AUDIO {
					t.Fatalf("live event = %v", ev)
				}
			})
		}
	})

	t.Run("REST", func(t *testing.T) {
		code, out := restGet(t, f.srv, "/v1/events", url.Values{"filter": {`event.job.kind == JOB_KIND_AUDIO && size(event.job.audios) > 0`}})
		if code != http.StatusOK {
			t.Fatalf("GET /v1/events?filter: %d %s", code, out)
		}
		var page struct {
			Events []struct {
				Job struct {
					JobID  string `json:"jobId"`
					Kind   string `json:"kind"`
					Audios []struct {
						Mp3URL string `json:"mp3Url"`
					} `json:"audios"`
				} `json:"job"`
			} `json:"events"`
		}
		if err := json.Unmarshal(out, &page); err != nil {
			t.Fatal(err)
		}
		if len(page.Events) != 2 {
			t.Fatalf("got %d events: %s", len(page.Events), out)
		}
		for _, ev := range page.Events {
			if ev.Job.Kind != "JOB_KIND_AUDIO" || len(ev.Job.Audios) == 0 || ev.Job.Audios[0].Mp3URL == "" {
				t.Errorf("event %+v lacks kind or audios[0].mp3Url", ev.Job)
			}
		}
		code, out = restGet(t, f.srv, "/v1/events", url.Values{"jobKinds": {"JOB_KIND_VOICE", "JOB_KIND_SUBTITLE"}})
		if code != http.StatusOK || strings.Count(string(out), `"jobId"`) != 2 || !strings.Contains(string(out), "870001234567890101") || !strings.Contains(string(out), "870001234567890401") {
			t.Errorf("GET /v1/events?jobKinds=...: %d %s", code, out)
		}
	})

	t.Run("refused", func(t *testing.T) {
		cases := []struct {
			name, filter, mention string
		}{
			{"syntax", `event.job.kind ==`, "line 1, column 18"},
			{"unknown field", `event.job.knd == JOB_KIND_AUDIO`, "line 1, column 10"},
			{"not boolean", `event.job.model`, "boolean"},
			{"too costly", `event.job.images.all(a, event.job.images.all(b, event.job.images.all(c, a.url + b.url == c.url)))`, "too costly"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				_, err := f.events().ListEvents(context.Background(), &gatewayv1.ListEventsRequest{Filter: tc.filter})
				if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.mention) {
					t.Errorf("ListEvents: %v, want INVALID_ARGUMENT mentioning %q", err, tc.mention)
				}
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				stream, err := f.events().Subscribe(ctx, &gatewayv1.SubscribeRequest{Filter: tc.filter})
				if err == nil {
					_, err = stream.Recv()
				}
				if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.mention) {
					t.Errorf("Subscribe: %v, want INVALID_ARGUMENT mentioning %q", err, tc.mention)
				}
				code, out := restGet(t, f.srv, "/v1/events", url.Values{"filter": {tc.filter}})
				var body struct {
					Error string `json:"error"`
				}
				_ = json.Unmarshal(out, &body)
				if code != http.StatusBadRequest || !strings.Contains(string(out), tc.mention) {
					t.Errorf("GET /v1/events: %d %s, want 400 mentioning %q", code, out, tc.mention)
				}
			})
		}
		_, err := f.events().ListEvents(context.Background(), &gatewayv1.ListEventsRequest{JobKinds: []gatewayv1.JobKind{42}})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "job_kinds") {
			t.Errorf("unknown job kind: %v", err)
		}
	})
}

// TestUnknownOutputIsKeptAndCounted: a callback with an output type
// klingfan does not know is accepted (never a 4xx), stored with the
// outputs it does know and its raw body, and counted as partially
// normalized.
func TestUnknownOutputIsKeptAndCounted(t *testing.T) {
	f := startFanout(t)
	postPayload(t, f.srv, "v2_unknown_output")
	resp, err := f.events().ListEvents(context.Background(), &gatewayv1.ListEventsRequest{View: gatewayv1.EventView_EVENT_VIEW_FULL})
	if err != nil {
		t.Fatal(err)
	}
	if evs := resp.GetEvents(); len(evs) != 1 || len(evs[0].GetJob().GetVideos()) != 1 || !strings.Contains(string(evs[0].GetRawBody()), `"hologram"`) {
		t.Fatalf("stored %v", evs)
	}
	code, out := restGet(t, f.srv, "/metrics", nil)
	if code != http.StatusOK || !strings.Contains(string(out), "klingfan_ingest_partially_normalized_total 1\n") {
		t.Errorf("/metrics: %d, partially normalized counter not 1", code)
	}
}
