// Package reconcile closes the gap Kling's callbacks leave: it asks Kling's
// task query API for tasks updated recently, compares each task's status
// with what klingfan logged, and appends every state the log is missing
// through the same guarded append path ingest uses (dedup, terminal status
// once per job, fan-out), as events with SOURCE_FORMAT_TASK_QUERY.
//
// One replica reconciles at a time: passes run only while this replica
// holds a lease in a JetStream KV bucket, which expires when its holder
// stops renewing it. The end of the last successful pass is kept in the
// same bucket, so a restarted or new holder resumes where the last one
// stopped instead of rescanning the whole lookback.
package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/klingapi"
	"github.com/klingfan/klingfan/internal/klingfamily"
	"github.com/klingfan/klingfan/internal/store"
)

// BucketName is the KV bucket holding the lease and the position.
const BucketName = store.ReconcileBucketName

const (
	leaseKey    = "lease"
	positionKey = "position"
	// maxBackoff caps the wait after repeated rate-limit answers.
	maxBackoff = time.Minute
	// overlap re-lists a little before the stored position, so a task
	// whose update time Kling recorded late is not skipped.
	overlap = 5 * time.Minute
)

// API is the part of Kling's API a pass uses; *klingapi.Client implements it.
type API interface {
	// ListPage and ListTasks list a legacy family and a shared cursor
	// listing (POST /tasks, POST /solutions).
	ListPage(ctx context.Context, f klingfamily.Family, pageNum, pageSize int) ([]klingapi.Task, error)
	ListTasks(ctx context.Context, l klingfamily.List, q klingapi.TaskQuery) (klingapi.TaskPage, error)
	// GetTask and GetTasks query single tasks, for the stale-job queries.
	GetTask(ctx context.Context, f klingfamily.Family, id string, external bool) (klingapi.Task, error)
	GetTasks(ctx context.Context, q klingfamily.Query, ids []string, external bool) ([]klingapi.Task, error)
}

// Appender is the guarded append path (outcome.Guard).
type Appender interface {
	Append(ctx context.Context, ev *gatewayv1.Event) (seq uint64, duplicate bool, err error)
}

// Config configures a Reconciler.
type Config struct {
	API     API
	Append  Appender
	History History
	// KV holds the lease and the position; passes run without a lease and
	// keep no position when nil (a single process, tests).
	KV jetstream.KeyValue
	// Families are the families a pass lists and a stale job is looked for
	// in (klingfamily.Parse): each legacy family through its own paged
	// listing, the newer-API families through their shared cursor listing
	// (POST /tasks, POST /solutions), once per listing.
	Families []klingfamily.Family
	// WebhookID is the registration recovered events belong to.
	WebhookID string
	// Interval between passes; 0 disables the periodic passes.
	Interval time.Duration
	// Lookback bounds how far back a pass lists.
	Lookback time.Duration
	// Grace leaves tasks updated in the last Grace to their callbacks, so
	// the reconciler does not race a callback that is on its way.
	Grace time.Duration
	// PageSize of list requests; 500 when zero, and never more than a
	// listing allows.
	PageSize int
	// Concurrency bounds listings in flight; 2 when zero.
	Concurrency int
	// Jobs lists job states for the stale-job queries: after the listings,
	// every pass queries, one by one, the registration's jobs that are
	// still submitted or processing and whose state has not changed for
	// StaleAfter. Nil or a zero StaleAfter turns the queries off.
	Jobs       JobLister
	StaleAfter time.Duration
	// StaleLimit bounds the stale jobs one pass queries; 500 when zero.
	StaleLimit int
	// Backoff is the first wait after a rate-limit answer; 1s when zero.
	// MaxRetries bounds the retries of one request; 5 when zero.
	Backoff    time.Duration
	MaxRetries int
	// LeaseTTL is how long a lease outlives its holder; 30s when zero.
	LeaseTTL time.Duration
	// Holder names this replica in the lease.
	Holder     string
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Tracer, when set, gives every pass a span; the API client's own
	// transport adds the child spans of its calls. Nil when tracing is off.
	Tracer trace.Tracer
	Now    func() time.Time
}

// Reconciler runs reconcile passes.
type Reconciler struct {
	cfg Config
	log *slog.Logger
	m   *metrics
	now func() time.Time

	passMu sync.Mutex // one pass at a time in this process

	mu   sync.Mutex
	last *Report
}

// New returns a Reconciler; Run starts its periodic passes.
func New(cfg Config) *Reconciler {
	if cfg.PageSize <= 0 {
		cfg.PageSize = klingfamily.MaxPageSize
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 2
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	if cfg.MaxRetries <= 0 {
		cfg.MaxRetries = 5
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Reconciler{cfg: cfg, log: cfg.Logger.With("component", "reconcile"), m: newMetrics(cfg.Registerer), now: cfg.Now}
}

// OpenBucket ensures the lease and position bucket (store.Assets' row
// for BucketName).
func OpenBucket(ctx context.Context, st *store.Store) (jetstream.KeyValue, error) {
	kv, err := st.EnsureBucket(ctx, BucketName)
	if err != nil {
		return nil, fmt.Errorf("reconcile: %w", err)
	}
	return kv, nil
}

// RunOnce runs one pass now over the given lookback (the configured one
// when zero), whether or not this replica holds the lease: appends are
// guarded, so a manual pass next to the periodic one appends nothing twice.
func (r *Reconciler) RunOnce(ctx context.Context, lookback time.Duration, dryRun bool) (Report, error) {
	if lookback <= 0 {
		lookback = r.cfg.Lookback
	}
	r.passMu.Lock()
	defer r.passMu.Unlock()
	rep, err := r.Pass(ctx, r.now().Add(-lookback), dryRun)
	r.record(&rep, err)
	return rep, err
}

// Run passes every Interval while this replica holds the lease, until ctx
// ends. The lease is renewed every LeaseTTL/3 by a goroutine of its own, so
// a long pass does not let it lapse; a pass in flight when the lease is
// lost is cancelled. A failed pass is logged and counted; it never stops
// ingest.
func (r *Reconciler) Run(ctx context.Context) error {
	if r.cfg.Interval <= 0 {
		return nil
	}
	var (
		mu       sync.Mutex
		held     bool
		stopPass context.CancelFunc = func() {}
	)
	renewed := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(r.cfg.LeaseTTL / 3)
		defer t.Stop()
		for {
			ok := r.holdLease(ctx)
			mu.Lock()
			if held && !ok {
				stopPass()
			}
			held = ok
			mu.Unlock()
			select {
			case renewed <- struct{}{}:
			default:
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	defer func() { <-done; r.releaseLease(ctx) }()

	select { // the first pass waits for the first lease attempt
	case <-renewed:
	case <-ctx.Done():
		return nil
	}
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		mu.Lock()
		pctx, cancel := context.WithCancel(ctx)
		stopPass = cancel
		run := held
		mu.Unlock()
		if run {
			r.periodicPass(pctx)
		}
		cancel()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (r *Reconciler) periodicPass(ctx context.Context) {
	since := r.now().Add(-r.cfg.Lookback)
	if pos, ok := r.position(ctx); ok && pos.Add(-overlap).After(since) {
		since = pos.Add(-overlap)
	}
	upTo := r.now().Add(-r.cfg.Grace)
	r.passMu.Lock()
	rep, err := r.pass(ctx, since, upTo, false)
	r.passMu.Unlock()
	r.record(&rep, err)
	if err == nil {
		r.savePosition(ctx, upTo)
	}
}

// record keeps the last report and counts the pass.
func (r *Reconciler) record(rep *Report, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "failed"
		r.log.Warn("reconcile pass failed; ingest is unaffected", "error", err, "api_errors", rep.APIErrors)
	} else {
		r.log.Info("reconcile pass done", "tasks_checked", rep.TasksChecked, "recovered", len(rep.Recovered), "dry_run", rep.DryRun)
	}
	r.m.passes.WithLabelValues(outcome).Inc()
	r.mu.Lock()
	r.last = rep
	r.mu.Unlock()
}

// LastPass returns the last pass's report, or nil before the first.
func (r *Reconciler) LastPass() *Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// leaseValue is the lease key's content. The expiry is in the value, and
// every change is a compare-and-set on the key's revision, so a takeover of
// an expired lease and a late renewal by its old holder cannot both win.
type leaseValue struct {
	Holder  string    `json:"holder"`
	Expires time.Time `json:"expires"`
}

// holdLease takes, renews or takes over an expired lease; it reports
// whether this replica holds it. Without a bucket every process is its own
// holder.
func (r *Reconciler) holdLease(ctx context.Context) bool {
	if r.cfg.KV == nil {
		return true
	}
	val, _ := json.Marshal(leaseValue{Holder: r.cfg.Holder, Expires: r.now().Add(r.cfg.LeaseTTL)})
	e, err := r.cfg.KV.Get(ctx, leaseKey)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		_, err = r.cfg.KV.Create(ctx, leaseKey, val)
		return err == nil
	case err != nil:
		r.log.Warn("reconcile lease unreadable", "error", err)
		return false
	}
	var cur leaseValue
	if json.Unmarshal(e.Value(), &cur) == nil && cur.Holder != r.cfg.Holder && r.now().Before(cur.Expires) {
		return false
	}
	_, err = r.cfg.KV.Update(ctx, leaseKey, val, e.Revision())
	if err == nil && cur.Holder != r.cfg.Holder {
		r.log.Info("took over the reconcile lease", "from", cur.Holder)
	}
	return err == nil
}

// releaseLease gives the lease up as Run returns, when ctx has usually
// ended: the delete keeps ctx's values but not its cancellation.
func (r *Reconciler) releaseLease(ctx context.Context) {
	if r.cfg.KV == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if e, err := r.cfg.KV.Get(ctx, leaseKey); err == nil {
		var cur leaseValue
		if json.Unmarshal(e.Value(), &cur) == nil && cur.Holder == r.cfg.Holder {
			_ = r.cfg.KV.Delete(ctx, leaseKey, jetstream.LastRevision(e.Revision()))
		}
	}
}

func (r *Reconciler) position(ctx context.Context) (time.Time, bool) {
	if r.cfg.KV == nil {
		return time.Time{}, false
	}
	e, err := r.cfg.KV.Get(ctx, positionKey)
	if err != nil {
		return time.Time{}, false
	}
	var t time.Time
	if t.UnmarshalText(e.Value()) != nil {
		return time.Time{}, false
	}
	return t, true
}

func (r *Reconciler) savePosition(ctx context.Context, t time.Time) {
	if r.cfg.KV == nil {
		return
	}
	b, _ := t.UTC().MarshalText()
	if _, err := r.cfg.KV.Put(ctx, positionKey, b); err != nil {
		r.log.Warn("reconcile position not saved; the next pass rescans the lookback", "error", err)
	}
}
