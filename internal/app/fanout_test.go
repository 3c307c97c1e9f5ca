package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/config"
)

var eventNames = map[gatewayv1.EventType]string{
	gatewayv1.EventType_EVENT_TYPE_VIDEO_CREATED:    "video.created",
	gatewayv1.EventType_EVENT_TYPE_VIDEO_PROCESSING: "video.processing",
	gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED:  "video.completed",
	gatewayv1.EventType_EVENT_TYPE_VIDEO_FAILED:     "video.failed",
}

// posted is what a test delivered, with the sequence the log gave it.
type posted struct {
	seq  uint64
	job  string
	typ  gatewayv1.EventType
	body string
}

// fanout is a running server plus the deliveries made to it.
type fanout struct {
	t    *testing.T
	srv  *apptest.Server
	conn *grpc.ClientConn
	n    int
}

func startFanout(t *testing.T, opts ...apptest.Option) *fanout {
	t.Helper()
	opts = append([]apptest.Option{apptest.WithEnv("KLINGAI_WEBHOOK_SECRET", secret)}, opts...)
	srv := apptest.Start(t, "", opts...)
	return &fanout{t: t, srv: srv, conn: srv.DialAdmin(t)}
}

func (f *fanout) events() gatewayv1.EventServiceClient {
	return gatewayv1.NewEventServiceClient(f.conn)
}

// post delivers one signed event for job of type typ and returns it with
// its sequence.
func (f *fanout) post(job string, typ gatewayv1.EventType) posted {
	f.t.Helper()
	f.n++
	body := fmt.Sprintf(`{"event":%q,"timestamp":"2026-11-26T12:00:00Z","data":{"job_id":%q,"progress":%d}}`, eventNames[typ], job, f.n%100)
	status, out := f.srv.Post(f.t, "/webhooks/klingai", signed([]byte(body)), []byte(body))
	if status != http.StatusOK {
		f.t.Fatalf("post: status %d: %s", status, out)
	}
	resp, err := f.events().ListEvents(context.Background(), &gatewayv1.ListEventsRequest{OrderBy: "sequence desc", PageSize: 1})
	if err != nil || len(resp.GetEvents()) != 1 {
		f.t.Fatalf("reading back the newest event: %v", err)
	}
	return posted{seq: resp.GetEvents()[0].GetSequence(), job: job, typ: typ, body: body}
}

// subscribe opens a stream and returns once the server says it is live.
func (f *fanout) subscribe(ctx context.Context, req *gatewayv1.SubscribeRequest, opts ...grpc.CallOption) grpc.ServerStreamingClient[gatewayv1.SubscribeResponse] {
	f.t.Helper()
	stream, err := f.events().Subscribe(ctx, req, opts...)
	if err != nil {
		f.t.Fatal(err)
	}
	md, err := stream.Header()
	if err != nil {
		f.t.Fatalf("waiting for the stream to be live: %v", err)
	}
	if len(md.Get("klingfan-head-sequence")) == 0 {
		f.t.Fatalf("stream header lacks klingfan-head-sequence: %v", md)
	}
	return stream
}

// receive reads n events from stream, failing after a deadline.
func receive(t *testing.T, stream grpc.ServerStreamingClient[gatewayv1.SubscribeResponse], n int) []uint64 {
	t.Helper()
	seqs, err := tryReceive(stream, n)
	if err != nil {
		t.Fatal(err)
	}
	return seqs
}

// tryReceive reads n events from stream or says why it could not; safe to
// call from any goroutine.
func tryReceive(stream grpc.ServerStreamingClient[gatewayv1.SubscribeResponse], n int) ([]uint64, error) {
	var seqs []uint64
	done := make(chan error, 1)
	go func() {
		for len(seqs) < n {
			resp, err := stream.Recv()
			if err != nil {
				done <- err
				return
			}
			seqs = append(seqs, resp.GetEvent().GetSequence())
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			return seqs, fmt.Errorf("after %d of %d events: %w", len(seqs), n, err)
		}
		return seqs, nil
	case <-time.After(20 * time.Second):
		return nil, fmt.Errorf("timed out waiting for %d events", n)
	}
}

func seqsOf(ps []posted, keep func(posted) bool) []uint64 {
	var out []uint64
	for _, p := range ps {
		if keep(p) {
			out = append(out, p.seq)
		}
	}
	return out
}

func TestSubscribeFilters(t *testing.T) {
	f := startFanout(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	completed := gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED
	failed := gatewayv1.EventType_EVENT_TYPE_VIDEO_FAILED
	subs := []struct {
		name string
		req  *gatewayv1.SubscribeRequest
		keep func(posted) bool
	}{
		{"everything", &gatewayv1.SubscribeRequest{}, func(posted) bool { return true }},
		{"one job", &gatewayv1.SubscribeRequest{JobIds: []string{"job-a"}}, func(p posted) bool { return p.job == "job-a" }},
		{"two jobs", &gatewayv1.SubscribeRequest{JobIds: []string{"job-a", "job-c"}}, func(p posted) bool { return p.job == "job-a" || p.job == "job-c" }},
		{"one type", &gatewayv1.SubscribeRequest{EventTypes: []gatewayv1.EventType{completed}}, func(p posted) bool { return p.typ == completed }},
		{"type or type", &gatewayv1.SubscribeRequest{EventTypes: []gatewayv1.EventType{completed, failed}}, func(p posted) bool { return p.typ == completed || p.typ == failed }},
		{"job and type", &gatewayv1.SubscribeRequest{JobIds: []string{"job-b"}, EventTypes: []gatewayv1.EventType{completed}}, func(p posted) bool { return p.job == "job-b" && p.typ == completed }},
		{"webhook", &gatewayv1.SubscribeRequest{WebhookIds: []string{"default"}}, func(posted) bool { return true }},
		{"other webhook", &gatewayv1.SubscribeRequest{WebhookIds: []string{"elsewhere"}}, func(posted) bool { return false }},
	}
	streams := make([]grpc.ServerStreamingClient[gatewayv1.SubscribeResponse], len(subs))
	for i, s := range subs {
		streams[i] = f.subscribe(ctx, s.req)
	}
	var all []posted
	jobs := []string{"job-a", "job-b", "job-c"}
	types := []gatewayv1.EventType{gatewayv1.EventType_EVENT_TYPE_VIDEO_CREATED, gatewayv1.EventType_EVENT_TYPE_VIDEO_PROCESSING, completed, failed}
	for i := range 24 {
		all = append(all, f.post(jobs[i%3], types[i%4]))
	}
	// A final event every subscriber sees marks the end of the run.
	marker := f.post("job-a", completed)
	all = append(all, marker)
	for i, s := range subs {
		t.Run(s.name, func(t *testing.T) {
			want := seqsOf(all, s.keep)
			if len(want) == 0 {
				return
			}
			got := receive(t, streams[i], len(want))
			if !slices.Equal(got, want) {
				t.Errorf("got sequences %v, want %v", got, want)
			}
		})
	}
}

func TestSubscribeResumeAfterDisconnect(t *testing.T) {
	f := startFanout(t)
	ctx, cancel := context.WithCancel(context.Background())
	stream := f.subscribe(ctx, &gatewayv1.SubscribeRequest{JobIds: []string{"job-r"}})
	var first []posted
	for range 3 {
		first = append(first, f.post("job-r", gatewayv1.EventType_EVENT_TYPE_VIDEO_PROCESSING))
	}
	got := receive(t, stream, 3)
	if want := seqsOf(first, func(posted) bool { return true }); !slices.Equal(got, want) {
		t.Fatalf("first stream got %v, want %v", got, want)
	}
	cancel() // the client goes away
	var missed []posted
	for range 4 {
		missed = append(missed, f.post("job-r", gatewayv1.EventType_EVENT_TYPE_VIDEO_PROCESSING))
		f.post("job-other", gatewayv1.EventType_EVENT_TYPE_VIDEO_PROCESSING)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	resumed := f.subscribe(ctx2, &gatewayv1.SubscribeRequest{JobIds: []string{"job-r"}, Start: &gatewayv1.SubscribeRequest_AfterSequence{AfterSequence: got[len(got)-1]}})
	live := f.post("job-r", gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED)
	want := append(seqsOf(missed, func(posted) bool { return true }), live.seq)
	if after := receive(t, resumed, len(want)); !slices.Equal(after, want) {
		t.Errorf("resumed stream got %v, want exactly the missed events then the live one %v", after, want)
	}
}

func TestSubscribeStartPositions(t *testing.T) {
	f := startFanout(t)
	var ps []posted
	for i := range 4 {
		ps = append(ps, f.post(fmt.Sprintf("job-%d", i), gatewayv1.EventType_EVENT_TYPE_VIDEO_CREATED))
	}
	third, err := f.events().GetEvent(context.Background(), &gatewayv1.GetEventRequest{Sequence: ps[2].seq})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		req  *gatewayv1.SubscribeRequest
		want []uint64
	}{
		{"from the beginning", &gatewayv1.SubscribeRequest{Start: &gatewayv1.SubscribeRequest_FromBeginning{FromBeginning: true}}, seqsOf(ps, func(posted) bool { return true })},
		{"after a sequence", &gatewayv1.SubscribeRequest{Start: &gatewayv1.SubscribeRequest_AfterSequence{AfterSequence: ps[1].seq}}, []uint64{ps[2].seq, ps[3].seq}},
		{"after zero is everything", &gatewayv1.SubscribeRequest{Start: &gatewayv1.SubscribeRequest_AfterSequence{AfterSequence: 0}}, seqsOf(ps, func(posted) bool { return true })},
		{"since the third's receipt", &gatewayv1.SubscribeRequest{Start: &gatewayv1.SubscribeRequest_Since{Since: third.GetEvent().GetReceivedAt()}}, []uint64{ps[2].seq, ps[3].seq}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stream := f.subscribe(ctx, tc.req)
			if got := receive(t, stream, len(tc.want)); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("now sees only later events", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		stream := f.subscribe(ctx, &gatewayv1.SubscribeRequest{})
		later := f.post("job-later", gatewayv1.EventType_EVENT_TYPE_VIDEO_CREATED)
		if got := receive(t, stream, 1); got[0] != later.seq {
			t.Errorf("got %v, want [%d]", got, later.seq)
		}
	})
}

// A subscriber that stops reading must not delay another, and must later
// receive every event, in order, once it reads again.
func TestStalledSubscriber(t *testing.T) {
	f := startFanout(t, apptest.WithConfig(func(c *config.Config) { c.StreamBuffer = 4 }))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Small flow-control windows make the stalled client's transport fill
	// quickly, so the server's Send blocks and the hub has to switch it to
	// catch-up.
	stalledConn := f.srv.Dial(t,
		grpc.WithPerRPCCredentials(apptest.BearerCreds(apptest.AdminToken)),
		grpc.WithInitialWindowSize(1<<16), grpc.WithInitialConnWindowSize(1<<16))
	stalledStream, err := gatewayv1.NewEventServiceClient(stalledConn).Subscribe(ctx, &gatewayv1.SubscribeRequest{View: gatewayv1.EventView_EVENT_VIEW_FULL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stalledStream.Header(); err != nil {
		t.Fatal(err)
	}
	healthy := f.subscribe(ctx, &gatewayv1.SubscribeRequest{})

	const n = 600
	var want []uint64
	var (
		got     []uint64
		recvErr error
		wg      sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		got, recvErr = tryReceive(healthy, n)
	}()
	// Bodies padded so that a few hundred events exceed the windows.
	pad := strings.Repeat("x", 900)
	for i := range n {
		body := fmt.Sprintf(`{"event":"video.processing","timestamp":"2026-11-26T12:00:00Z","data":{"job_id":"job-%d","prompt":"%s"}}`, i, pad)
		if status, out := f.srv.Post(t, "/webhooks/klingai", signed([]byte(body)), []byte(body)); status != http.StatusOK {
			t.Fatalf("post %d: %d %s", i, status, out)
		}
		want = append(want, uint64(i+1))
	}
	wg.Wait()
	if recvErr != nil {
		t.Fatalf("healthy subscriber: %v", recvErr)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("healthy subscriber got %d events, not 1..%d in order", len(got), n)
	}
	// The stalled subscriber has read nothing yet. It must have been moved
	// to catch-up, and now gets everything in order.
	if metric := scrape(t, f.srv, "klingfan_hub_catchups_total"); metric < 1 {
		t.Errorf("klingfan_hub_catchups_total = %v, want at least 1", metric)
	}
	if late := receive(t, stalledStream, n); !slices.Equal(late, want) {
		t.Fatalf("stalled subscriber got %d events with gaps or duplicates", len(late))
	}
	after := f.post("job-after", gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED)
	if got := receive(t, stalledStream, 1); got[0] != after.seq {
		t.Errorf("after catching up the subscriber got %v, want the live event %d", got, after.seq)
	}
}

func TestSubscribeOutOfRange(t *testing.T) {
	f := startFanout(t, apptest.WithConfig(func(c *config.Config) {
		c.Retention = time.Second
		c.DedupWindow = time.Second
	}))
	for range 3 {
		f.post("job-old", gatewayv1.EventType_EVENT_TYPE_VIDEO_CREATED)
	}
	// Wait for retention to remove them.
	apptest.Eventually(t, 15*time.Second, "events to expire", func() bool {
		resp, err := f.events().ListEvents(context.Background(), &gatewayv1.ListEventsRequest{})
		return err == nil && len(resp.GetEvents()) == 0
	})
	stream, err := f.events().Subscribe(context.Background(), &gatewayv1.SubscribeRequest{Start: &gatewayv1.SubscribeRequest_AfterSequence{AfterSequence: 1}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	if status.Code(err) != codes.OutOfRange || !strings.Contains(status.Convert(err).Message(), "earliest available sequence 4") {
		t.Fatalf("err = %v, want OUT_OF_RANGE naming earliest sequence 4", err)
	}
}

func TestSubscribeInvalidArguments(t *testing.T) {
	f := startFanout(t)
	many := make([]string, 1001)
	for i := range many {
		many[i] = fmt.Sprint("job-", i)
	}
	cases := []struct {
		name string
		req  *gatewayv1.SubscribeRequest
	}{
		{"unknown event type", &gatewayv1.SubscribeRequest{EventTypes: []gatewayv1.EventType{99}}},
		{"unspecified event type", &gatewayv1.SubscribeRequest{EventTypes: []gatewayv1.EventType{0}}},
		{"empty job id", &gatewayv1.SubscribeRequest{JobIds: []string{""}}},
		{"too many job ids", &gatewayv1.SubscribeRequest{JobIds: many}},
		{"empty webhook id", &gatewayv1.SubscribeRequest{WebhookIds: []string{""}}},
		{"unknown view", &gatewayv1.SubscribeRequest{View: 7}},
		{"invalid since", &gatewayv1.SubscribeRequest{Start: &gatewayv1.SubscribeRequest_Since{Since: &timestamppb.Timestamp{Seconds: -1 << 62}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stream, err := f.events().Subscribe(context.Background(), tc.req)
			if err == nil {
				_, err = stream.Recv()
			}
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("err = %v, want INVALID_ARGUMENT", err)
			}
		})
	}
}

func TestShutdownEndsStreamsUnavailable(t *testing.T) {
	f := startFanout(t)
	stream := f.subscribe(context.Background(), &gatewayv1.SubscribeRequest{})
	errc := make(chan error, 1)
	go func() {
		_, err := stream.Recv()
		errc <- err
	}()
	f.srv.Stop(t)
	select {
	case err := <-errc:
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("err = %v, want UNAVAILABLE", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("stream not ended by shutdown")
	}
}

func TestListAndGetEvents(t *testing.T) {
	f := startFanout(t)
	var ps []posted
	for i := range 7 {
		ps = append(ps, f.post(fmt.Sprintf("job-%d", i%2), gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED))
	}
	ctx := context.Background()
	list := func(req *gatewayv1.ListEventsRequest) []uint64 {
		t.Helper()
		var seqs []uint64
		for {
			resp, err := f.events().ListEvents(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.GetEvents()) > int(req.GetPageSize()) && req.GetPageSize() > 0 {
				t.Fatalf("page of %d exceeds page_size %d", len(resp.GetEvents()), req.GetPageSize())
			}
			for _, ev := range resp.GetEvents() {
				seqs = append(seqs, ev.GetSequence())
				if len(ev.GetRawBody()) != 0 {
					t.Error("raw body returned without EVENT_VIEW_FULL")
				}
			}
			if resp.GetNextPageToken() == "" {
				return seqs
			}
			req.PageToken = resp.GetNextPageToken()
		}
	}
	all := seqsOf(ps, func(posted) bool { return true })
	desc := slices.Clone(all)
	slices.Reverse(desc)
	job0 := seqsOf(ps, func(p posted) bool { return p.job == "job-0" })
	cases := []struct {
		name string
		req  *gatewayv1.ListEventsRequest
		want []uint64
	}{
		{"all in one page", &gatewayv1.ListEventsRequest{}, all},
		{"pages of two", &gatewayv1.ListEventsRequest{PageSize: 2}, all},
		{"newest first in pages of three", &gatewayv1.ListEventsRequest{PageSize: 3, OrderBy: "sequence desc"}, desc},
		{"one job in pages of one", &gatewayv1.ListEventsRequest{PageSize: 1, JobIds: []string{"job-0"}}, job0},
		{"no match", &gatewayv1.ListEventsRequest{EventTypes: []gatewayv1.EventType{gatewayv1.EventType_EVENT_TYPE_VIDEO_FAILED}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := list(tc.req); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}

	t.Run("page token from other filters is refused", func(t *testing.T) {
		resp, err := f.events().ListEvents(ctx, &gatewayv1.ListEventsRequest{PageSize: 1})
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.events().ListEvents(ctx, &gatewayv1.ListEventsRequest{PageSize: 1, PageToken: resp.GetNextPageToken(), JobIds: []string{"job-1"}})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("err = %v, want INVALID_ARGUMENT", err)
		}
		forged := []byte(resp.GetNextPageToken())
		forged[3] ^= 1
		_, err = f.events().ListEvents(ctx, &gatewayv1.ListEventsRequest{PageSize: 1, PageToken: string(forged)})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("forged token: err = %v, want INVALID_ARGUMENT", err)
		}
	})

	t.Run("get by sequence and by id", func(t *testing.T) {
		bySeq, err := f.events().GetEvent(ctx, &gatewayv1.GetEventRequest{Sequence: ps[3].seq, View: gatewayv1.EventView_EVENT_VIEW_FULL})
		if err != nil {
			t.Fatal(err)
		}
		if string(bySeq.GetEvent().GetRawBody()) != ps[3].body {
			t.Errorf("raw body = %q, want %q", bySeq.GetEvent().GetRawBody(), ps[3].body)
		}
		byID, err := f.events().GetEvent(ctx, &gatewayv1.GetEventRequest{Id: bySeq.GetEvent().GetId()})
		if err != nil {
			t.Fatal(err)
		}
		if byID.GetEvent().GetSequence() != ps[3].seq || len(byID.GetEvent().GetRawBody()) != 0 {
			t.Errorf("by id = %v", byID.GetEvent())
		}
	})

	errCases := []struct {
		name string
		req  *gatewayv1.GetEventRequest
		code codes.Code
	}{
		{"missing sequence", &gatewayv1.GetEventRequest{Sequence: 999}, codes.NotFound},
		{"missing id", &gatewayv1.GetEventRequest{Id: "evt_nothere"}, codes.NotFound},
		{"neither", &gatewayv1.GetEventRequest{}, codes.InvalidArgument},
		{"both", &gatewayv1.GetEventRequest{Sequence: 1, Id: "evt_x"}, codes.InvalidArgument},
		{"id with a subject wildcard", &gatewayv1.GetEventRequest{Id: "evt.>"}, codes.NotFound},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := f.events().GetEvent(ctx, tc.req); status.Code(err) != tc.code {
				t.Errorf("err = %v, want %v", err, tc.code)
			}
		})
	}
}

// The REST stream is newline-delimited JSON, live once headers arrive.
func TestSubscribeOverREST(t *testing.T) {
	f := startFanout(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.srv.HTTPURL+"/v1/events:subscribe?jobIds=job-rest", nil)
	req.Header.Set("Authorization", "Bearer "+apptest.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	f.post("job-other", gatewayv1.EventType_EVENT_TYPE_VIDEO_CREATED)
	want := f.post("job-rest", gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED)
	line, err := bufio.NewReader(resp.Body).ReadBytes('\n')
	if err != nil {
		t.Fatal(err)
	}
	var chunk struct {
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(line, &chunk); err != nil {
		t.Fatalf("line %q: %v", line, err)
	}
	var got gatewayv1.SubscribeResponse
	if err := protojson.Unmarshal(chunk.Result, &got); err != nil {
		t.Fatal(err)
	}
	if got.GetEvent().GetSequence() != want.seq || got.GetEvent().GetJob().GetJobId() != "job-rest" {
		t.Errorf("got %v, want sequence %d", got.GetEvent(), want.seq)
	}
}

// scrape reads one unlabelled metric from /metrics.
func scrape(t *testing.T, srv *apptest.Server, name string) float64 {
	t.Helper()
	resp, err := http.Get(srv.HTTPURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var v float64
		if _, err := fmt.Sscanf(sc.Text(), name+" %g", &v); err == nil {
			return v
		}
	}
	return -1
}

// One token cannot hold more streams than --max-streams-per-token; closing
// one frees its slot.
func TestStreamsPerTokenLimit(t *testing.T) {
	f := startFanout(t, apptest.WithConfig(func(c *config.Config) { c.MaxStreamsPerToken = 2 }))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first, firstCancel := context.WithCancel(ctx)
	f.subscribe(first, &gatewayv1.SubscribeRequest{})
	f.subscribe(ctx, &gatewayv1.SubscribeRequest{})
	third, err := f.events().Subscribe(ctx, &gatewayv1.SubscribeRequest{})
	if err == nil {
		_, err = third.Recv()
	}
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("third stream: err = %v, want RESOURCE_EXHAUSTED", err)
	}
	firstCancel()
	apptest.Eventually(t, 10*time.Second, "a freed slot", func() bool {
		s, err := f.events().Subscribe(ctx, &gatewayv1.SubscribeRequest{})
		if err != nil {
			return false
		}
		_, err = s.Header()
		return err == nil && len(s.Trailer()) == 0 && func() bool {
			md, _ := s.Header()
			return len(md.Get("klingfan-head-sequence")) > 0
		}()
	})
}
