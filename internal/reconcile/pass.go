package reconcile

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/ingest"
	"github.com/klingfan/klingfan/internal/jobs"
	"github.com/klingfan/klingfan/internal/jobstate"
	"github.com/klingfan/klingfan/internal/klingapi"
	"github.com/klingfan/klingfan/internal/klingfamily"
	"github.com/klingfan/klingfan/internal/normalize"
	"github.com/klingfan/klingfan/internal/reconcile/report"
)

// The pass report types live in a leaf package so klingctl can decode them
// without linking the store.
type (
	// Report is what one reconcile pass found and did.
	Report = report.Report
	// Recovery is one state a pass found missing.
	Recovery = report.Recovery
)

// passState collects a pass's results from concurrent family walks.
type passState struct {
	until time.Time // zero: no upper bound

	mu      sync.Mutex
	report  *Report
	checked map[string]bool // task ids check saw, so the stale queries skip them
}

// wasChecked reports whether check saw the task id in this pass.
func (p *passState) wasChecked(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.checked[id]
}

func (p *passState) apiError(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.report.APIErrors == nil {
		p.report.APIErrors = map[string]int{}
	}
	p.report.APIErrors[klingapi.ErrorLabel(err)]++
}

// Pass runs one reconcile pass over tasks updated since `since`, appending
// (unless dryRun) every state the log is missing. It returns the report
// and the first error that cut the pass short; what was recovered before
// the error stays recovered.
func (r *Reconciler) Pass(ctx context.Context, since time.Time, dryRun bool) (Report, error) {
	return r.pass(ctx, since, time.Time{}, dryRun)
}

// pass is Pass that leaves tasks updated after until (when set) to their
// callbacks, which may still be on their way.
func (r *Reconciler) pass(ctx context.Context, since, until time.Time, dryRun bool) (Report, error) {
	if r.cfg.Tracer != nil {
		var span trace.Span
		ctx, span = r.cfg.Tracer.Start(ctx, "reconcile.pass", trace.WithAttributes(
			attribute.String("reconcile.since", since.UTC().Format(time.RFC3339)),
			attribute.Bool("reconcile.dry_run", dryRun),
		))
		defer span.End()
		rep, err := r.passUntraced(ctx, since, until, dryRun)
		span.SetAttributes(
			attribute.Int("reconcile.tasks_checked", rep.TasksChecked),
			attribute.Int("reconcile.events_recovered", len(rep.Recovered)),
		)
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		return rep, err
	}
	return r.passUntraced(ctx, since, until, dryRun)
}

// passUntraced is the pass itself, inside the pass span when there is one.
func (r *Reconciler) passUntraced(ctx context.Context, since, until time.Time, dryRun bool) (Report, error) {
	rep := &Report{Started: r.now(), Since: since, DryRun: dryRun, Recovered: []Recovery{}}
	ps := &passState{report: rep, until: until, checked: map[string]bool{}}
	listings := r.listings()
	rep.Listings = make([]report.Listing, len(listings))
	for _, f := range klingfamily.All() {
		if !f.Reconcilable() {
			rep.Unqueryable = append(rep.Unqueryable, f.Name)
		}
	}
	// A listing that fails for a reason of its own (an odd answer, a
	// server error that outlived the retries) does not stop the others:
	// its error is in its report row. One that every listing would meet
	// too (credentials, the account, the IP allow-list, no answer at all)
	// stops the pass instead of being repeated once per listing.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.cfg.Concurrency)
	errs := make([]error, len(listings))
	for i, l := range listings {
		rep.Listings[i] = report.Listing{Name: l.name, Families: l.families}
		g.Go(func() error {
			var n int
			var err error
			if l.cursor {
				n, err = r.walkCursor(gctx, ps, l, since, dryRun)
			} else {
				n, err = r.walkFamily(gctx, ps, l.family, since, dryRun)
			}
			if err != nil && gctx.Err() != nil && ctx.Err() == nil {
				err = nil // stopped because another listing failed for all of them
			}
			errs[i] = err
			ps.mu.Lock()
			rep.Listings[i].Tasks = n
			if err != nil {
				rep.Listings[i].Error = err.Error()
			}
			ps.mu.Unlock()
			if failsEveryListing(err) {
				return err
			}
			return nil
		})
	}
	_ = g.Wait()
	err := errors.Join(errs...)
	if err == nil {
		// After the listings, so what they found is not asked again; not
		// after a failed listing, which a broken API or credentials would
		// only repeat once per stale job.
		err = r.queryStale(ctx, ps, dryRun)
	}
	rep.Finished = r.now()
	if err != nil {
		rep.Error = err.Error()
	}
	r.m.checked.Add(float64(rep.TasksChecked))
	return *rep, err
}

// failsEveryListing reports whether err is one every other listing would
// meet too.
func failsEveryListing(err error) bool {
	switch klingapi.Classify(err).Class {
	case klingapi.ClassAuth, klingapi.ClassAccount, klingapi.ClassPermission, klingapi.ClassUnreachable, klingapi.ClassCanceled:
		return true
	}
	return false
}

// listing is one list a pass walks: a legacy family's paged listing, or a
// cursor listing shared by the newer-API families configured for it.
type listing struct {
	name     string
	families []string
	cursor   bool
	family   klingfamily.Family // a paged listing's family; any family of a cursor listing
}

// listings are the configured families' listings, each once, in the
// table's order.
func (r *Reconciler) listings() []listing {
	var out []listing
	shared := map[string]int{}
	for _, f := range r.cfg.Families {
		switch f.List.Kind {
		case klingfamily.ListPaged:
			out = append(out, listing{name: f.ListingName(), families: []string{f.Name}, family: f})
		case klingfamily.ListCursor:
			i, ok := shared[f.List.Path]
			if !ok {
				i = len(out)
				shared[f.List.Path] = i
				out = append(out, listing{name: f.ListingName(), cursor: true, family: f})
			}
			out[i].families = append(out[i].families, f.Name)
		}
	}
	return out
}

// walkFamily pages through one legacy family, newest first, until the
// tasks are older than since. It returns how many tasks it listed.
func (r *Reconciler) walkFamily(ctx context.Context, ps *passState, f klingfamily.Family, since time.Time, dryRun bool) (int, error) {
	size := min(r.cfg.PageSize, f.List.MaxPageSize)
	listed := 0
	for page := 1; page <= klingfamily.MaxPageNum; page++ {
		var tasks []klingapi.Task
		err := r.call(ctx, ps, func() (err error) {
			tasks, err = r.cfg.API.ListPage(ctx, f, page, size)
			return err
		})
		if err != nil {
			return listed, fmt.Errorf("reconcile: list %s page %d: %w", f.Name, page, err)
		}
		listed += len(tasks)
		recent := 0
		for _, t := range tasks {
			if time.UnixMilli(t.UpdatedAt).Before(since) {
				continue
			}
			recent++
			if err := r.checkListed(ctx, ps, f.Name, t, dryRun); err != nil {
				return listed, err
			}
		}
		if len(tasks) < size || recent == 0 {
			return listed, nil
		}
	}
	return listed, nil
}

// walkCursor pages through a shared cursor listing (POST /tasks, POST
// /solutions). Kling filters start_time on the task's creation time, so a
// task created before since and updated after it is not listed; the stale
// queries find it. It returns how many tasks it listed.
func (r *Reconciler) walkCursor(ctx context.Context, ps *passState, l listing, since time.Time, dryRun bool) (int, error) {
	spec := l.family.List
	q := klingapi.TaskQuery{StartTime: since.UnixMilli(), EndTime: r.now().UnixMilli(), Limit: min(r.cfg.PageSize, spec.MaxPageSize)}
	listed := 0
	for {
		var page klingapi.TaskPage
		err := r.call(ctx, ps, func() (err error) {
			page, err = r.cfg.API.ListTasks(ctx, spec, q)
			return err
		})
		if err != nil {
			return listed, fmt.Errorf("reconcile: list %s: %w", l.name, err)
		}
		listed += len(page.Tasks)
		for _, t := range page.Tasks {
			if err := r.checkListed(ctx, ps, l.name, t, dryRun); err != nil {
				return listed, err
			}
		}
		if !page.HasMore || page.NextCursor == "" || page.NextCursor == q.Cursor {
			return listed, nil
		}
		q.Cursor = page.NextCursor
	}
}

// call runs one API request, backing off on what Kling's code table says
// is worth a retry (rate limits 1302 and 1303, server errors 5000-5002,
// a bare HTTP 429 or 5xx) up to MaxRetries times. An unreachable API, auth
// and account failures and 1304 (IP allow-list) are not retried. Every API
// error is counted by code.
func (r *Reconciler) call(ctx context.Context, ps *passState, fn func() error) error {
	wait := r.cfg.Backoff
	for attempt := 0; ; attempt++ {
		err := fn()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.m.apiErrors.WithLabelValues(klingapi.ErrorLabel(err)).Inc()
		ps.apiError(err)
		c := klingapi.Classify(err)
		if !c.Retryable || c.Class == klingapi.ClassUnreachable || attempt >= r.cfg.MaxRetries {
			return err
		}
		d := wait
		if c.RetryAfter > d {
			d = c.RetryAfter
		}
		r.log.Warn("Kling API asked to retry later; backing off", "wait", d, "class", c.Class, "code", klingapi.ErrorLabel(err))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(wait*2, maxBackoff)
	}
}

// checkListed checks a task a listing found, on the registration its
// events belong to (see ownerOf).
func (r *Reconciler) checkListed(ctx context.Context, ps *passState, family string, t klingapi.Task, dryRun bool) error {
	webhookID, err := r.ownerOf(ctx, t.ID)
	if err != nil {
		return err
	}
	return r.check(ctx, ps, webhookID, family, t, dryRun)
}

// ownerOf is the registration a listed task's events belong to: the one
// klingfan created it on, when it did, because its callbacks go there and
// a state recovered anywhere else would split the job in two; otherwise
// the reconciled registration, which listings assume the account's
// callbacks reach.
func (r *Reconciler) ownerOf(ctx context.Context, taskID string) (string, error) {
	if r.cfg.Jobs == nil {
		return r.cfg.WebhookID, nil
	}
	st, err := r.cfg.Jobs.Get(ctx, "", taskID)
	switch {
	case errors.Is(err, jobs.ErrNotFound):
		return r.cfg.WebhookID, nil
	case err != nil:
		return "", fmt.Errorf("reconcile: look up job %q: %w", taskID, err)
	case st.GetJob().GetCreateEndpoint() != "":
		return st.GetWebhookId(), nil
	}
	return r.cfg.WebhookID, nil
}

// check compares one task with the log of webhookID and appends its state
// there when the log never had it.
func (r *Reconciler) check(ctx context.Context, ps *passState, webhookID, family string, t klingapi.Task, dryRun bool) error {
	ps.mu.Lock()
	ps.checked[t.ID] = true
	ps.mu.Unlock()
	if !ps.until.IsZero() && time.UnixMilli(t.UpdatedAt).After(ps.until) {
		return nil // its callback may still be on the way; the next pass looks again
	}
	ps.mu.Lock()
	ps.report.TasksChecked++
	ps.mu.Unlock()
	ev, err := r.event(webhookID, t)
	if err != nil {
		// Not silent: the task is logged and counted under "normalize" in
		// the report's API errors.
		r.log.Warn("task from Kling's API cannot be normalized; skipped", "task", t.ID, "family", family, "error", err)
		ps.mu.Lock()
		if ps.report.APIErrors == nil {
			ps.report.APIErrors = map[string]int{}
		}
		ps.report.APIErrors["normalize"]++
		ps.mu.Unlock()
		return nil
	}
	logged, err := r.cfg.History.Logged(ctx, webhookID, t.ID)
	if err != nil {
		return fmt.Errorf("reconcile: read job %q: %w", t.ID, err)
	}
	if logged.Terminal || logged.Statuses[ev.GetJob().GetStatus()] {
		return nil
	}
	rec := Recovery{JobID: t.ID, Status: t.Status, Family: family}
	if !dryRun {
		seq, dup, err := r.cfg.Append.Append(ctx, ev)
		if err != nil {
			return fmt.Errorf("reconcile: append job %q: %w", t.ID, err)
		}
		rec.Sequence, rec.Superseded = seq, dup
		if !dup {
			r.m.recovered.Inc()
			r.log.Info("recovered a state klingfan never logged", "job", t.ID, "status", t.Status, "sequence", seq)
		}
	}
	ps.mu.Lock()
	ps.report.Recovered = append(ps.report.Recovered, rec)
	ps.mu.Unlock()
	return nil
}

// event builds the event for a task with the callbacks' normalizer. The
// delivery id is a function of the job and its status, so two passes or
// two replicas recovering the same state produce one event.
func (r *Reconciler) event(webhookID string, t klingapi.Task) (*gatewayv1.Event, error) {
	// The callbacks' normalizer as ingest runs it: an output or member it
	// does not know is kept on the event and marked, never a reason to
	// lose the task's header.
	out, err := normalize.Normalize(t.Raw)
	if err != nil {
		return nil, err
	}
	if out.Incomplete != nil {
		r.log.Info("task from Kling's API normalized with members kept unmapped", "task", t.ID, "detail", out.Incomplete)
	}
	ev := out.Event
	deliveryID := "query:" + t.ID + ":" + t.Status
	ev.WebhookId = webhookID
	ev.DeliveryId = deliveryID
	ev.Id = ingest.EventID(webhookID, deliveryID)
	ev.SourceFormat = gatewayv1.SourceFormat_SOURCE_FORMAT_TASK_QUERY
	ev.ReceivedAt = timestamppb.New(r.now())
	ev.RawBody = t.Raw
	return ev, nil
}

// Logged is what the log holds about one job.
type Logged struct {
	// Statuses are the job statuses logged for it.
	Statuses map[gatewayv1.JobStatus]bool
	// Terminal is set once a terminal status is logged.
	Terminal bool
	// Events counts the job's events other than test events.
	Events int
	// Shape is the API generation the job's events came in, which says
	// how a stale job is queried; the first event that tells wins.
	Shape Shape
}

// History answers "what did klingfan log for this job". LogHistory reads
// the log's per-job subjects; the Jobs projection can replace it with one
// key lookup.
type History interface {
	Logged(ctx context.Context, webhookID, jobID string) (Logged, error)
}

// JobEventsReader is the part of the store LogHistory reads.
type JobEventsReader interface {
	JobEvents(ctx context.Context, webhookID, jobID string) ([]*gatewayv1.Event, uint64, error)
}

// LogHistory is a History that reads a job's events from the log.
type LogHistory struct{ Log JobEventsReader }

// Logged implements History.
func (h LogHistory) Logged(ctx context.Context, webhookID, jobID string) (Logged, error) {
	events, _, err := h.Log.JobEvents(ctx, webhookID, jobID)
	if err != nil {
		return Logged{}, err
	}
	l := Logged{Statuses: map[gatewayv1.JobStatus]bool{}}
	for _, e := range events {
		if e.GetTest() {
			continue
		}
		l.Events++
		if l.Shape == ShapeUnknown {
			l.Shape = shapeOf(e)
		}
		l.Statuses[e.GetJob().GetStatus()] = true
		l.Terminal = l.Terminal || jobstate.Terminal(e.GetJob().GetStatus())
	}
	return l, nil
}
