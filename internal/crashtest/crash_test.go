//go:build unix

// Package crashtest_test runs klingfan as a subprocess, kills it with
// SIGKILL at random moments under concurrent signed ingest, restarts it on
// the same data directory, and checks the delivery guarantees of DESIGN.md:
// every acknowledged delivery is in the log exactly once, a subscriber
// that resumes by sequence sees each one once, in order, and the job
// projection (GetJob) agrees with the log for every job.
//
// `go test` runs a short form (3 cycles); KLINGFAN_SOAK_CYCLES=n runs n
// (`make soak`: 20). KLINGFAN_CRASH_SEED=s repeats the kill timings of a
// logged run.
package crashtest_test

import (
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

const (
	// senderCount is how many goroutines post deliveries concurrently.
	senderCount = 8
	// Kill moments are uniform in [killEarliest, killLatest) after a run is ready.
	killEarliest = 150 * time.Millisecond
	killLatest   = 1500 * time.Millisecond
	// deliveriesPerCycle bounds the distinct deliveries made per cycle.
	deliveriesPerCycle = 20000
	// shortCycles is the form `go test ./...` runs.
	shortCycles = 3
)

func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("crashtest: skipped with -short; runs in `make test` and `make soak`")
	}
	cycles := envInt(t, "KLINGFAN_SOAK_CYCLES", shortCycles)
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("KLINGFAN_CRASH_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("KLINGFAN_CRASH_SEED: %v", err)
		}
		seed = s
	}
	t.Logf("seed %d, %d kill/restart cycles, %d senders (KLINGFAN_CRASH_SEED=%d repeats the kill timings)", seed, cycles, senderCount, seed)

	budget := time.Duration(cycles)*90*time.Second + 3*time.Minute
	if dl, ok := t.Deadline(); ok {
		budget = min(budget, time.Until(dl)-30*time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()

	dir := t.TempDir()
	c := newCluster(t, buildServer(t, dir), dir)
	c.start(ctx)

	l := newLedger()
	s := newSenders(t, c, l, deliveriesPerCycle*(cycles+1))
	followers := []*follower{
		newFollower("steady subscriber", nil),
		newFollower("churning subscriber 1", rand.New(rand.NewPCG(seed, 1<<40))),
		newFollower("churning subscriber 2", rand.New(rand.NewPCG(seed, 2<<40))),
	}
	fctx, stopFollower := context.WithCancel(ctx)
	var fwg sync.WaitGroup
	for _, f := range followers {
		fwg.Add(1)
		go func() { defer fwg.Done(); f.run(fctx, c) }()
	}
	// Cleanups run last-in first-out: clients stop before the cluster's
	// cleanup kills the server.
	t.Cleanup(func() {
		cancel()
		stopFollower()
		s.stop(time.Minute)
		fwg.Wait()
	})
	s.start(ctx, senderCount, seed)

	rng := rand.New(rand.NewPCG(seed, 0))
	var restarts []time.Duration
	earlyKills := 0
	for cycle := 1; cycle <= cycles; cycle++ {
		p := c.current()
		delay := killEarliest + time.Duration(rng.Int64N(int64(killLatest-killEarliest)))
		select {
		case <-ctx.Done():
			t.Fatalf("crashtest: out of time in cycle %d", cycle)
		case <-time.After(delay): // the random kill moment
		}
		c.kill(p)
		made, acked := l.counts()
		killedAt := time.Now()

		// One restart in four is itself killed while recovering.
		early := ""
		if rng.IntN(4) == 0 {
			ep, err := c.spawn()
			if err != nil {
				t.Fatalf("crashtest: %v", err)
			}
			after := time.Duration(rng.IntN(400)) * time.Millisecond
			select {
			case <-ctx.Done():
			case <-time.After(after):
			}
			c.kill(ep)
			earlyKills++
			early = ", run " + strconv.Itoa(ep.run) + " killed " + after.String() + " into its start"
		}
		np := c.start(ctx)
		restart := time.Since(killedAt)
		restarts = append(restarts, restart)
		t.Logf("cycle %d/%d: killed run %d after %s with %d acked of %d made%s; run %d ready in %s",
			cycle, cycles, p.run, delay.Round(time.Millisecond), acked, made, early, np.run, restart.Round(time.Millisecond))
		if t.Failed() {
			t.FailNow()
		}
	}

	// Stop posting; what is still unanswered is re-sent until acknowledged.
	if !s.stop(2 * time.Minute) {
		t.Fatal("crashtest: senders did not finish their deliveries within 2m")
	}
	final := rand.New(rand.NewPCG(seed, 1<<32))
	fin, finCancel := context.WithTimeout(ctx, 2*time.Minute)
	for _, d := range l.unacked() {
		c.ensureUp(ctx, "re-sending unacknowledged deliveries")
		s.deliver(fin, d, final)
	}
	finCancel()
	if left := l.unacked(); len(left) > 0 {
		t.Fatalf("crashtest: %d deliveries never acknowledged (first: %s)", len(left), left[0].job)
	}
	made, acked := l.counts()
	t.Logf("deliveries: %d made, %d acknowledged; %d posts (%d repeats of acknowledged ones), %d connection errors, %d × 503, %d × 429, %d rejected; %d early kills; restarts %s",
		made, acked, s.stats.attempts.Load(), s.stats.repeats.Load(), s.stats.connErrors.Load(), s.stats.unavail.Load(), s.stats.limited.Load(), s.stats.rejected.Load(), earlyKills, summarize(restarts))

	// The log: every acknowledged delivery exactly once, in sequence order.
	events, err := listAll(ctx, c.ensureUp(ctx, "before ListEvents").grpcAddr)
	if err != nil {
		t.Fatalf("crashtest: %v", err)
	}
	logged := newTally()
	for _, ev := range events {
		logged.observe(ev)
	}
	for _, p := range logged.compare(l, nil) {
		t.Errorf("ListEvents: %s", p)
	}
	t.Logf("log: %d events, last sequence %d", len(events), logged.last)

	// The subscribers that lived through the crashes: once one is past the
	// log's last sequence, whatever it lacks it skipped.
	deadline := time.Now().Add(time.Minute)
	for _, f := range followers {
		for f.position() < logged.last && time.Now().Before(deadline) {
			c.ensureUp(ctx, "while the subscribers caught up")
			time.Sleep(20 * time.Millisecond) // polling a condition
		}
	}
	stopFollower()
	fwg.Wait()
	for _, f := range followers {
		for _, p := range f.tally.compare(l, logged.seqOf) {
			t.Errorf("%s (%d reconnects after kills, %d hang-ups, last error %v): %s", f.name, f.reconnects, f.hangups, f.lastErr, p)
		}
		t.Logf("%s: %d events, resumed by sequence %d times after kills and %d after hanging up", f.name, f.tally.n, f.reconnects, f.hangups)
	}

	// A subscriber that disconnects halfway and resumes by sequence.
	half, cut, err := resumeHalfway(ctx, c.ensureUp(ctx, "before the halfway subscriber").grpcAddr, len(events))
	if err != nil {
		t.Errorf("halfway subscriber: %v", err)
	}
	for _, p := range half.compare(l, logged.seqOf) {
		t.Errorf("halfway subscriber (resumed after %d): %s", cut, p)
	}
	t.Logf("halfway subscriber: %d events, resumed after sequence %d", half.n, cut)

	// The job projection: after the kills, GetJob agrees with a fold of the
	// log for every job.
	jobCount, problems, err := checkJobs(ctx, c.ensureUp(ctx, "before GetJob").grpcAddr, events)
	if err != nil {
		t.Errorf("GetJob: %v", err)
	}
	for i, p := range problems {
		if i == 10 {
			t.Errorf("... and %d more", len(problems)-10)
			break
		}
		t.Error(p)
	}
	t.Logf("job projection: %d jobs, %d disagreeing with the log", jobCount, len(problems))
	c.ensureUp(ctx, "after the checks")
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// summarize gives min/mean/max of the restart times.
func summarize(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	lo, hi, sum := ds[0], ds[0], time.Duration(0)
	for _, d := range ds {
		lo, hi, sum = min(lo, d), max(hi, d), sum+d
	}
	return "min " + lo.Round(time.Millisecond).String() + ", mean " + (sum / time.Duration(len(ds))).Round(time.Millisecond).String() + ", max " + hi.Round(time.Millisecond).String()
}
