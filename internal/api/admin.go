package api

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/errkind"
	"github.com/klingfan/klingfan/internal/reconcile/report"
	"github.com/klingfan/klingfan/internal/store"
)

// backupChunk is the size of a Backup message: large enough that the
// per-message cost is small, well under the 16 MiB send limit.
const backupChunk = 256 << 10

// Backuper writes a backup archive (store.Store).
type Backuper interface {
	Backup(ctx context.Context, w io.Writer) (store.Manifest, error)
}

// Reconciler runs a reconcile pass now (reconcile.Reconciler).
type Reconciler interface {
	RunOnce(ctx context.Context, lookback time.Duration, dryRun bool) (report.Report, error)
}

// ErrReconcileOff reports a Reconcile call on a server without Kling
// credentials.
var ErrReconcileOff = errkind.New(errkind.FailedPrecondition, "api",
	"reconciler disabled: set KLING_ACCESS_KEY and KLING_SECRET_KEY, or KLING_API_KEY")

// AdminService serves kling.gateway.v1.AdminService.
type AdminService struct {
	gatewayv1.UnimplementedAdminServiceServer
	backup    Backuper
	reconcile Reconciler // nil when the reconciler is off
	log       *slog.Logger
}

// AdminConfig is what AdminService needs.
type AdminConfig struct {
	Backup Backuper
	// Reconcile is nil when the reconciler is off.
	Reconcile Reconciler
	Logger    *slog.Logger
}

// NewAdminService returns the service.
func NewAdminService(cfg AdminConfig) *AdminService {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &AdminService{backup: cfg.Backup, reconcile: cfg.Reconcile, log: cfg.Logger}
}

// Backup implements AdminService.Backup. A backup that fails after chunks
// were sent ends the stream with an error status, which `klingfan backup`
// acts on; an archive cut short that way also lacks its manifest, so
// restore refuses it even if a client ignored the status.
func (s *AdminService) Backup(_ *gatewayv1.BackupRequest, stream grpc.ServerStreamingServer[gatewayv1.BackupResponse]) error {
	start := time.Now()
	w := &chunkWriter{stream: stream, buf: make([]byte, 0, backupChunk)}
	m, err := s.backup.Backup(stream.Context(), w)
	if err == nil {
		err = w.flush()
	}
	if err != nil {
		s.log.Warn("backup failed; the client got an incomplete archive that restore refuses", "error", err)
		return fmt.Errorf("backup: %w", err)
	}
	s.log.Info("backup served", "duration", time.Since(start).Round(time.Millisecond), "streams", len(m.Streams))
	return nil
}

// chunkWriter cuts the archive into Backup messages.
type chunkWriter struct {
	stream grpc.ServerStreamingServer[gatewayv1.BackupResponse]
	buf    []byte
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), cap(w.buf)-len(w.buf))
		w.buf, p = append(w.buf, p[:k]...), p[k:]
		if len(w.buf) == cap(w.buf) {
			if err := w.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (w *chunkWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	err := w.stream.Send(&gatewayv1.BackupResponse{Chunk: w.buf})
	// Send may keep the message until it is written: never reuse it.
	w.buf = make([]byte, 0, cap(w.buf))
	return err
}

// Reconcile implements AdminService.Reconcile.
func (s *AdminService) Reconcile(ctx context.Context, req *gatewayv1.ReconcileRequest) (*gatewayv1.ReconcileResponse, error) {
	if s.reconcile == nil {
		return nil, ErrReconcileOff
	}
	var lookback time.Duration
	if req.GetLookback() != nil {
		if err := req.GetLookback().CheckValid(); err != nil || req.GetLookback().AsDuration() <= 0 {
			return nil, invalid("lookback", "want a positive duration such as 21600s")
		}
		lookback = req.GetLookback().AsDuration()
	}
	rep, err := s.reconcile.RunOnce(ctx, lookback, req.GetDryRun())
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	// A pass that met Kling errors is a result: its report says which.
	if err != nil && rep.Error == "" {
		rep.Error = err.Error()
	}
	return &gatewayv1.ReconcileResponse{Report: reportProto(rep)}, nil
}

func reportProto(r report.Report) *gatewayv1.ReconcileReport {
	out := &gatewayv1.ReconcileReport{
		StartTime: timestamppb.New(r.Started), FinishTime: timestamppb.New(r.Finished), Since: timestamppb.New(r.Since),
		DryRun: r.DryRun, TasksChecked: int32(r.TasksChecked), //nolint:gosec // a count of listed tasks
		StaleQueries: counts(r.StaleQueries), Unqueryable: r.Unqueryable, ApiErrors: counts(r.APIErrors), Error: r.Error,
	}
	for _, rc := range r.Recovered {
		out.Recovered = append(out.Recovered, &gatewayv1.ReconcileRecovery{
			JobId: rc.JobID, Status: rc.Status, Family: rc.Family, Sequence: rc.Sequence, Superseded: rc.Superseded,
		})
	}
	for _, l := range r.Listings {
		out.Listings = append(out.Listings, &gatewayv1.ReconcileListing{
			Name: l.Name, Families: l.Families, Tasks: int32(l.Tasks), Error: l.Error, //nolint:gosec // a count of listed tasks
		})
	}
	return out
}

func counts(m map[string]int) map[string]int32 {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]int32, len(m))
	for k, v := range m {
		out[k] = int32(v) //nolint:gosec // small counts
	}
	return out
}
