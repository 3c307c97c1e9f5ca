package run

import (
	"testing"
	"time"

	"github.com/klingfan/klingfan/chaos/internal/load"
)

// The report's gaps: the longest stretch without a 2xx over every attempt,
// and over each replica's own.
func TestCountGaps(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := func(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }
	attempt := func(replica int, start, end float64, o load.Outcome) load.Attempt {
		return load.Attempt{Replica: replica, Start: s(start), End: s(end), Outcome: o}
	}
	attempts := []load.Attempt{
		attempt(0, 0.0, 0.1, load.OK),
		attempt(1, 0.2, 0.3, load.OK),
		// Replica a is cut off: 503s after 5 s until 6.5 s.
		attempt(0, 0.5, 5.5, load.Unavailable),
		attempt(0, 1.0, 6.0, load.Unavailable),
		attempt(1, 1.0, 1.1, load.OK),
		attempt(1, 4.0, 4.1, load.OK),
		attempt(0, 6.0, 6.5, load.OK),
		attempt(1, 8.0, 8.1, load.OK),
		// Started after the stretch: not counted.
		attempt(0, 10.5, 10.6, load.OK),
	}
	got := count(attempts, s(0), s(10))
	if got.outcomes[load.OK] != 6 || got.outcomes[load.Unavailable] != 2 {
		t.Errorf("outcomes %v, want 6 OK and 2 × 503", got.outcomes)
	}
	for _, c := range []struct {
		name      string
		got, want time.Duration
	}{
		{"all replicas", got.longestOutage, 3 * time.Second},     // 1.1 → 4.1
		{"replica a", got.byReplica[0], 6400 * time.Millisecond}, // 0.1 → 6.5
		{"replica b", got.byReplica[1], 4 * time.Second},         // 4.1 → 8.1
	} {
		if c.got.Round(time.Millisecond) != c.want {
			t.Errorf("%s: longest without a 2xx %s, want %s", c.name, c.got, c.want)
		}
	}
}
