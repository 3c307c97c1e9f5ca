package natscluster_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/config"
	"github.com/klingfan/klingfan/internal/natscluster"
	"github.com/klingfan/klingfan/internal/verify"
)

// secret is KLINGAI_WEBHOOK_SECRET on every replica.
const secret = "cluster-test-secret"

// longRun reports whether the longer variant was asked for
// (`make test-cluster`); the short one runs in `make test`.
func longRun() bool { return os.Getenv("KLINGFAN_CLUSTER_LONG") != "" }

// harness is a three-node NATS cluster plus the klingfan replicas a test
// starts on it. Everything logs into one buffer, printed when the test
// fails.
type harness struct {
	t    *testing.T
	nats *natscluster.Cluster
	log  *slog.Logger
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	logs := &apptest.SyncBuffer{}
	// Registered first, so it runs last, after every replica stopped.
	// KLINGFAN_CLUSTER_LOGS=1 prints them for passing tests too.
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("KLINGFAN_CLUSTER_LOGS") != "" {
			t.Logf("logs:\n%s", logs.String())
		}
	})
	level := slog.LevelInfo
	if os.Getenv("KLINGFAN_CLUSTER_LOGS") == "debug" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: level}))
	c, err := natscluster.Start(natscluster.Options{Dir: t.TempDir(), Logger: log.With("component", "nats-server")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	h := &harness{t: t, nats: c, log: log}
	h.waitNATS()
	return h
}

// waitNATS waits for JetStream to have a meta leader.
func (h *harness) waitNATS() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.nats.WaitReady(ctx); err != nil {
		h.t.Fatal(err)
	}
}

// replica is one klingfan process (in-process) on the cluster.
type replica struct {
	name     string
	srv      *apptest.Server
	events   gatewayv1.EventServiceClient
	webhooks gatewayv1.WebhookServiceClient
}

// replica starts a klingfan replica on the cluster, with the stream and
// bucket replicated three ways, and waits until it is ready.
func (h *harness) replica(name string) *replica {
	h.t.Helper()
	srv := apptest.Start(h.t, "",
		apptest.WithEnv("KLINGAI_WEBHOOK_SECRET", secret),
		apptest.WithLogger(h.log.With("replica", name)),
		apptest.WithConfig(func(c *config.Config) {
			c.NATSURL = h.nats.URL()
			c.Replicas = 3
		}))
	conn := srv.DialAdmin(h.t)
	return &replica{
		name:     name,
		srv:      srv,
		events:   gatewayv1.NewEventServiceClient(conn),
		webhooks: gatewayv1.NewWebhookServiceClient(conn),
	}
}

// delivery is one Kling callback: a signed video.completed event for job.
type delivery struct {
	job  string
	body []byte
}

func newDelivery(job string) delivery {
	return delivery{job: job, body: fmt.Appendf(nil,
		`{"event":"video.completed","timestamp":"2026-11-26T12:00:00Z","data":{"job_id":%q,"status":"completed","video_url":"https://example.com/%s.mp4"}}`, job, job)}
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// post sends d to the replica's default ingest URL, signed with key, and
// returns the status; a transport failure is an error, not a status.
func (r *replica) post(d delivery, key string) (int, error) {
	req, err := http.NewRequest(http.MethodPost, r.srv.HTTPURL+"/webhooks/klingai", bytes.NewReader(d.body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(verify.HeaderKlingSignature, verify.SignKling([]byte(key), d.body))
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// mustPost posts d once and fails unless the replica acknowledges it.
func (r *replica) mustPost(t *testing.T, d delivery) {
	t.Helper()
	if status, err := r.post(d, secret); err != nil || status != http.StatusOK {
		t.Fatalf("post %s to %s: status %d, err %v", d.job, r.name, status, err)
	}
}

// deliver posts d until a replica acknowledges it, the way Kling retries:
// a 503 or a lost connection is retried with the identical body, which
// the log deduplicates. Any other status is an error.
func deliver(ctx context.Context, r *replica, d delivery) error {
	for {
		status, err := r.post(d, secret)
		switch {
		case err == nil && status == http.StatusOK:
			return nil
		case err == nil && status != http.StatusServiceUnavailable:
			return fmt.Errorf("%s: %s answered %d", d.job, r.name, status)
		}
		select {
		case <-ctx.Done():
			// The last attempt's err (often nil, after a 503) is context for
			// the reader; the deadline is the cause.
			return fmt.Errorf("%s: not acknowledged by %s (last: status %d, err %v): %w", d.job, r.name, status, err, ctx.Err()) //nolint:errorlint // see above
		case <-time.After(50 * time.Millisecond): // Kling's retry delay, not ordering
		}
	}
}

// readyz returns the replica's /readyz status, 0 when unreachable.
func (r *replica) readyz() int {
	resp, err := httpClient.Get(r.srv.HTTPURL + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// listAll pages through the whole log, oldest first.
func (r *replica) listAll(t *testing.T) []*gatewayv1.Event {
	t.Helper()
	var all []*gatewayv1.Event
	token := ""
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := r.events.ListEvents(ctx, &gatewayv1.ListEventsRequest{PageSize: 1000, PageToken: token, OrderBy: "sequence asc"})
		cancel()
		if err != nil {
			t.Fatalf("ListEvents on %s: %v", r.name, err)
		}
		all = append(all, resp.GetEvents()...)
		if token = resp.GetNextPageToken(); token == "" {
			return all
		}
	}
}

// subscriber collects what one Subscribe stream delivers.
type subscriber struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	seqs []uint64
	jobs []string
	err  error // why the stream ended
}

// subscribe opens a stream on r and returns once the server says it is
// live; the stream is read in the background until it ends.
func subscribe(t *testing.T, r *replica, req *gatewayv1.SubscribeRequest) *subscriber {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := r.events.Subscribe(ctx, req)
	if err != nil {
		cancel()
		t.Fatalf("Subscribe on %s: %v", r.name, err)
	}
	if _, err := stream.Header(); err != nil {
		cancel()
		t.Fatalf("Subscribe on %s: waiting for the stream to be live: %v", r.name, err)
	}
	s := &subscriber{cancel: cancel, done: make(chan struct{})}
	go s.read(stream)
	t.Cleanup(s.stop)
	return s
}

func (s *subscriber) read(stream grpc.ServerStreamingClient[gatewayv1.SubscribeResponse]) {
	defer close(s.done)
	for {
		resp, err := stream.Recv()
		s.mu.Lock()
		if err != nil {
			s.err = err
			s.mu.Unlock()
			return
		}
		s.seqs = append(s.seqs, resp.GetEvent().GetSequence())
		s.jobs = append(s.jobs, resp.GetEvent().GetJob().GetJobId())
		s.mu.Unlock()
	}
}

func (s *subscriber) stop() {
	s.cancel()
	<-s.done
}

// received returns what the stream delivered so far and why it ended
// (nil while it is open).
func (s *subscriber) received() (seqs []uint64, jobs []string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seqs), slices.Clone(s.jobs), s.err
}

// waitFor waits until the stream delivered n events; it fails if the
// stream ends first.
func (s *subscriber) waitFor(t *testing.T, n int, d time.Duration, what string) {
	t.Helper()
	apptest.Eventually(t, d, what, func() bool {
		seqs, _, err := s.received()
		if err != nil && len(seqs) < n {
			t.Fatalf("%s: stream ended after %d of %d events: %v", what, len(seqs), n, err)
		}
		return len(seqs) >= n
	})
}

// waitEnded waits until the stream ended and returns why.
func (s *subscriber) waitEnded(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(d):
		t.Fatalf("stream still open after %s", d)
	}
	_, _, err := s.received()
	return err
}

// checkContiguous fails unless seqs is exactly from, from+1, ..., to.
func checkContiguous(t *testing.T, what string, seqs []uint64, from, to uint64) {
	t.Helper()
	if uint64(len(seqs)) != to-from+1 {
		t.Errorf("%s: got %d events, want sequences %d..%d (%d)", what, len(seqs), from, to, to-from+1)
	}
	for i, seq := range seqs {
		if want := from + uint64(i); seq != want {
			t.Errorf("%s: event %d has sequence %d, want %d (a gap or a duplicate)", what, i, seq, want)
			return
		}
	}
}

// checkExactlyOnce fails unless every acknowledged job appears in the log
// exactly once, and the log holds nothing else.
func checkExactlyOnce(t *testing.T, events []*gatewayv1.Event, acked []string) {
	t.Helper()
	count := make(map[string]int, len(events))
	for _, ev := range events {
		count[ev.GetJob().GetJobId()]++
	}
	missing, dup := 0, 0
	for _, job := range acked {
		switch n := count[job]; {
		case n == 0:
			missing++
			if missing <= 5 {
				t.Errorf("acknowledged delivery %s is not in the log", job)
			}
		case n > 1:
			dup++
			if dup <= 5 {
				t.Errorf("acknowledged delivery %s is in the log %d times", job, n)
			}
		}
		delete(count, job)
	}
	if missing+dup > 0 {
		t.Errorf("%d of %d acknowledged deliveries missing, %d duplicated", missing, len(acked), dup)
	}
	for job, n := range count {
		t.Errorf("the log holds %d event(s) for %s, which was never acknowledged", n, job)
	}
}
