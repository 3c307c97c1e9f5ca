package app

import (
	"context"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/klingfan/klingfan/internal/klingapi"
	"github.com/klingfan/klingfan/internal/klingfamily"
	"github.com/klingfan/klingfan/internal/outcome"
	"github.com/klingfan/klingfan/internal/reconcile"
)

// setupOutcomes builds the guarded append path every writer uses (ingest
// and the reconciler) and, when Kling credentials are set, the reconciler.
func (s *server) setupOutcomes(ctx context.Context) error {
	guard, err := outcome.New(ctx, outcome.Config{
		Log: s.store, Store: s.store, Registerer: s.metrics,
	})
	if err != nil {
		return err
	}
	s.outcomes = guard
	rc := s.cfg.Reconcile
	if !rc.Enabled() {
		return nil
	}
	families, err := klingfamily.Parse(rc.Families)
	if err != nil {
		return err
	}
	client, err := klingapi.New(klingapi.Config{
		BaseURL:     rc.APIURL,
		Credentials: klingapi.Credentials{AccessKey: rc.AccessKey, SecretKey: rc.SecretKey, APIKey: rc.APIKey},
		Now:         s.now,
		// The same 30s timeout klingapi picks by default; the transport
		// gives each call a span under the pass's when tracing is on.
		HTTPClient: &http.Client{Timeout: 30 * time.Second, Transport: s.tracing.HTTPTransport(nil)},
	})
	if err != nil {
		return err
	}
	s.kling = client
	kv, err := reconcile.OpenBucket(ctx, s.store)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	s.reconciler = reconcile.New(reconcile.Config{
		API: client, Append: guard, History: reconcile.LogHistory{Log: s.store}, KV: kv,
		Families: families, WebhookID: rc.WebhookID,
		Interval: rc.Interval, Lookback: rc.Lookback, Grace: 2 * time.Minute,
		Jobs: s.jobs, StaleAfter: rc.StaleAfter,
		Holder: host + "/" + strconv.Itoa(os.Getpid()), Logger: s.log, Registerer: s.metrics, Tracer: s.tracing.Tracer(), Now: s.now,
	})
	s.log.Info("reconciler enabled", "api", rc.APIURL, "interval", rc.Interval, "lookback", rc.Lookback, "stale_after", rc.StaleAfter, "webhook", rc.WebhookID)
	return nil
}

// runReconcile runs the periodic passes; nothing when disabled.
func (s *server) runReconcile(ctx context.Context) {
	if s.reconciler != nil {
		_ = s.reconciler.Run(ctx)
	}
}

// reconcileStatus is the last pass's outcome in one word, for anonymous
// /readyz: disabled, pending (no pass yet), ok or failed.
func (s *server) reconcileStatus() string {
	if s.reconciler == nil {
		return "disabled"
	}
	switch last := s.reconciler.LastPass(); {
	case last == nil:
		return "pending"
	case last.Error != "":
		return "failed"
	}
	return "ok"
}

// reconcileDetail is the last pass's outcome for /readyz's detail.
func (s *server) reconcileDetail() any {
	if s.reconciler == nil {
		return map[string]any{"enabled": false}
	}
	last := s.reconciler.LastPass()
	if last == nil {
		return map[string]any{"enabled": true, "last_pass": nil}
	}
	d := map[string]any{"enabled": true, "finished": last.Finished, "tasks_checked": last.TasksChecked,
		"recovered": len(last.Recovered), "ok": last.Error == ""}
	if last.Error != "" {
		d["error"] = last.Error
	}
	return d
}
