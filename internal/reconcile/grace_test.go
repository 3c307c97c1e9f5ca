package reconcile

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/klingapi"
	"github.com/klingfan/klingfan/internal/klingfamily"
)

// oneTaskAPI lists one finished legacy task updated at updated.
type oneTaskAPI struct{ updated time.Time }

func (a oneTaskAPI) ListPage(context.Context, klingfamily.Family, int, int) ([]klingapi.Task, error) {
	raw, _ := json.Marshal(map[string]any{"task_id": "t1", "task_status": "succeed", "created_at": a.updated.UnixMilli(), "updated_at": a.updated.UnixMilli()})
	return []klingapi.Task{{ID: "t1", Status: "succeed", UpdatedAt: a.updated.UnixMilli(), Raw: raw}}, nil
}

func (oneTaskAPI) ListTasks(context.Context, klingfamily.List, klingapi.TaskQuery) (klingapi.TaskPage, error) {
	return klingapi.TaskPage{}, nil
}

func (oneTaskAPI) GetTask(context.Context, klingfamily.Family, string, bool) (klingapi.Task, error) {
	return klingapi.Task{}, klingapi.ErrNotFound
}

func (oneTaskAPI) GetTasks(context.Context, klingfamily.Query, []string, bool) ([]klingapi.Task, error) {
	return nil, nil
}

type nothingLogged struct{}

func (nothingLogged) Logged(context.Context, string, string) (Logged, error) { return Logged{}, nil }

type countingAppender struct{ n atomic.Int64 }

func (c *countingAppender) Append(context.Context, *gatewayv1.Event) (uint64, bool, error) {
	return uint64(c.n.Add(1)), false, nil
}

// TestPeriodicPassLeavesRecentTasksToCallbacks: a periodic pass does not
// recover a task updated within the grace period (its callback may be on
// the way); a pass on request does.
func TestPeriodicPassLeavesRecentTasksToCallbacks(t *testing.T) {
	for _, tc := range []struct {
		name    string
		updated time.Duration // before now
		want    int64
	}{
		{"updated just now", time.Second, 0},
		{"updated before the grace period", 10 * time.Minute, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := &countingAppender{}
			r := New(Config{API: oneTaskAPI{updated: time.Now().Add(-tc.updated)}, Append: app, History: nothingLogged{},
				Families: klingfamily.All()[:1], WebhookID: "w", Lookback: time.Hour, Grace: 2 * time.Minute, Interval: time.Minute})
			r.periodicPass(context.Background())
			if got := app.n.Load(); got != tc.want {
				t.Fatalf("periodic pass appended %d events, want %d", got, tc.want)
			}
			// History here never remembers, so a pass on request appends again.
			if _, err := r.RunOnce(context.Background(), 0, false); err != nil || app.n.Load() != tc.want+1 {
				t.Fatalf("pass on request: %v, appended %d in all, want %d", err, app.n.Load(), tc.want+1)
			}
		})
	}
}
