package submit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
	"github.com/klingfan/klingfan/internal/jobs"
	"github.com/klingfan/klingfan/internal/jobstate"
)

// Budget bounds what each token (by name) may create. Zero values mean no
// limit; with both zero no ledger is kept.
type Budget struct {
	// MaxInFlight bounds a token's jobs that are created and not yet
	// finished (succeeded, failed or cancelled).
	MaxInFlight int
	// MaxUnitsPerDay bounds the units Kling charged (a unit charge, or the
	// legacy final_unit_deduction) for a token's jobs that finished this UTC
	// day. Units are known only once a job finishes, so the jobs in flight
	// when the limit is reached may take a token past it.
	MaxUnitsPerDay float64
}

func (b Budget) enabled() bool { return b.MaxInFlight > 0 || b.MaxUnitsPerDay > 0 }

// ledger is one token's budget record, written with compare-and-set.
type ledger struct {
	// Day is the UTC day Units counts, "2006-01-02".
	Day   string  `json:"day"`
	Units float64 `json:"units"`
	// InFlight are the token's creates whose jobs have not finished.
	InFlight []slot `json:"in_flight,omitempty"`
}

// slot is one create counted in flight. JobID is empty until the create's
// record says which task Kling created.
type slot struct {
	RequestID string    `json:"request_id"`
	WebhookID string    `json:"webhook_id,omitempty"`
	JobID     string    `json:"job_id,omitempty"`
	Since     time.Time `json:"since"`
}

// reserve counts a create on the token's budget, or refuses it with a
// *BudgetError before Kling is called. Reserving a request id the ledger
// holds already is a no-op.
func (s *Submitter) reserve(ctx context.Context, token, requestID string) error {
	b := s.cfg.Budget
	if !b.enabled() {
		return nil
	}
	return s.updateLedger(ctx, token, func(l *ledger) error {
		if slices.ContainsFunc(l.InFlight, func(sl slot) bool { return sl.RequestID == requestID }) {
			return nil
		}
		if b.MaxInFlight > 0 && len(l.InFlight) >= b.MaxInFlight {
			return &BudgetError{Token: token, Limit: "max-jobs-in-flight", Used: float64(len(l.InFlight)), Max: float64(b.MaxInFlight), RetryAfter: 30 * time.Second}
		}
		if b.MaxUnitsPerDay > 0 && l.Units >= b.MaxUnitsPerDay {
			return &BudgetError{Token: token, Limit: "max-units-per-day", Used: l.Units, Max: b.MaxUnitsPerDay, RetryAfter: s.untilTomorrow()}
		}
		l.InFlight = append(l.InFlight, slot{RequestID: requestID, Since: s.now()})
		return nil
	})
}

// release drops a create Kling refused from the token's ledger. It is best
// effort: a slot left behind is dropped by the next refresh, which finds no
// record for it.
func (s *Submitter) release(ctx context.Context, token, requestID string) {
	if !s.cfg.Budget.enabled() {
		return
	}
	err := s.updateLedger(ctx, token, func(l *ledger) error {
		l.InFlight = slices.DeleteFunc(l.InFlight, func(sl slot) bool { return sl.RequestID == requestID })
		return nil
	})
	if err != nil {
		s.log.Debug("releasing a budget slot failed", "token", token, "error", err)
	}
}

// updateLedger refreshes the token's ledger (finished jobs leave it and add
// their units; a new day starts at zero) and applies change, with
// compare-and-set, retrying when another replica wrote first.
func (s *Submitter) updateLedger(ctx context.Context, token string, change func(*ledger) error) error {
	key := budgetPrefix + keyToken(token)
	for range maxAttempts {
		l := &ledger{}
		e, err := s.kv.Get(ctx, key)
		var rev uint64
		switch {
		case err == nil:
			rev = e.Revision()
			if err := json.Unmarshal(e.Value(), l); err != nil {
				return fmt.Errorf("submit: decode %s: %w", key, err)
			}
		case errors.Is(err, jetstream.ErrKeyNotFound):
		default:
			return fmt.Errorf("submit: read %s: %w", key, classify(err))
		}
		if err := s.refresh(ctx, l); err != nil {
			return err
		}
		if err := change(l); err != nil {
			return err
		}
		data, err := json.Marshal(l)
		if err != nil {
			return err
		}
		if rev == 0 {
			_, err = s.kv.Create(ctx, key, data)
		} else {
			_, err = s.kv.Update(ctx, key, data, rev)
		}
		if lostRace(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("submit: write %s: %w", key, classify(err))
		}
		return nil
	}
	return fmt.Errorf("submit: the budget of token %q kept changing: %w", token, ErrUnavailable)
}

// refresh brings a ledger up to date: slots learn their job from the
// create record, finished jobs leave and add their units, refused creates
// (no record) leave, and a new UTC day starts the units at zero.
func (s *Submitter) refresh(ctx context.Context, l *ledger) error {
	today := s.now().UTC().Format(time.DateOnly)
	if l.Day != today {
		l.Day, l.Units = today, 0
	}
	kept := l.InFlight[:0]
	for _, sl := range l.InFlight {
		if sl.JobID == "" {
			rec, _, err := s.load(ctx, requestPrefix+keyToken(sl.RequestID))
			if err != nil {
				return err
			}
			switch {
			case rec == nil:
				continue // refused, or never claimed
			case rec.State == stateCreated:
				sl.JobID, sl.WebhookID = rec.TaskID, rec.WebhookID
			default:
				kept = append(kept, sl) // still being created
				continue
			}
		}
		st, err := s.cfg.Jobs.Get(ctx, sl.WebhookID, sl.JobID)
		switch {
		case errors.Is(err, jobs.ErrNotFound):
			kept = append(kept, sl) // the projection has not folded it yet
		case err != nil:
			return err
		case jobstate.Terminal(st.GetJob().GetStatus()):
			l.Units += unitsOf(st.GetJob())
		default:
			kept = append(kept, sl)
		}
	}
	l.InFlight = kept
	return nil
}

// unitsOf is what a finished job cost in resource-pack units: its unit
// charges, or the legacy final_unit_deduction.
func unitsOf(j *gatewayv1.Job) float64 {
	var units float64
	var charged bool
	for _, c := range j.GetBilling() {
		if c.GetChargeType() != "unit" {
			continue
		}
		if v, err := strconv.ParseFloat(c.GetAmount(), 64); err == nil && !math.IsNaN(v) && v > 0 {
			units += v
			charged = true
		}
	}
	if !charged {
		if v, err := strconv.ParseFloat(j.GetUnitsDeducted(), 64); err == nil && !math.IsNaN(v) && v > 0 {
			units = v
		}
	}
	return units
}

// untilTomorrow is how long until the next UTC day starts.
func (s *Submitter) untilTomorrow() time.Duration {
	now := s.now().UTC()
	return now.Truncate(24 * time.Hour).Add(24 * time.Hour).Sub(now)
}
