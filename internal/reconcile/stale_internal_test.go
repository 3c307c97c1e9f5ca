package reconcile

import (
	"context"
	"encoding/json"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/jobs"
	"github.com/klingfan/klingfan/internal/klingapi"
	"github.com/klingfan/klingfan/internal/klingfamily"
)

// rateLimitedOnce answers the first single-task query with code 1302 and
// then knows one finished task in the first family.
type rateLimitedOnce struct{ gets atomic.Int64 }

func (*rateLimitedOnce) ListPage(context.Context, klingfamily.Family, int, int) ([]klingapi.Task, error) {
	return nil, nil
}

func (*rateLimitedOnce) ListTasks(context.Context, klingfamily.List, klingapi.TaskQuery) (klingapi.TaskPage, error) {
	return klingapi.TaskPage{}, nil
}

func (a *rateLimitedOnce) GetTask(_ context.Context, f klingfamily.Family, id string, _ bool) (klingapi.Task, error) {
	if a.gets.Add(1) == 1 {
		return klingapi.Task{}, &klingapi.APIError{HTTPStatus: 429, Code: klingapi.CodeRateLimited, Message: "too frequent"}
	}
	if f.Name != klingfamily.All()[0].Name {
		return klingapi.Task{}, klingapi.ErrNotFound
	}
	raw, _ := json.Marshal(map[string]any{"task_id": id, "task_status": "failed", "updated_at": 1})
	return klingapi.Task{ID: id, Status: "failed", UpdatedAt: 1, Raw: raw}, nil
}

func (*rateLimitedOnce) GetTasks(context.Context, klingfamily.Query, []string, bool) ([]klingapi.Task, error) {
	return nil, nil
}

// oneStaleJob lists one submitted job to any query it matches.
type oneStaleJob struct{ queries []jobs.Query }

func (l *oneStaleJob) List(_ context.Context, q jobs.Query) ([]*gatewayv1.JobState, uint64, error) {
	l.queries = append(l.queries, q)
	return []*gatewayv1.JobState{{JobId: "j1", WebhookId: "w", UpdateTime: timestamppb.New(time.Unix(0, 0)),
		Job: &gatewayv1.Job{JobId: "j1", Status: gatewayv1.JobStatus_JOB_STATUS_SUBMITTED}}}, 0, nil
}

func (*oneStaleJob) Get(context.Context, string, string) (*gatewayv1.JobState, error) {
	return nil, jobs.ErrNotFound
}

type submittedLegacy struct{}

func (submittedLegacy) Logged(context.Context, string, string) (Logged, error) {
	return Logged{Statuses: map[gatewayv1.JobStatus]bool{gatewayv1.JobStatus_JOB_STATUS_SUBMITTED: true}, Events: 1, Shape: ShapeLegacy}, nil
}

// TestStaleQueryBacksOffOnRateLimit: a stale-job query answered 1302 is
// retried after the backoff like a listing, counted as an API error, and
// the job found (once, though both listings return it); the jobs listings
// ask for the reconciled registration's non-terminal jobs not updated
// since StaleAfter ago, then for those klingfan created on any.
func TestStaleQueryBacksOffOnRateLimit(t *testing.T) {
	api, lister, app := &rateLimitedOnce{}, &oneStaleJob{}, &countingAppender{}
	now := time.Date(2026, 11, 28, 5, 0, 0, 0, time.UTC)
	r := New(Config{API: api, Append: app, History: submittedLegacy{}, Jobs: lister, StaleAfter: 30 * time.Minute,
		Families: klingfamily.All()[:2], WebhookID: "w", Lookback: time.Hour, Backoff: time.Millisecond, Now: func() time.Time { return now }})
	rep, err := r.RunOnce(context.Background(), 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if app.n.Load() != 1 || rep.APIErrors["1302"] != 1 || rep.StaleQueries["found"] != 1 || api.gets.Load() != 2 {
		t.Fatalf("appended %d, report %+v, %d queries; want 1 append, one 1302, found after 2 queries", app.n.Load(), rep, api.gets.Load())
	}
	if len(rep.Recovered) != 1 || rep.Recovered[0].Family != klingfamily.All()[0].Name {
		t.Errorf("recovered %+v", rep.Recovered)
	}
	if len(lister.queries) != 2 {
		t.Fatalf("stale jobs listed with %+v, want two queries", lister.queries)
	}
	q := lister.queries[0]
	if !q.UpdatedBefore.Equal(now.Add(-30*time.Minute)) || !slices.Equal(q.WebhookIDs, []string{"w"}) || !slices.Equal(q.Statuses, nonTerminal) || q.Created {
		t.Errorf("stale jobs listed with %+v", q)
	}
	// Then the jobs klingfan created on any registration.
	q = lister.queries[1]
	if !q.UpdatedBefore.Equal(now.Add(-30*time.Minute)) || q.WebhookIDs != nil || !slices.Equal(q.Statuses, nonTerminal) || !q.Created {
		t.Errorf("created stale jobs listed with %+v", q)
	}
}

// TestStaleCandidates: where a stale job is looked for, in order.
func TestStaleCandidates(t *testing.T) {
	legacy := families("videos/text2video", "images/generations", "audio/text-to-audio", "audio/video-to-audio")
	all := append(families("text-to-video/kling-2.6", "motion-control/kling-3.0", "solutions/drama_subtitle"), legacy...)
	for _, tc := range []struct {
		name  string
		fams  []klingfamily.Family
		shape Shape
		kind  gatewayv1.JobKind
		want  []string
	}{
		{"legacy, kind unknown: configured order", all, ShapeLegacy, gatewayv1.JobKind_JOB_KIND_UNSPECIFIED, []string{"videos/text2video", "images/generations", "audio/text-to-audio", "audio/video-to-audio"}},
		{"legacy image: families that make images first", all, ShapeLegacy, gatewayv1.JobKind_JOB_KIND_IMAGE, []string{"images/generations", "videos/text2video", "audio/text-to-audio", "audio/video-to-audio"}},
		{"legacy video: video-to-audio makes video too", all, ShapeLegacy, gatewayv1.JobKind_JOB_KIND_VIDEO, []string{"videos/text2video", "audio/video-to-audio", "images/generations", "audio/text-to-audio"}},
		{"new shape: each shared endpoint once", all, ShapeNew, gatewayv1.JobKind_JOB_KIND_VIDEO, []string{"tasks", "solutions"}},
		{"new shape without a newer-API family: nowhere", legacy, ShapeNew, gatewayv1.JobKind_JOB_KIND_VIDEO, nil},
		{"unknown shape: shared endpoints, then families", all, ShapeUnknown, gatewayv1.JobKind_JOB_KIND_AUDIO, []string{"tasks", "solutions", "audio/text-to-audio", "audio/video-to-audio", "videos/text2video", "images/generations"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := New(Config{Families: tc.fams})
			var got []string
			for _, c := range r.candidates(tc.shape, tc.kind) {
				got = append(got, c.label())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("candidates = %v, want %v", got, tc.want)
			}
		})
	}
}
