package app_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/config"
)

// costliestFilter is about the costliest filter the server accepts: a
// nested loop over a job's images, which on an event with many images
// runs until the cost limit stops it.
const costliestFilter = `event.job.images.exists(a, event.job.images.exists(b, a.index == b.index + 1000))`

// postModel delivers one signed event for job naming model.
func postModel(t *testing.T, f *fanout, job, model string) {
	t.Helper()
	body := fmt.Appendf(nil, `{"event":"video.completed","timestamp":"2026-11-26T12:00:00Z","data":{"job_id":%q,"model":%q}}`, job, model)
	if status, out := f.srv.Post(t, "/webhooks/klingai", signed(body), body); status != http.StatusOK {
		t.Fatalf("post: status %d: %s", status, out)
	}
}

// expectCostlyFilterRefused: a filter whose regex compiles to thousands
// of instructions, or whose pattern comes from the event, is refused by
// both Subscribe and ListEvents naming the clause; a regex the filter
// accepts is not run on an input that would take the evaluation past its
// budget.
func expectCostlyFilterRefused(t *testing.T) {
	f := startFanout(t)
	ctx := t.Context()
	for _, tc := range []struct{ filter, clause string }{
		{`event.type == EVENT_TYPE_VIDEO_COMPLETED && event.job.prompt.matches("(?s).{999}.{999}z")`, `event.job.prompt.matches("(?s).{999}.{999}z")`},
		{`event.job.prompt.matches(event.job.model)`, `event.job.prompt.matches(event.job.model)`},
	} {
		_, err := f.events().ListEvents(ctx, &gatewayv1.ListEventsRequest{Filter: tc.filter})
		grpcCode(t, err, codes.InvalidArgument)
		if !strings.Contains(status.Convert(err).Message(), tc.clause) {
			t.Errorf("ListEvents: %q does not name the clause %s", status.Convert(err).Message(), tc.clause)
		}
		s, err := f.events().Subscribe(ctx, &gatewayv1.SubscribeRequest{Filter: tc.filter})
		if err == nil {
			_, err = s.Recv()
		}
		grpcCode(t, err, codes.InvalidArgument)
	}
	postModel(t, f, "short", "a"+strings.Repeat("x", 20)+"z")
	postModel(t, f, "long", "a"+strings.Repeat("x", 20)+"z"+strings.Repeat("x", 64<<10))
	resp, err := f.events().ListEvents(ctx, &gatewayv1.ListEventsRequest{Filter: `event.job.model.matches("(?s)a.{20}z")`})
	if err != nil {
		t.Fatal(err)
	}
	var jobs []string
	for _, ev := range resp.GetEvents() {
		jobs = append(jobs, ev.GetJob().GetJobId())
	}
	if strings.Join(jobs, ",") != "short" {
		t.Fatalf("matched %v, want only the short model name (the long one is over the evaluation budget)", jobs)
	}
}

// expectCostlyStreamsApart: streams with the costliest accepted filter
// evaluate it on their own goroutines, each evaluation cut at the cost
// limit by events with many images; a plain stream beside them gets every
// event in order, and each costly stream, having judged every event in
// turn, gets the one event its filter names. How long the plain stream
// waits is a benchmark figure (BenchmarkCostlyFilters), not asserted here.
func expectCostlyStreamsApart(t *testing.T) {
	f := startFanout(t, apptest.WithConfig(func(c *config.Config) { c.TokensFile = subscribeTokensFile(t) }))
	ctx := t.Context()
	reader := gatewayv1.NewEventServiceClient(f.srv.Dial(t, grpc.WithPerRPCCredentials(apptest.BearerCreds(subscribeToken))))
	var costly []grpc.ServerStreamingClient[gatewayv1.SubscribeResponse]
	for i := range 5 {
		s, err := reader.Subscribe(ctx, &gatewayv1.SubscribeRequest{Filter: fmt.Sprintf(costliestFilter+` || event.job.job_id == "c%d"`, i)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Header(); err != nil {
			t.Fatal(err)
		}
		costly = append(costly, s)
	}
	plain := f.subscribe(ctx, &gatewayv1.SubscribeRequest{})
	const heavy = 10
	for i := range heavy {
		body := manyImages(fmt.Sprint("p", i), 200)
		if status, out := f.srv.Post(t, "/webhooks/klingai", signed(body), body); status != http.StatusOK {
			t.Fatalf("post: status %d: %s", status, out)
		}
	}
	for i := range costly {
		postModel(t, f, fmt.Sprint("c", i), "kling-v2-master")
	}
	all := receive(t, plain, heavy+len(costly))
	for j := 1; j < len(all); j++ {
		if all[j] != all[j-1]+1 {
			t.Fatalf("the plain stream: sequences %v are not contiguous", all)
		}
	}
	for i, s := range costly {
		if got := receive(t, s, 1); got[0] != all[heavy+i] {
			t.Fatalf("costly stream %d got sequence %d, want %d (its own event)", i, got[0], all[heavy+i])
		}
	}
}

// manyImages is a Kling callback (legacy shape) for job with n images.
func manyImages(job string, n int) []byte {
	var images strings.Builder
	for i := range n {
		if i > 0 {
			images.WriteString(",")
		}
		fmt.Fprintf(&images, `{"index":%d,"url":"https://cdn.example/%d.png"}`, i, i)
	}
	return fmt.Appendf(nil, `{"task_id":%q,"task_status":"succeed","created_at":1773368000000,"updated_at":1773368041007,"task_result":{"images":[%s]}}`, job, images.String())
}

// expectListPageBudget: a page stops scanning when its time budget is
// spent and returns what it found with a token; paging on finds every
// matching event once. The server here has a budget of a nanosecond, so
// each page scans one event.
func expectListPageBudget(t *testing.T) {
	f := startFanout(t, apptest.WithConfig(func(c *config.Config) { c.ListPageBudget = time.Nanosecond }))
	const events = 5
	for i := range events {
		postModel(t, f, fmt.Sprint("j", i), "kling-v2-master")
	}
	// Negated, so that it matches these events, which have no images.
	req := &gatewayv1.ListEventsRequest{Filter: "!(" + costliestFilter + ")", PageSize: 100}
	var got []uint64
	pages := 0
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		resp, err := f.events().ListEvents(ctx, req)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if pages == 1 && len(resp.GetEvents()) == events {
			t.Fatalf("the first page scanned all %d events past its time budget", events)
		}
		for _, ev := range resp.GetEvents() {
			got = append(got, ev.GetSequence())
		}
		if resp.GetNextPageToken() == "" {
			break
		}
		if pages > 10*events {
			t.Fatalf("%d pages and no end", pages)
		}
		req.PageToken = resp.GetNextPageToken()
	}
	if len(got) != events {
		t.Fatalf("paging found %v, want %d events", got, events)
	}
}

// subscribeTokensFile writes a tokens file naming subscribeToken.
func subscribeTokensFile(t *testing.T) string {
	t.Helper()
	path := t.TempDir() + "/tokens"
	if err := os.WriteFile(path, []byte("reader subscribe "+subscribeToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
