package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// Sizing of the budget.
const (
	// DefaultSpaceCheckInterval is how often the store re-reads its usage
	// and the disk: a full log recovers at most this long after space
	// comes back, and a grown disk raises a derived budget as fast.
	DefaultSpaceCheckInterval = 5 * time.Second
	// roomFraction is how far below a limit usage must fall before a full
	// log is reported as having room again without an append proving it,
	// so a log at its cap does not flap between full and not full.
	roomFraction = 0.95
)

// diskReserve is the free space a derived budget leaves on the disk: 5% of
// it, between 1 MiB and 1 GiB. JetStream disables itself for good when a
// write fails with "no space left on device", so the budget must run out
// before the disk does.
func diskReserve(total int64) int64 { return min(max(total/20, 1<<20), 1<<30) }

// ProjectionShare is the part of a store budget kept for projections of
// the log (the job states): they grow with the log, so without a share of
// their own a full log would leave them no room, and with discard-oldest on
// the log the store would still fill up and refuse deliveries.
func ProjectionShare(budget int64) int64 { return budget / 4 }

// projectionMaxBytes is the size cap for the projections' bucket: its share
// of the embedded store's budget when the store opened, or -1 (no cap) with
// an external deployment, whose operator sizes the cluster.
func (s *Store) projectionMaxBytes() int64 {
	s.space.mu.Lock()
	defer s.space.mu.Unlock()
	if s.space.storeMax <= 0 {
		return -1
	}
	return ProjectionShare(s.space.storeMax)
}

// bucketReserve is the part of the store budget kept free of events for
// the registrations bucket and the file store's own index files, so a full
// log never stops an operator from changing a registration.
func bucketReserve(budget int64) int64 { return min(max(budget/16, 512<<10), 256<<20) }

// Usage is the log's size against its limits, refreshed every
// SpaceCheckInterval.
type Usage struct {
	// StreamBytes and Messages are the events stream's size; FirstSeq is
	// the oldest retained sequence (LastSeq+1 when the log is empty).
	StreamBytes uint64
	Messages    uint64
	FirstSeq    uint64
	LastSeq     uint64
	// StreamMaxBytes is the stream's size cap; 0 when it has none.
	StreamMaxBytes int64
	// StoreBytes and StoreMaxBytes are the embedded JetStream's file-store
	// usage and budget; both 0 with an external deployment.
	StoreBytes    uint64
	StoreMaxBytes int64
	// DiskFree is the free space on the data directory's filesystem; 0
	// when unknown or external.
	DiskFree int64
	// Full is set while appends are refused for lack of space; Reason says
	// why.
	Full   bool
	Reason string
}

// Limits are the size settings that can change while klingfan runs.
type Limits struct {
	// MaxStoreBytes is the embedded file-store budget; 0 derives it from
	// the disk. Ignored with an external deployment.
	MaxStoreBytes int64
	// RetentionBytes caps the events stream; 0 leaves only the budget.
	RetentionBytes int64
	// Refuse selects the refuse policy (503 at the cap) over discarding
	// the oldest events.
	Refuse bool
}

// space tracks the budget and whether the log is full. Its fields are
// guarded by mu except full, which Append reads without the lock.
type space struct {
	full    atomic.Bool
	diskLow atomic.Bool // the disk is nearly full: Append refuses at once
	// gen counts state changes. An append notes it before publishing, so
	// one that was already in flight when the log filled (and fitted)
	// cannot report room that is no longer there.
	gen atomic.Uint64

	mu       sync.Mutex
	limits   Limits // as configured; MaxStoreBytes 0 means derived
	storeMax int64  // the budget in force: what the caps are sized from
	// serverMax is the embedded server's max_file_store: storeMax, or
	// more for the rest of a run that recovered reservations above the
	// budget (JetStream cannot lower a running server's limit).
	serverMax int64
	// lowered is set when the start lowered the event log's cap: the one
	// warning Open logs.
	lowered *loweredCaps
	opts    *server.Options
	usage   Usage
	reason  string
	cause   error // the append error that made the log full

	quit chan struct{}
	done chan struct{}
}

// planBudget resolves the embedded store's budget before the server starts
// and sets the stream's size cap in cfg. With an external deployment only
// RetentionBytes caps the stream; the cluster's own limits apply beside it.
func (s *Store) planBudget(cfg *Config, storeDir string) error {
	s.space.limits = Limits{MaxStoreBytes: cfg.MaxStoreBytes, RetentionBytes: cfg.RetentionBytes, Refuse: cfg.RefuseWhenFull}
	if cfg.URL != "" {
		cfg.streamMaxBytes = streamCap(0, cfg.RetentionBytes)
		return nil
	}
	budget := cfg.MaxStoreBytes
	if budget == 0 {
		derived, err := derivedBudget(storeDir)
		if err != nil {
			return fmt.Errorf("store: size the store budget from the disk of %q (set --max-store-bytes to skip this): %w", storeDir, err)
		}
		budget = derived
	}
	s.space.storeMax, s.space.serverMax = budget, budget
	cfg.streamMaxBytes = streamCap(budget, cfg.RetentionBytes)
	return nil
}

// loweredCaps is what a start lowered, for its one warning.
type loweredCaps struct {
	oldCap, newCap int64 // the event log's cap before and after
	budget         int64 // the budget in force
	clamped        bool  // the budget was raised to what is stored
	explicit       bool  // the budget is --max-store-bytes
}

// fitRecovered makes a recovered store fit the budget planBudget chose,
// which may be smaller than the one it was sized for (the disk lost free
// space, or --max-store-bytes was lowered). JetStream refuses every stream
// update while the caps it recovered reserve more than max_file_store
// (NATS err 10047), so the server's limit is raised to cover them for
// this run; ensureAssets then lowers the caps, and the next start runs at
// the budget. The budget is never below what is stored, so lowering a cap
// never drops an event. It runs before ensureAssets, with the server up.
func (s *Store) fitRecovered(cfg *Config) error {
	jsz, err := s.ns.Jsz(nil)
	if err != nil {
		return fmt.Errorf("store: read the recovered store's size: %w", err)
	}
	used, reserved := int64(jsz.Store), int64(jsz.ReservedStore) //nolint:gosec // sizes of a local disk
	s.space.mu.Lock()
	defer s.space.mu.Unlock()
	if used > s.space.storeMax {
		s.space.storeMax = used
		cfg.streamMaxBytes = streamCap(used, cfg.RetentionBytes)
		s.space.lowered = &loweredCaps{clamped: true}
	}
	need := max(s.space.storeMax, reserved)
	if need <= s.space.serverMax {
		return nil
	}
	opts := s.space.opts.Clone()
	opts.JetStreamMaxStore = need
	if err := s.ns.ReloadOptions(opts); err != nil {
		return fmt.Errorf("store: raise max_file_store to the %s the recovered store reserves: %w", mib(need), err)
	}
	s.space.serverMax = need
	s.space.opts.JetStreamMaxStore = need
	return nil
}

// capLowered records that ensureStream lowered the event log's cap from
// old to now; Open warns once.
func (s *Store) capLowered(old, now int64, explicit bool) {
	s.space.mu.Lock()
	defer s.space.mu.Unlock()
	l := s.space.lowered
	if l == nil {
		l = &loweredCaps{}
		s.space.lowered = l
	}
	l.oldCap, l.newCap, l.budget, l.explicit = old, now, s.space.storeMax, explicit
}

// warnLowered logs the one warning of a start that lowered the caps.
func (s *Store) warnLowered() {
	s.space.mu.Lock()
	l := s.space.lowered
	s.space.mu.Unlock()
	if l == nil || l.oldCap == 0 {
		return
	}
	msg := "store caps lowered: the disk has less free space than when they were set; set --max-store-bytes (KLINGFAN_MAX_STORE_BYTES) to choose the budget"
	switch {
	case l.clamped:
		msg = "store caps lowered to what is stored, no lower: the store already holds more than the budget allows; each start lowers them further as events expire; set --max-store-bytes (KLINGFAN_MAX_STORE_BYTES) at or above what is stored to choose the budget"
	case l.explicit:
		msg = "store caps lowered to the smaller --max-store-bytes (KLINGFAN_MAX_STORE_BYTES)"
	}
	s.log.Warn(msg, slog.String("old_cap", mib(l.oldCap)), slog.String("new_cap", mib(l.newCap)),
		slog.String("budget", mib(l.budget)), slog.String("flag", "--max-store-bytes"))
}

// streamCap is the events stream's MaxBytes for a store budget (0: none,
// external) and a configured retention size (0: none); -1 means no cap.
func streamCap(budget, retentionBytes int64) int64 {
	limit := int64(-1)
	if budget > 0 {
		limit = budget - bucketReserve(budget) - ProjectionShare(budget)
	}
	if retentionBytes > 0 && (limit < 0 || retentionBytes < limit) {
		limit = retentionBytes
	}
	return limit
}

// derivedBudget is what the store may use of its disk: what it already
// uses plus the free space, less diskReserve.
func derivedBudget(storeDir string) (int64, error) {
	free, total, err := diskSpace(storeDir)
	if err != nil {
		return 0, err
	}
	used, err := dirBytes(storeDir)
	if err != nil {
		return 0, err
	}
	return max(used+free-diskReserve(total), 1<<20), nil
}

// dirBytes sums the sizes of the files under dir.
func dirBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // a file removed by the server while we walk
			}
			return err
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n, err
}

// startSpaceMonitor refreshes the usage now and then every interval until
// Close.
func (s *Store) startSpaceMonitor(ctx context.Context, interval time.Duration, storeDir string) {
	s.refreshUsage(ctx, storeDir)
	s.space.quit = make(chan struct{})
	s.space.done = make(chan struct{})
	base := context.WithoutCancel(ctx) // the monitor outlives Open's ctx; Close stops it
	go func() {
		defer close(s.space.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-s.space.quit:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(base, requestTimeout)
				s.refreshUsage(ctx, storeDir)
				cancel()
			}
		}
	}()
}

// stopSpaceMonitor stops what startSpaceMonitor started, if anything.
//
//nolint:contextcheck // runs in Close, after callers' contexts may have ended: its last read has its own deadline
func (s *Store) stopSpaceMonitor() {
	if s.space.quit != nil {
		close(s.space.quit)
		<-s.space.done
		s.space.quit = nil
		// A last record of the log state, for reportLost at the next start.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if info, err := s.stream.Info(ctx); err == nil {
			s.recordLogState(s.dataDir, info.State.LastSeq)
		}
		cancel()
	}
}

// refreshUsage re-reads the stream, the file store and the disk; raises a
// derived budget when the disk has grown; and clears the full state when
// there is room again.
func (s *Store) refreshUsage(ctx context.Context, storeDir string) {
	if s.ns != nil {
		s.space.mu.Lock()
		derive := s.space.limits.MaxStoreBytes == 0 && s.space.opts != nil
		s.space.mu.Unlock()
		if derive {
			if derived, err := derivedBudget(storeDir); err == nil {
				s.raiseStoreMax(ctx, derived)
			}
		}
	}
	info, err := s.stream.Info(ctx)
	if err != nil {
		s.log.Debug("store usage check failed", slog.Any("err", err))
		return
	}
	u := Usage{
		StreamBytes: info.State.Bytes, Messages: info.State.Msgs,
		FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq,
		StreamMaxBytes: max(info.Config.MaxBytes, 0),
	}
	if u.Messages == 0 {
		u.FirstSeq = u.LastSeq + 1
	}
	s.recordLogState(s.dataDir, u.LastSeq)
	if s.ns != nil {
		if free, total, err := diskSpace(storeDir); err == nil {
			u.DiskFree = free
			// Below half the reserve the disk itself is about to run
			// out (other programs share it, or the budget exceeds it):
			// refuse before JetStream meets ENOSPC and switches off.
			s.space.diskLow.Store(free < diskReserve(total)/2)
		}
		if jsz, err := s.ns.Jsz(nil); err == nil {
			u.StoreBytes, u.StoreMaxBytes = jsz.Store, jsz.Config.MaxStore
		}
	}
	s.space.mu.Lock()
	defer s.space.mu.Unlock()
	s.space.usage = u
	switch {
	case s.space.diskLow.Load() && !s.space.full.Load():
		s.setFullLocked(true, fmt.Sprintf("store full: the disk of the data directory has %s free", mib(u.DiskFree)))
		s.space.cause = errDiskLow
	case s.space.diskLow.Load():
		if errors.Is(s.space.cause, errDiskLow) {
			s.space.reason = fmt.Sprintf("store full: the disk of the data directory has %s free", mib(u.DiskFree))
		}
	case s.space.full.Load() && hasRoom(u):
		s.setFullLocked(false, "")
	case s.space.full.Load() && s.space.cause != nil && !errors.Is(s.space.cause, errDiskLow):
		s.space.reason = s.fullReasonLocked(s.space.cause) // keep the sizes current
	}
}

// hasRoom reports whether usage is clearly below every limit.
func hasRoom(u Usage) bool {
	below := func(used uint64, limit int64) bool { return limit <= 0 || float64(used) < roomFraction*float64(limit) }
	return below(u.StreamBytes, u.StreamMaxBytes) && below(u.StoreBytes, u.StoreMaxBytes)
}

// raiseStoreMax lifts the embedded server's max_file_store to budget, and
// the stream's cap with it, when budget is larger. JetStream can raise the
// limit of a running server but not lower it; a lower budget applies at
// the next start.
func (s *Store) raiseStoreMax(ctx context.Context, budget int64) {
	s.space.mu.Lock()
	current := s.space.storeMax
	if budget <= current || float64(budget) < 1.01*float64(current) {
		explicit := s.space.limits.MaxStoreBytes != 0
		s.space.mu.Unlock()
		if budget < current && explicit {
			s.log.Warn("a lower --max-store-bytes takes effect at the next start; JetStream cannot shrink a running store's budget",
				slog.Int64("configured", budget), slog.Int64("current", current))
		}
		return
	}
	if budget > s.space.serverMax {
		opts := s.space.opts.Clone()
		opts.JetStreamMaxStore = budget
		if err := s.ns.ReloadOptions(opts); err != nil {
			s.space.mu.Unlock()
			s.log.Warn("could not raise the store budget", slog.Int64("bytes", budget), slog.Any("err", err))
			return
		}
		s.space.serverMax = budget
		s.space.opts.JetStreamMaxStore = budget
	}
	s.space.storeMax = budget
	retention, refuse := s.space.limits.RetentionBytes, s.space.limits.Refuse
	s.space.mu.Unlock()
	s.log.Info("store budget raised", slog.String("from", mib(current)), slog.String("to", mib(budget)))
	if err := s.setStreamCap(ctx, streamCap(budget, retention), refuse); err != nil {
		s.log.Warn("could not raise the event log's size cap", slog.Any("err", err))
	}
}

// SetLimits applies new size limits without a restart: a higher store
// budget (or, with MaxStoreBytes 0, one derived from the disk anew), the
// stream's cap and the policy. It then re-checks the usage, so a log that
// was full takes appends again at once when the new limits leave room.
func (s *Store) SetLimits(ctx context.Context, l Limits) error {
	storeDir := ""
	if s.ns != nil {
		storeDir = s.ns.StoreDir()
	}
	s.space.mu.Lock()
	s.space.limits = l
	s.space.mu.Unlock()
	var budget int64 // stays 0 (no cap of its own) with an external deployment
	if s.ns != nil {
		want := l.MaxStoreBytes
		if want == 0 {
			derived, err := derivedBudget(storeDir)
			if err != nil {
				return fmt.Errorf("store: size the store budget from the disk: %w", err)
			}
			want = derived
		}
		s.raiseStoreMax(ctx, want)
		s.space.mu.Lock()
		budget = s.space.storeMax
		s.space.mu.Unlock()
	}
	if err := s.setStreamCap(ctx, streamCap(budget, l.RetentionBytes), l.Refuse); err != nil {
		return err
	}
	s.refreshUsage(ctx, storeDir)
	return nil
}

// setStreamCap updates the stream's MaxBytes and discard policy when they
// differ from what it has.
func (s *Store) setStreamCap(ctx context.Context, maxBytes int64, refuse bool) error {
	info, err := s.stream.Info(ctx)
	if err != nil {
		return classify("stream info", err)
	}
	cfg := info.Config
	discard := jetstream.DiscardOld
	if refuse {
		discard = jetstream.DiscardNew
	}
	if max(cfg.MaxBytes, -1) == maxBytes && cfg.Discard == discard {
		return nil
	}
	was := cfg.MaxBytes
	cfg.MaxBytes, cfg.Discard = maxBytes, discard
	if _, err := s.js.UpdateStream(ctx, cfg); err != nil {
		return classify("update the size cap of stream "+StreamName, err)
	}
	s.log.Info("event log size cap changed", slog.String("from", capString(was)), slog.String("to", capString(maxBytes)),
		slog.String("policy", discard.String()))
	return nil
}

// mib formats a byte count for people: "23.9 MiB".
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func capString(n int64) string {
	if n <= 0 {
		return "none"
	}
	return mib(n)
}

// parentDir is dir's parent, or dir itself at the root.
func parentDir(dir string) string { return filepath.Dir(filepath.Clean(dir)) }

// discardPolicy maps the retention policy onto JetStream's.
func discardPolicy(refuse bool) jetstream.DiscardPolicy {
	if refuse {
		return jetstream.DiscardNew
	}
	return jetstream.DiscardOld
}
