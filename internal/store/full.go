package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrStoreFull reports that the log refused an append for lack of space:
// the store budget, the stream's size cap under the refuse policy, or the
// disk itself. Errors that wrap it also wrap ErrUnavailable, because the
// condition passes (events expire, the budget is raised, the disk grows),
// so ingest answers 503 and the sender retries.
var ErrStoreFull = errors.New("store: full")

// FullError says why the log is full, in operator terms ("store full:
// 23.9 MiB of 24 MiB"). It wraps ErrUnavailable, whose message is what a
// client sees, and matches ErrStoreFull.
type FullError struct {
	// Reason is fit for /readyz and logs: it names sizes, never content.
	Reason string
}

func (e *FullError) Error() string { return e.Reason }

// Is makes errors.Is(err, ErrStoreFull) hold.
func (e *FullError) Is(target error) bool { return target == ErrStoreFull }

// Unwrap returns ErrUnavailable: the condition passes, so callers retry.
func (e *FullError) Unwrap() error { return ErrUnavailable }

// Usage returns the last measured usage; it is cheap enough for every
// metrics scrape.
func (s *Store) Usage() Usage {
	s.space.mu.Lock()
	defer s.space.mu.Unlock()
	u := s.space.usage
	u.Full, u.Reason = s.space.full.Load(), s.space.reason
	return u
}

// fullErr returns the current *FullError, or nil when the log has room.
func (s *Store) fullErr() error {
	if !s.space.full.Load() {
		return nil
	}
	s.space.mu.Lock()
	defer s.space.mu.Unlock()
	if !s.space.full.Load() {
		return nil
	}
	return &FullError{Reason: s.space.reason}
}

// noteAppend records the outcome of an append of size bytes: a space
// error makes the log full (logged once), a success clears it. It returns
// the error to hand to the caller, a *FullError for space errors.
func (s *Store) noteAppend(ctx context.Context, startGen uint64, size int, err error) error {
	if err == nil {
		if s.space.full.Load() && s.space.gen.Load() == startGen {
			s.space.mu.Lock()
			if s.space.gen.Load() == startGen {
				s.setFullLocked(false, "")
			}
			s.space.mu.Unlock()
		}
		return nil
	}
	if !isSpaceErr(err) {
		return err
	}
	if !s.space.full.Load() {
		// Fresh sizes for the reason, fetched before taking the lock.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		s.refreshUsage(ctx, s.storeDir())
		cancel()
	}
	s.space.mu.Lock()
	defer s.space.mu.Unlock()
	if !s.space.full.Load() {
		s.setFullLocked(true, s.fullReasonLocked(err))
		s.space.cause, s.space.refused = err, int64(size)
	}
	return fmt.Errorf("%w (%w)", &FullError{Reason: s.space.reason}, err)
}

// errDiskLow is the cause of a full state that the disk, not a limit,
// imposes.
var errDiskLow = errors.New("store: disk nearly full")

// diskGate refuses an append while the disk is nearly full.
func (s *Store) diskGate() error {
	if !s.space.diskLow.Load() {
		return nil
	}
	return s.fullErr()
}

// storeDir is the embedded server's store directory; "" when external.
func (s *Store) storeDir() string {
	if s.ns == nil {
		return ""
	}
	return s.ns.StoreDir()
}

// setFullLocked switches the full state and logs the change, once per
// change rather than once per refused delivery. space.mu must be held.
func (s *Store) setFullLocked(full bool, reason string) {
	if s.space.full.Load() == full {
		return
	}
	s.space.full.Store(full)
	s.space.gen.Add(1)
	s.space.reason = reason
	s.space.cause, s.space.refused = nil, 0
	if full {
		s.log.Warn("event log full: new deliveries get 503 until space comes back (events expire, the budget is raised with SIGHUP, or the disk grows)",
			slog.String("reason", reason))
		return
	}
	s.log.Info("event log has room again: ingest resumed",
		slog.String("stream", mib(int64(s.space.usage.StreamBytes))), slog.String("store", mib(int64(s.space.usage.StoreBytes))))
}

// fullReasonLocked words the reason for a space error from the last
// measured usage. space.mu must be held.
func (s *Store) fullReasonLocked(err error) string {
	u := s.space.usage
	switch {
	case strings.Contains(err.Error(), "no space left"):
		return "store full: no space left on the disk of the data directory"
	case u.StoreMaxBytes > 0 && !strings.Contains(err.Error(), "maximum bytes"):
		return fmt.Sprintf("store full: %s of %s", mib(int64(u.StoreBytes)), mib(u.StoreMaxBytes))
	case u.StreamMaxBytes > 0:
		return fmt.Sprintf("store full: %s of %s (event log size cap)", mib(int64(u.StreamBytes)), mib(u.StreamMaxBytes))
	}
	return "store full: " + err.Error()
}

// isSpaceErr reports whether err is JetStream refusing a write for lack of
// space: a server or account storage limit, a stream at its MaxBytes with
// the discard-new policy, or the disk itself.
func isSpaceErr(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case 10023, // insufficient resources
			10047, // insufficient storage resources available
			10002: // resource limits exceeded for account
			return true
		}
		if strings.Contains(apiErr.Description, "maximum bytes exceeded") {
			return true
		}
	}
	return err != nil && strings.Contains(err.Error(), "no space left")
}
