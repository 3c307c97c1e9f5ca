package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/jobs"
	"github.com/klingfan/klingfan/internal/klingapi"
	"github.com/klingfan/klingfan/internal/klingfamily"
)

// defaultStaleLimit bounds the stale jobs one pass queries when
// Config.StaleLimit is zero. Each may cost one request per configured
// family, so the bound keeps a pass's request count predictable when many
// jobs are stuck (say, tasks Kling no longer knows).
const defaultStaleLimit = 500

// staleListPage is how many states one jobs listing call asks for, and
// staleListCalls how many calls one pass makes at most. A call reads at
// most 20,000 states (jobs.List's scan bound), so a pass looks at the
// 200,000 most recently written job states: on a busy gateway a job stuck
// for longer than that many jobs ago is not reached, which bounds what
// each pass costs the jobs bucket.
const (
	staleListPage  = 200
	staleListCalls = 10
)

// nonTerminal are the job statuses a stale job can be in. A job whose
// status klingfan could not read (UNSPECIFIED) is left alone: its events
// say something klingfan does not understand, and asking Kling again
// would not change that.
var nonTerminal = []gatewayv1.JobStatus{gatewayv1.JobStatus_JOB_STATUS_SUBMITTED, gatewayv1.JobStatus_JOB_STATUS_PROCESSING}

// JobLister lists job states and looks one up; *jobs.Projection
// implements it.
type JobLister interface {
	List(ctx context.Context, q jobs.Query) ([]*gatewayv1.JobState, uint64, error)
	// Get returns jobID's state on webhookID, or on whichever registration
	// updated it last when webhookID is empty; jobs.ErrNotFound when none.
	Get(ctx context.Context, webhookID, jobID string) (*gatewayv1.JobState, error)
}

// Shape is the API generation a job's events came in, which says how to
// query it: the legacy API by family and task id, the newer one by id.
type Shape int

// Shapes a job can have.
const (
	// ShapeUnknown: only signed JSON events (X-Kling-Signature), which
	// name no API generation, or nothing but test events.
	ShapeUnknown Shape = iota
	// ShapeLegacy: task_id/task_status callbacks or query answers.
	ShapeLegacy
	// ShapeNew: id/status callbacks or query answers of the newer API.
	ShapeNew
)

// shapeOf reads an event's API generation from its source format, or for
// a recovered event from its raw body (the query answer).
func shapeOf(e *gatewayv1.Event) Shape {
	switch e.GetSourceFormat() {
	case gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_LEGACY:
		return ShapeLegacy
	case gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_CALLBACK_V2:
		return ShapeNew
	case gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_QUERY, gatewayv1.SourceFormat_SOURCE_FORMAT_CREATE_ANSWER:
		var f struct {
			TaskID string `json:"task_id"`
			ID     string `json:"id"`
		}
		if json.Unmarshal(e.GetRawBody(), &f) == nil {
			switch {
			case f.TaskID != "":
				return ShapeLegacy
			case f.ID != "":
				return ShapeNew
			}
		}
	}
	return ShapeUnknown
}

// staleOutcome labels klingfan_reconcile_stale_queries_total.
const (
	staleFound    = "found"     // Kling answered; check compared it with the log
	staleNotFound = "not_found" // no configured family (or the newer API) knows it
	staleSkipped  = "skipped"   // nothing to ask: a test job, already terminal, or a new-shape job without the newer API configured
)

// queryStale queries, one by one with at most Concurrency requests in
// flight, each non-terminal job of the reconciled registration, and each
// one klingfan created on any registration, whose state has not changed
// since before now-StaleAfter, and hands what Kling answers to check. Jobs the listings already checked this pass are not asked
// again. It runs after the listings, so a task they found is not queried
// twice, and catches what they cannot see: tasks updated before the
// lookback, and families or generations the listings do not cover.
func (r *Reconciler) queryStale(ctx context.Context, ps *passState, dryRun bool) error {
	if r.cfg.Jobs == nil || r.cfg.StaleAfter <= 0 {
		return nil
	}
	limit := r.cfg.StaleLimit
	if limit <= 0 {
		limit = defaultStaleLimit
	}
	stale, err := r.staleJobs(ctx, ps, r.now().Add(-r.cfg.StaleAfter), limit)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.cfg.Concurrency)
	for _, st := range stale {
		g.Go(func() error { return r.queryOne(gctx, ps, st, dryRun) })
	}
	return g.Wait()
}

// staleJobs lists up to limit stale jobs: the reconciled registration's,
// then those klingfan created on other registrations (it knows their
// family from the create path, and their events belong where their
// callbacks go), each most recently updated first: those are the likeliest
// to be resolvable when more are stuck than one pass asks about.
func (r *Reconciler) staleJobs(ctx context.Context, ps *passState, before time.Time, limit int) ([]*gatewayv1.JobState, error) {
	own := jobs.Query{Statuses: nonTerminal, WebhookIDs: []string{r.cfg.WebhookID}, UpdatedBefore: before}
	created := jobs.Query{Statuses: nonTerminal, Created: true, UpdatedBefore: before}
	var out []*gatewayv1.JobState
	for _, q := range []jobs.Query{own, created} {
		q.Limit = min(limit, staleListPage)
		for calls := 0; len(out) < limit && calls < staleListCalls; calls++ {
			page, next, err := r.cfg.Jobs.List(ctx, q)
			if err != nil {
				return nil, fmt.Errorf("reconcile: list stale jobs: %w", err)
			}
			for _, st := range page {
				again := q.Created && st.GetWebhookId() == r.cfg.WebhookID // the first listing had it
				if len(out) < limit && !again && !ps.wasChecked(st.GetJobId()) {
					out = append(out, st)
				}
			}
			if next == 0 {
				break
			}
			q.Cursor = next
		}
	}
	return out, nil
}

// queryOne asks Kling about one stale job and checks the answer.
func (r *Reconciler) queryOne(ctx context.Context, ps *passState, st *gatewayv1.JobState, dryRun bool) error {
	id, webhookID := st.GetJobId(), st.GetWebhookId()
	logged, err := r.cfg.History.Logged(ctx, webhookID, id)
	if err != nil {
		return fmt.Errorf("reconcile: read job %q: %w", id, err)
	}
	if logged.Terminal || logged.Events == 0 {
		// The projection lags the log, or the job holds test events only.
		r.staleDone(ps, staleSkipped)
		return nil
	}
	var tried int
	for _, c := range r.candidatesOf(st.GetJob(), logged.Shape) {
		tried++
		task, found, err := r.get(ctx, ps, c, id)
		if err != nil {
			return fmt.Errorf("reconcile: query stale job %q in %s: %w", id, c.label(), err)
		}
		if !found {
			continue
		}
		r.staleDone(ps, staleFound)
		return r.check(ctx, ps, webhookID, c.label(), task, dryRun)
	}
	if tried == 0 {
		r.staleDone(ps, staleSkipped)
		r.log.Debug("stale job not queried: it came in the newer API's shape and no newer-API family is configured (--reconcile-families tasks,solutions)", "job", id)
		return nil
	}
	r.staleDone(ps, staleNotFound)
	r.log.Info("stale job unknown to Kling's task API", "job", id, "tried", tried, "updated", st.GetUpdateTime().AsTime())
	return nil
}

// candidate is one place a task may be queried: a legacy family, or a
// shared query endpoint of the newer APIs (GET /tasks, GET /solutions).
type candidate struct {
	family klingfamily.Family
	shared bool
}

func (c candidate) label() string {
	if c.shared {
		return c.family.ListingName()
	}
	return c.family.Name
}

// candidatesOf is where to look for a job: the one family it was created
// in when klingfan created it (CreateJob recorded the create path), else
// the candidates its shape and kind suggest. A created job is asked about
// in its family whether or not that family is among the configured
// listings: it is known, not guessed.
func (r *Reconciler) candidatesOf(job *gatewayv1.Job, shape Shape) []candidate {
	if ep := job.GetCreateEndpoint(); ep != "" {
		if f, err := klingfamily.ForEndpoint(ep); err == nil && f.Reconcilable() {
			return []candidate{{family: f, shared: f.Query.Kind == klingfamily.QueryIDs}}
		}
	}
	return r.candidates(shape, job.GetKind())
}

// candidates orders where to look for a job, cheapest first. The job state
// does not carry Kling's family, and a legacy callback does not name it,
// so a legacy job is looked for in the configured legacy families in
// turn, those that make the job's kind (video, image, audio) first; kind
// is often unknown before a job's outputs exist, and then every configured
// legacy family is tried. A new-shape job is asked of each configured
// shared query endpoint (GET /tasks, GET /solutions); a job of unknown
// shape is asked there first, then by family.
func (r *Reconciler) candidates(shape Shape, kind gatewayv1.JobKind) []candidate {
	var shared, legacy []candidate
	seen := map[string]bool{}
	for _, f := range r.cfg.Families {
		switch f.Query.Kind {
		case klingfamily.QueryIDs:
			if shape != ShapeLegacy && !seen[f.Query.Path] {
				seen[f.Query.Path] = true
				shared = append(shared, candidate{family: f, shared: true})
			}
		case klingfamily.QueryPath:
			if shape != ShapeNew {
				legacy = append(legacy, candidate{family: f})
			}
		}
	}
	if out, ok := outputOfKind(kind); ok {
		slices.SortStableFunc(legacy, func(a, b candidate) int {
			am, bm := a.family.MakesOutput(out), b.family.MakesOutput(out)
			switch {
			case am && !bm:
				return -1
			case bm && !am:
				return 1
			}
			return 0
		})
	}
	return append(shared, legacy...)
}

// outputOfKind is the output a job kind says the task makes.
func outputOfKind(k gatewayv1.JobKind) (klingfamily.Output, bool) {
	switch k {
	case gatewayv1.JobKind_JOB_KIND_VIDEO:
		return klingfamily.Video, true
	case gatewayv1.JobKind_JOB_KIND_IMAGE:
		return klingfamily.Image, true
	case gatewayv1.JobKind_JOB_KIND_AUDIO:
		return klingfamily.Audio, true
	}
	return "", false
}

// get queries one task where c says, through call (so rate limits back
// off like the listings). An unknown task there is not an error: the next
// candidate may know it. Kling's pages do not say whether a legacy
// collection answers an id it does not hold with 1203 (not found) or 1201
// (invalid parameters), so both move on to the next candidate; a 1201 is
// still counted as an API error, so it is seen.
func (r *Reconciler) get(ctx context.Context, ps *passState, c candidate, id string) (klingapi.Task, bool, error) {
	var (
		task  klingapi.Task
		found bool
	)
	err := r.call(ctx, ps, func() error {
		if c.shared {
			tasks, err := r.cfg.API.GetTasks(ctx, c.family.Query, []string{id}, false)
			if err != nil {
				return err
			}
			for _, t := range tasks {
				if t.ID == id {
					task, found = t, true
				}
			}
			return nil
		}
		t, err := r.cfg.API.GetTask(ctx, c.family, id, false)
		if errors.Is(err, klingapi.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		task, found = t, t.ID == id
		return nil
	})
	if errors.Is(err, klingapi.ErrInvalid) {
		return klingapi.Task{}, false, nil
	}
	return task, found, err
}

// staleDone counts one stale job's outcome.
func (r *Reconciler) staleDone(ps *passState, outcome string) {
	r.m.stale.WithLabelValues(outcome).Inc()
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.report.StaleQueries == nil {
		ps.report.StaleQueries = map[string]int{}
	}
	ps.report.StaleQueries[outcome]++
}
