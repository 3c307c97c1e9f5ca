package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/apptest"
	"github.com/klingfan/klingfan/internal/hub"
	"github.com/klingfan/klingfan/internal/jobs"
	"github.com/klingfan/klingfan/internal/jobstate"
	"github.com/klingfan/klingfan/internal/store"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func openStore(t *testing.T, dir string) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, store.Config{DataDir: dir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// replica is one projection over a store, as one klingfan process runs it:
// following a hub that the store's tail feeds.
type replica struct {
	t    *testing.T
	p    *jobs.Projection
	reg  *prometheus.Registry
	stop context.CancelFunc
	done chan error
}

func runReplica(t *testing.T, s *store.Store) *replica {
	t.Helper()
	reg := prometheus.NewRegistry()
	_, last, err := s.Bounds(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	h := hub.New(hub.Config{Log: s, Last: last})
	p, err := jobs.Open(context.Background(), jobs.Config{
		Store: s, Log: h, Metrics: jobs.NewMetrics(reg), Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{t: t, p: p, reg: reg, stop: cancel, done: make(chan error, 1)}
	tailed := make(chan struct{})
	go func() {
		defer close(tailed)
		_ = s.Tail(ctx, last, h.Publish)
	}()
	go func() {
		err := p.Run(ctx)
		<-tailed
		h.Close()
		r.done <- err
	}()
	t.Cleanup(r.halt)
	return r
}

func (r *replica) halt() {
	if r.stop != nil {
		r.stop()
		// Run returns nil when its context ends; anything else is a failure.
		if err := <-r.done; err != nil {
			r.t.Errorf("projection stopped with an error: %v", err)
		}
		r.stop = nil
	}
}

func (r *replica) waitFolded(t *testing.T, seq uint64) {
	t.Helper()
	apptest.Eventually(t, 20*time.Second, fmt.Sprintf("projection folded through %d", seq), func() bool { return r.p.Folded() >= seq })
}

// sum adds the values of the samples of metric whose labels include want.
func (r *replica) sum(t *testing.T, metric string, want map[string]string) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, mf := range mfs {
		if mf.GetName() != metric {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for k, v := range want {
				if !hasLabel(m, k, v) {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				total += m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				total += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return total
}

func hasLabel(m *dto.Metric, k, v string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == k {
			return l.GetValue() == v
		}
	}
	return false
}

// appender writes events the way ingest does, with unique delivery ids.
type appender struct {
	s *store.Store
	n int
}

func (a *appender) add(t *testing.T, webhook string, job *gatewayv1.Job) uint64 {
	t.Helper()
	a.n++
	ev := &gatewayv1.Event{
		Id: fmt.Sprintf("ev%d", a.n), DeliveryId: fmt.Sprintf("d%d", a.n), WebhookId: webhook,
		Type: gatewayv1.EventType(job.GetStatus()), Job: job, ReceivedAt: timestamppb.Now(),
	}
	seq, dup, err := a.s.Append(context.Background(), ev)
	if err != nil || dup {
		t.Fatalf("append: %v (duplicate %v)", err, dup)
	}
	return seq
}

// Billing in units and cash is counted once per job, by kind, model and
// currency, even with the completion logged twice and two replicas folding.
func TestProjectionCountsBillingOncePerJob(t *testing.T) {
	s := openStore(t, t.TempDir())
	a := &appender{s: s}
	audio := func(status gatewayv1.JobStatus) *gatewayv1.Job {
		return &gatewayv1.Job{
			JobId: "audio-1", Status: status, Kind: gatewayv1.JobKind_JOB_KIND_AUDIO, Model: "kling-audio-v1",
			Audios: []*gatewayv1.Audio{{Id: "a1", Mp3Url: "https://cdn.example/a1.mp3"}},
			Billing: []*gatewayv1.Charge{
				{ChargeType: "unit", Amount: "3", PackageType: "audio"},
				{ChargeType: "cash", Amount: "0.75", Currency: "USD"},
			},
		}
	}
	a.add(t, "w1", &gatewayv1.Job{JobId: "audio-1", Status: gatewayv1.JobStatus_JOB_STATUS_PROCESSING, Kind: gatewayv1.JobKind_JOB_KIND_AUDIO})
	a.add(t, "w1", audio(gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED))
	a.add(t, "w1", audio(gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED)) // delivered twice
	// A legacy job: units from final_unit_deduction, a model name no label
	// may carry, a later event without outputs or charge.
	long := strings.Repeat("m", 100)
	a.add(t, "w1", &gatewayv1.Job{JobId: "legacy-1", Status: gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED, Model: long, UnitsDeducted: "1.5",
		Videos: []*gatewayv1.Video{{Url: "https://cdn.example/v.mp4"}}})
	last := a.add(t, "w1", &gatewayv1.Job{JobId: "legacy-1", Status: gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED})

	r1, r2 := runReplica(t, s), runReplica(t, s)
	r1.waitFolded(t, last)
	r2.waitFolded(t, last)

	both := func(metric string, labels map[string]string) float64 {
		return r1.sum(t, metric, labels) + r2.sum(t, metric, labels)
	}
	for _, c := range []struct {
		metric string
		labels map[string]string
		want   float64
	}{
		{"klingfan_job_units_total", map[string]string{"webhook": "w1", "kind": "audio", "model": "kling-audio-v1"}, 3},
		{"klingfan_job_cash_total", map[string]string{"webhook": "w1", "kind": "audio", "currency": "USD"}, 0.75},
		{"klingfan_job_units_total", map[string]string{"webhook": "w1", "kind": "unknown", "model": "other"}, 1.5},
		{"klingfan_jobs_finished_total", map[string]string{"status": "succeeded"}, 2},
		{"klingfan_job_duration_seconds", map[string]string{"webhook": "w1"}, 2},
	} {
		if got := both(c.metric, c.labels); got != c.want {
			t.Errorf("%s%v = %v over both replicas, want %v", c.metric, c.labels, got, c.want)
		}
	}

	st, err := r1.p.Get(context.Background(), "w1", "audio-1")
	if err != nil {
		t.Fatal(err)
	}
	if st.GetEventCount() != 3 || st.GetJob().GetKind() != gatewayv1.JobKind_JOB_KIND_AUDIO || len(st.GetJob().GetBilling()) != 2 || st.GetJob().GetAudios()[0].GetMp3Url() == "" {
		t.Errorf("audio-1: %v", st)
	}
	st, err = r2.p.Get(context.Background(), "", "legacy-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.GetJob().GetVideos()) != 1 || st.GetJob().GetUnitsDeducted() != "1.5" {
		t.Errorf("legacy-1 lost what its first event carried: %v", st)
	}
	kinds, _, err := r1.p.List(context.Background(), jobs.Query{Kinds: []gatewayv1.JobKind{gatewayv1.JobKind_JOB_KIND_AUDIO}, Limit: 10})
	if err != nil || len(kinds) != 1 || kinds[0].GetJobId() != "audio-1" {
		t.Errorf("List(kinds=audio) = %v, %v", kinds, err)
	}
}

// A projection stopped mid-fold and restarted, while another replica folds
// the same log concurrently, ends with exactly the state a fold of the whole
// log gives, for every job.
func TestProjectionAgreesWithLogAfterRestart(t *testing.T) {
	s := openStore(t, t.TempDir())
	a := &appender{s: s}
	rng := rand.New(rand.NewPCG(1, 2))
	statuses := []gatewayv1.JobStatus{1, 2, 2, 3, 4, 5}
	base := time.Now().Add(-time.Hour)
	var last uint64
	appendSome := func(n int) {
		for range n {
			job := &gatewayv1.Job{
				JobId:     fmt.Sprintf("job-%d", rng.IntN(40)),
				Status:    statuses[rng.IntN(len(statuses))],
				UpdatedAt: timestamppb.New(base.Add(time.Duration(rng.IntN(3600)) * time.Second)),
			}
			if rng.IntN(3) == 0 {
				job.Model = "kling-v2-master"
			}
			last = a.add(t, []string{"w1", "w2"}[rng.IntN(2)], job)
		}
	}
	appendSome(400)

	first := runReplica(t, s)
	apptest.Eventually(t, 20*time.Second, "the first replica folding", func() bool { return first.p.Folded() >= 50 })
	first.halt() // stopped mid-fold
	if first.p.Folded() >= last {
		t.Logf("the first replica finished before it was stopped; the restart still re-checks every job")
	}
	appendSome(200)
	second := runReplica(t, s)
	third := runReplica(t, s)
	appendSome(200)
	second.waitFolded(t, last)
	third.waitFolded(t, last)

	// Fold the whole log independently.
	want := map[[2]string]*gatewayv1.JobState{}
	for from := uint64(1); from <= last; {
		evs, next, err := s.Read(context.Background(), from, 500, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			k := [2]string{ev.GetWebhookId(), ev.GetJob().GetJobId()}
			want[k], _ = jobstate.Fold(want[k], ev)
		}
		from = next
	}
	for k, w := range want {
		got, err := second.p.Get(context.Background(), k[0], k[1])
		if err != nil {
			t.Errorf("Get %v: %v", k, err)
			continue
		}
		if !proto.Equal(got, w) {
			t.Errorf("Get %v disagrees with the log:\n got  %v\n want %v", k, got, w)
		}
	}
	// The listing holds every job once, and only those.
	var listed []*gatewayv1.JobState
	var cursor uint64
	for {
		page, next, err := third.p.List(context.Background(), jobs.Query{Limit: 7, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		listed = append(listed, page...)
		if next == 0 {
			break
		}
		cursor = next
	}
	if len(listed) != len(want) {
		t.Errorf("List returned %d states, the log has %d jobs", len(listed), len(want))
	}
	// Finished jobs are counted once over all three replicas.
	terminal := 0
	for _, w := range want {
		if jobstate.Terminal(w.GetJob().GetStatus()) {
			terminal++
		}
	}
	var counted float64
	for _, r := range []*replica{first, second, third} {
		counted += r.sum(t, "klingfan_jobs_finished_total", nil)
	}
	if int(counted) != terminal {
		t.Errorf("finished jobs counted %v times over the replicas, want %d", counted, terminal)
	}
}

// Get fails with ErrNotFound for a job the log never had.
func TestProjectionGetNotFound(t *testing.T) {
	s := openStore(t, t.TempDir())
	r := runReplica(t, s)
	for _, webhook := range []string{"", "w1"} {
		if _, err := r.p.Get(context.Background(), webhook, "nope"); !errors.Is(err, jobs.ErrNotFound) {
			t.Errorf("Get(%q, nope) = %v, want ErrNotFound", webhook, err)
		}
	}
}

// A backlog of one job's events (an ingest burst the projection fell
// behind) is folded into one state with far fewer bucket writes than
// events, and the state still counts every event.
func TestProjectionFoldsABacklogWithFewWrites(t *testing.T) {
	s := openStore(t, t.TempDir())
	a := &appender{s: s}
	const n = 300
	var last uint64
	for i := range n {
		status := gatewayv1.JobStatus_JOB_STATUS_PROCESSING
		if i == n-1 {
			status = gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED
		}
		last = a.add(t, "w1", &gatewayv1.Job{JobId: "hot", Status: status})
	}
	r := runReplica(t, s)
	r.waitFolded(t, last)
	st, err := r.p.Get(context.Background(), "w1", "hot")
	if err != nil {
		t.Fatal(err)
	}
	if st.GetEventCount() != n || st.GetLastSequence() != last || st.GetJob().GetStatus() != gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Errorf("state after the backlog: %v", st)
	}
	if got := r.sum(t, "klingfan_jobs_finished_total", nil); got != 1 {
		t.Errorf("finished jobs counted %v times, want 1", got)
	}
	bucket, err := s.JetStream().Stream(context.Background(), "KV_"+jobs.BucketName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := bucket.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Every write (job states and checkpoints) is a message of the
	// bucket's stream; one per event would be n or more.
	if writes := info.State.LastSeq; writes >= n/2 {
		t.Errorf("%d bucket writes for a backlog of %d events of one job, want far fewer", writes, n)
	}
}

// Events of one job that keep arriving while the projection keeps up are
// written in rounds at least FoldEvery apart: the bucket takes one write
// per round, not one per event, however fast the events come.
func TestProjectionPacesWritesOfALiveJob(t *testing.T) {
	s := openStore(t, t.TempDir())
	a := &appender{s: s}
	r := runReplica(t, s)
	bucket, err := s.JetStream().Stream(context.Background(), "KV_"+jobs.BucketName)
	if err != nil {
		t.Fatal(err)
	}
	writes := func() uint64 {
		info, err := bucket.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return info.State.LastSeq
	}
	before := writes()
	const n = 300
	start := time.Now()
	var last uint64
	for i := range n {
		status := gatewayv1.JobStatus_JOB_STATUS_PROCESSING
		if i == n-1 {
			status = gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED
		}
		last = a.add(t, "w1", &gatewayv1.Job{JobId: "live", Status: status})
	}
	r.waitFolded(t, last)
	elapsed := time.Since(start)
	st, err := r.p.Get(context.Background(), "w1", "live")
	if err != nil {
		t.Fatal(err)
	}
	if st.GetEventCount() != n || st.GetLastSequence() != last || st.GetJob().GetStatus() != gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Errorf("state after %d live events: %v", n, st)
	}
	// One write per round of the job's state, plus a checkpoint a second
	// and one more of each for the rounds under way when the clock read.
	rounds := uint64(elapsed/jobs.FoldEvery) + 1
	checkpoints := uint64(elapsed/time.Second) + 1
	if got, limit := writes()-before, rounds+checkpoints+1; got > limit {
		t.Errorf("%d bucket writes for %d events of one job in %s, want at most %d (one per %s round, one checkpoint a second)",
			got, n, elapsed.Round(time.Millisecond), limit, jobs.FoldEvery)
	}
}
