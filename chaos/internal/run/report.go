package run

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/klingfan/klingfan/chaos/internal/faults"
	"github.com/klingfan/klingfan/chaos/internal/load"
)

// window is one fault's stretch of the run: from the moment it was
// applied, through its heal, to the moment the cluster was healthy again;
// its answers are those to the attempts started from its start to the next
// window's.
type window struct {
	fault                  faults.Fault
	start, healed, settled time.Time
	err                    error
}

// tally is what klingfan answered over a stretch of the run.
type tally struct {
	outcomes [load.Other + 1]int
	// longestOutage is the longest time within the stretch during which
	// no attempt was answered 2xx: how long ingest was unavailable.
	longestOutage time.Duration
	// byReplica is the same for the attempts sent to each replica: how
	// long that replica was unavailable, whatever the other did.
	byReplica [replicas]time.Duration
}

// replicas is the number of klingfan replicas a run has.
const replicas = 2

func count(attempts []load.Attempt, from, to time.Time) tally {
	var t tally
	var oks []time.Time
	var byReplica [replicas][]time.Time
	for _, a := range attempts {
		if a.Start.Before(from) || !a.Start.Before(to) {
			continue
		}
		t.outcomes[a.Outcome]++
		if a.Outcome == load.OK {
			oks = append(oks, a.End)
			byReplica[a.Replica] = append(byReplica[a.Replica], a.End)
		}
	}
	t.longestOutage = longestGap(oks, from, to)
	for j, ends := range byReplica {
		t.byReplica[j] = longestGap(ends, from, to)
	}
	return t
}

// longestGap returns the longest stretch of [from, to] that holds none of
// the times oks.
func longestGap(oks []time.Time, from, to time.Time) time.Duration {
	slices.SortFunc(oks, func(a, b time.Time) int { return a.Compare(b) })
	var longest time.Duration
	prev := from
	for _, ok := range append(oks, to) {
		if gap := ok.Sub(prev); gap > longest {
			longest = gap
		}
		if ok.After(prev) {
			prev = ok
		}
	}
	return longest
}

// report writes the table of what klingfan answered before and during
// each fault.
func report(w io.Writer, loadStart, loadEnd time.Time, windows []window, attempts []load.Attempt) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "fault\theld\t2xx\t503\ttimeout\tconn error\tother\tlongest without 2xx\ta\tb\thealthy after heal\t")
	first := loadEnd
	if len(windows) > 0 {
		first = windows[0].start
	}
	row(tw, "none (before the first fault)", "-", count(attempts, loadStart, first), "-")
	for i, win := range windows {
		end := loadEnd
		if i+1 < len(windows) {
			end = windows[i+1].start
		}
		settled := fmt.Sprintf("%.1fs", win.settled.Sub(win.healed).Seconds())
		if win.err != nil {
			settled = "error: see above"
		}
		row(tw, fmt.Sprintf("%d. %s", i+1, win.fault.Label()), fmt.Sprintf("%.1fs", win.healed.Sub(win.start).Seconds()), count(attempts, win.start, end), settled)
	}
	_ = tw.Flush()
}

func row(w io.Writer, name, held string, t tally, settled string) {
	fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%.1fs\t%.1fs\t%.1fs\t%s\t\n", name, held,
		t.outcomes[load.OK], t.outcomes[load.Unavailable], t.outcomes[load.Timeout], t.outcomes[load.ConnError], t.outcomes[load.Other],
		t.longestOutage.Seconds(), t.byReplica[0].Seconds(), t.byReplica[1].Seconds(), settled)
}
