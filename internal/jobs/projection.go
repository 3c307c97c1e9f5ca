package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/errkind"
	"github.com/klingfan/klingfan/internal/jobstate"
	"github.com/klingfan/klingfan/internal/retry"
)

var (
	// ErrNotFound reports that no state exists for the requested job: the
	// projection has not seen an event for it, or retention removed it.
	ErrNotFound = errkind.New(errkind.NotFound, "jobs", "job not found")
	// ErrUnavailable reports that the bucket could not be reached; a retry
	// may succeed.
	ErrUnavailable = errkind.New(errkind.Unavailable, "jobs", "job states unavailable; retry later")
)

// Timings of the projection's background work.
const (
	// checkpointEvery is how often Run records how far it has folded, so a
	// restart replays at most a few seconds of the log (harmlessly: the
	// fold is idempotent).
	checkpointEvery = time.Second
	// maxCASAttempts bounds the retries of one write that keeps losing the
	// compare-and-set to other replicas folding the same job.
	maxCASAttempts = 16
	// requestTimeout bounds one bucket round trip without a caller deadline.
	requestTimeout = 5 * time.Second
)

// Scanner reads a stream newest first: store.Store.ScanBackward, which
// List uses on the bucket's stream.
type Scanner interface {
	ScanBackward(ctx context.Context, stream jetstream.Stream, filters []string, first, from uint64, limit, page int,
		visit func(seq uint64, written time.Time, data []byte) bool) (next uint64, err error)
}

// Log is the event log as the projection follows it: the hub, which hands
// it every event of the one tail that also feeds the streams.
type Log interface {
	// Follow calls fn for every event with sequence > after, in order,
	// until ctx ends; fn runs on one goroutine and must not modify the
	// event.
	Follow(ctx context.Context, after uint64, fn func(*gatewayv1.Event)) error
}

// Config configures Open.
type Config struct {
	// Store is the log the states are folded from and the bucket lives
	// beside: it ensures the bucket as store.Assets configures it (kept as
	// long as the log keeps events, capped by its share of the embedded
	// store's budget), and lists the states newest first.
	Store Store
	// Log is where the states are folded from.
	Log Log
	// Metrics, when set, counts finished jobs, their cost and duration.
	Metrics *Metrics
	// Logger receives the projection's diagnostics.
	Logger *slog.Logger
}

// Store is what the projection needs of the store: *store.Store.
type Store interface {
	Scanner
	EnsureBucket(ctx context.Context, bucket string) (jetstream.KeyValue, error)
	JetStream() jetstream.JetStream
}

// Projection is the job state bucket and the tail that keeps it current.
// Get and List are safe for concurrent use; Run is called once.
type Projection struct {
	cfg    Config
	log    *slog.Logger
	nc     *nats.Conn
	kv     jetstream.KeyValue
	stream jetstream.Stream
	// folded is the sequence through which this process has folded the log.
	folded atomic.Uint64
	// written caches the states this process wrote last, with their
	// revisions, so folding an event usually costs one write and no read.
	// A stale entry (another replica wrote since) only makes the
	// compare-and-set fail, and the key is then read afresh. Only Run's
	// goroutine uses it.
	written map[string]cachedState
	// signal wakes WaitFolded when folded advances.
	signal foldSignal
}

// cachedState is a state as this process last wrote it.
type cachedState struct {
	state *gatewayv1.JobState
	rev   uint64
}

// maxCached bounds the write cache; when full it starts over.
const maxCached = 16384

// Open ensures the bucket (store.Assets' row for BucketName).
func Open(ctx context.Context, cfg Config) (*Projection, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	kv, err := cfg.Store.EnsureBucket(ctx, BucketName)
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	js := cfg.Store.JetStream()
	stream, err := js.Stream(ctx, kvStream)
	if err != nil {
		return nil, classify("open bucket stream", err)
	}
	return &Projection{cfg: cfg, log: cfg.Logger, nc: js.Conn(), kv: kv, stream: stream,
		written: make(map[string]cachedState)}, nil
}

// Folded returns the log sequence through which this process has folded
// every event.
func (p *Projection) Folded() uint64 { return p.folded.Load() }

// Run folds the log into the bucket until ctx ends. It starts after the
// recorded checkpoint, so after a crash it catches up from the log; events
// folded before the crash are skipped by the sequence guard. It returns nil
// when ctx ends.
func (p *Projection) Run(ctx context.Context) error {
	after, err := retry.Forever(ctx, func() (uint64, error) {
		cp, _, err := p.loadCheckpoint(ctx)
		return cp, err
	}, func(err error, _ time.Duration) {
		p.log.Warn("jobs: reading the projection checkpoint failed; retrying", slog.Any("err", err))
	})
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return err
	}
	p.folded.Store(after)
	p.advanced()
	p.cfg.Metrics.projected(after)
	p.log.Info("jobs: projection following the log", slog.Uint64("after", after))

	done := make(chan struct{})
	go func() {
		defer close(done)
		p.checkpointLoop(ctx, after)
	}()
	// Follow hands events to a folder goroutine through a queue, so that
	// when the log runs ahead (an ingest burst) the folder takes whatever
	// has queued up at once and writes each job's state once per batch
	// rather than once per event: bucket writes, not the fold, are the
	// projection's cost.
	queue := make(chan *gatewayv1.Event, maxBatch)
	folded := make(chan struct{})
	go func() {
		defer close(folded)
		p.foldQueue(ctx, queue)
	}()
	// The queue must hold a prefix of the log: the folder advances Folded,
	// and the checkpoint, past the last event it folds. Follow may still
	// hand over events it had read when ctx ended, so once one is dropped
	// for the stop no later one may be queued, or a restart would resume
	// past the hole.
	err = p.cfg.Log.Follow(ctx, after, func(ev *gatewayv1.Event) {
		if ctx.Err() != nil {
			return
		}
		select {
		case queue <- ev:
		case <-ctx.Done():
		}
	})
	close(queue)
	<-folded
	<-done
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("jobs: log tail stopped: %w", err)
}

// maxBatch bounds the events folded per round of bucket writes, and the
// queue between the tail and the folder: room for a pause's worth of
// events (foldEvery) at several times the rate one core can ingest.
const maxBatch = 8192

// foldEvery is the least time between the starts of two rounds of bucket
// writes. An event that arrives after a quiet spell is folded at once;
// while events keep arriving, those of the next foldEvery are gathered
// into one round, so a job with several events in that time is written
// once rather than once per event. A bucket write costs about as much as
// the event's own append (docs/performance.md), so without the pause a
// folder that keeps up writes once per event whatever the jobs.
const foldEvery = 100 * time.Millisecond

// foldQueue folds the queued events until the queue closes or ctx ends,
// a batch at a time: everything queued, grouped by job in log order, one
// compare-and-set write per job, in rounds that start at least foldEvery
// apart. Folded advances past a batch once all of its writes are
// acknowledged.
func (p *Projection) foldQueue(ctx context.Context, queue <-chan *gatewayv1.Event) {
	var (
		batch []*gatewayv1.Event
		order []string
		byKey = make(map[string][]*gatewayv1.Event)
		// round is when the last round of writes started.
		round time.Time
		pause = time.NewTimer(foldEvery)
	)
	pause.Stop()
	for ev := range queue {
		batch = append(batch[:0], ev)
		// The pause waits on the clock alone, not on the queue: events
		// queue up meanwhile without waking the folder for each one.
		if wait := foldEvery - time.Since(round); wait > 0 {
			pause.Reset(wait)
			select {
			case <-pause.C:
			case <-ctx.Done():
			}
		}
		round = time.Now()
	more:
		for len(batch) < maxBatch {
			select {
			case ev, ok := <-queue:
				if !ok {
					break more
				}
				batch = append(batch, ev)
			default:
				break more
			}
		}
		order = order[:0]
		clear(byKey)
		for _, ev := range batch {
			jobID := ev.GetJob().GetJobId()
			if jobID == "" || !validKeyToken(ev.GetWebhookId()) {
				continue // an event about no job has no state to fold into
			}
			key := stateKey(ev.GetWebhookId(), jobID)
			if _, ok := byKey[key]; !ok {
				order = append(order, key)
			}
			byKey[key] = append(byKey[key], ev)
		}
		for _, key := range order {
			if !p.applyRetrying(ctx, key, byKey[key]) {
				return
			}
		}
		last := batch[len(batch)-1].GetSequence()
		p.folded.Store(last)
		p.advanced()
		p.cfg.Metrics.projected(last)
	}
}

// applyRetrying applies evs until it succeeds, backing off between
// failures; it reports false when ctx ended first.
func (p *Projection) applyRetrying(ctx context.Context, key string, evs []*gatewayv1.Event) bool {
	_, err := retry.Forever(ctx, func() (struct{}, error) {
		return struct{}{}, p.apply(ctx, key, evs)
	}, func(err error, _ time.Duration) {
		p.log.Warn("jobs: folding events failed; retrying", slog.Uint64("sequence", evs[0].GetSequence()), slog.Any("err", err))
	})
	return err == nil
}

// checkpointLoop records Folded every checkpointEvery and once more when
// ctx ends.
func (p *Projection) checkpointLoop(ctx context.Context, saved uint64) {
	tick := time.NewTicker(checkpointEvery)
	defer tick.Stop()
	save := func(ctx context.Context) {
		if f := p.folded.Load(); f > saved {
			if err := p.saveCheckpoint(ctx, f); err != nil {
				p.log.Debug("jobs: saving the checkpoint failed", slog.Any("err", err))
				return
			}
			saved = f
		}
	}
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), requestTimeout)
			save(final)
			cancel()
			return
		case <-tick.C:
			save(ctx)
		}
	}
}

// apply folds evs, events of one job (key) in log order, into the job's
// state with one compare-and-set write, and counts the job's metrics when
// this write is the one that finished it.
func (p *Projection) apply(ctx context.Context, key string, evs []*gatewayv1.Event) error {
	jobID := evs[0].GetJob().GetJobId()
	type step struct {
		prev, next *gatewayv1.JobState
		ev         *gatewayv1.Event
		outcome    jobstate.Outcome
	}
	steps := make([]step, 0, len(evs))
	for attempt := 1; ; attempt++ {
		cached, ok := p.written[key]
		prev, rev := cached.state, cached.rev
		// Without a cached state, the first attempt assumes the job is new
		// (the usual case: most events of the tail are a job's first) and
		// lets Create's compare-and-set say otherwise; later attempts read.
		if !ok && attempt > 1 {
			var err error
			prev, rev, err = p.load(ctx, kvSubjectPrefix+key)
			if err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		steps = steps[:0]
		next := prev
		for _, ev := range evs {
			n, outcome := jobstate.Fold(next, ev)
			if outcome != jobstate.Skipped {
				steps = append(steps, step{prev: next, next: n, ev: ev, outcome: outcome})
				next = n
			}
		}
		if len(steps) == 0 {
			return nil
		}
		data, err := proto.MarshalOptions{Deterministic: true}.Marshal(next)
		if err != nil {
			return fmt.Errorf("jobs: encode state of %q: %w", jobID, err)
		}
		// A write in flight finishes even when ctx ends (a graceful stop), so
		// a state written is also counted: the metric is incremented by the
		// writer that got the acknowledgement and nobody else.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), requestTimeout)
		var newRev uint64
		if rev == 0 {
			newRev, err = p.kv.Create(wctx, key, data)
		} else {
			newRev, err = p.kv.Update(wctx, key, data, rev)
		}
		cancel()
		if err != nil {
			delete(p.written, key)
		} else {
			if len(p.written) >= maxCached {
				clear(p.written)
			}
			p.written[key] = cachedState{state: next, rev: newRev}
		}
		switch {
		case err == nil:
			for _, st := range steps {
				if st.outcome == jobstate.Recorded {
					p.log.Info("jobs: delivery logged but not applied to the job state",
						slog.String("webhook_id", st.ev.GetWebhookId()), slog.String("job_id", jobID),
						slog.Uint64("sequence", st.ev.GetSequence()), slog.String("status", st.ev.GetJob().GetStatus().String()),
						slog.String("state_status", st.prev.GetJob().GetStatus().String()), slog.String("reason", staleReason(st.prev)))
				}
				p.cfg.Metrics.observe(st.prev, st.next, st.ev)
			}
			return nil
		case lostRace(err) && attempt < maxCASAttempts:
			continue // another replica wrote first: fold onto its state
		default:
			return classify("write state of "+strconv.Quote(jobID), err)
		}
	}
}

// staleReason says why a recorded event did not change the job.
func staleReason(prev *gatewayv1.JobState) string {
	if jobstate.Terminal(prev.GetJob().GetStatus()) {
		return "state is terminal"
	}
	return "update time older than the state's"
}

// classify wraps err with the operation and, for connection-class
// failures, with ErrUnavailable.
func classify(op string, err error) error {
	for _, target := range []error{context.DeadlineExceeded, nats.ErrTimeout, nats.ErrNoResponders,
		nats.ErrConnectionClosed, nats.ErrConnectionDraining, nats.ErrDisconnected, jetstream.ErrNoStreamResponse,
		jetstream.ErrJetStreamNotEnabled, jetstream.ErrStreamNotFound, jetstream.ErrBucketNotFound} {
		if errors.Is(err, target) {
			return fmt.Errorf("jobs: %s: %w: %w", op, ErrUnavailable, err)
		}
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.Code == 503 {
		return fmt.Errorf("jobs: %s: %w: %w", op, ErrUnavailable, err)
	}
	return fmt.Errorf("jobs: %s: %w", op, err)
}

func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, requestTimeout)
}
