package app

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/klingfan/klingfan/internal/klingapi"
	"github.com/klingfan/klingfan/internal/klingfamily"
	"github.com/klingfan/klingfan/internal/outcome"
	"github.com/klingfan/klingfan/internal/reconcile"
)

// ReconcilePath runs one reconcile pass now (klingctl reconcile); see
// reconcile.AdminPath.
const ReconcilePath = reconcile.AdminPath

// reconcileMethod is the pseudo gRPC method the admin endpoint authorizes
// as; no service of that name exists, so it needs the admin scope.
const reconcileMethod = "/klingfan.admin.Reconcile/Run"

// setupOutcomes builds the guarded append path every writer uses (ingest
// and the reconciler) and, when Kling credentials are set, the reconciler.
func (s *server) setupOutcomes(ctx context.Context) error {
	guard, err := outcome.New(ctx, outcome.Config{
		Log: s.store, JetStream: s.store.JetStream(),
		Retention: s.cfg.Retention, Replicas: s.cfg.Replicas, Registerer: s.metrics,
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
	kv, err := reconcile.OpenBucket(ctx, s.store.JetStream(), s.cfg.Replicas)
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

// handleReconcile runs one pass: POST /admin/reconcile?since=6h&dry_run=true.
func (s *server) handleReconcile(w http.ResponseWriter, r *http.Request) {
	ctx := metadata.NewIncomingContext(r.Context(), metadata.MD{"authorization": r.Header.Values("Authorization")})
	if _, err := s.authn.Authorize(ctx, reconcileMethod); err != nil {
		writeJSONError(w, runtime.HTTPStatusFromCode(status.Code(err)), status.Convert(err).Message())
		return
	}
	if s.reconciler == nil {
		writeJSONError(w, http.StatusPreconditionFailed, "reconciler disabled: set KLING_ACCESS_KEY and KLING_SECRET_KEY, or KLING_API_KEY")
		return
	}
	var since time.Duration
	if v := r.URL.Query().Get("since"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			writeJSONError(w, http.StatusBadRequest, "since: want a positive duration such as 6h")
			return
		}
		since = d
	}
	dry, _ := strconv.ParseBool(r.URL.Query().Get("dry_run"))
	rep, err := s.reconciler.RunOnce(r.Context(), since, dry)
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		code := http.StatusBadGateway
		if errors.Is(err, context.Canceled) {
			code = http.StatusServiceUnavailable
		}
		w.WriteHeader(code)
	}
	_ = json.NewEncoder(w).Encode(rep)
}

func writeJSONError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
