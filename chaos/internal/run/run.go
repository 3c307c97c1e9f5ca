// Package run is one chaos run: it builds the lab, starts the cluster and
// the load, applies the seeded fault schedule one fault at a time (each
// held, healed, and followed by a wait until the cluster is healthy
// again), stops the load, and lets the checker compare what klingfan
// acknowledged with what the stream holds.
package run

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sys/unix"

	"github.com/klingfan/klingfan/chaos/internal/checker"
	"github.com/klingfan/klingfan/chaos/internal/cluster"
	"github.com/klingfan/klingfan/chaos/internal/faults"
	"github.com/klingfan/klingfan/chaos/internal/load"
	"github.com/klingfan/klingfan/chaos/internal/netlab"
)

// Options configure a run.
type Options struct {
	Seed uint64
	// SyncAlways runs the nodes with sync_interval: always.
	SyncAlways bool
	// Faults is the number of faults, drawn from Kinds (all when empty);
	// every kind appears once before any appears twice.
	Faults int
	Kinds  []faults.Kind
	// MinHold and MaxHold bound how long a fault lasts.
	MinHold, MaxHold time.Duration
	// Calm is how long the run waits between a settled cluster and the
	// next fault, and before the first.
	Calm time.Duration
	// Rate is deliveries started per second, at most MaxDeliveries.
	Rate          float64
	MaxDeliveries int
	// Dir is the run's directory: stores, configuration and logs.
	Dir string
	// Self is the klingchaos binary; Klingfan the gateway's.
	Self, Klingfan string
}

// settleTimeout bounds the wait for a healthy cluster after a fault.
const settleTimeout = 90 * time.Second

// namespacePrefix starts the name of every namespace a run creates.
const namespacePrefix = "kfchaos-"

// secret signs the load's deliveries; it exists only for the run.
const secret = "klingchaos-secret" //nolint:gosec // a throwaway secret of a throwaway cluster

// Run runs the chaos test, writing its progress and report to w. It
// returns the checker's verdict; an error means the run itself failed
// (the lab or the cluster could not be built, the log could not be read).
func Run(ctx context.Context, o Options, w io.Writer) (checker.Result, error) {
	var res checker.Result
	if err := netlab.Available(); err != nil {
		return res, err
	}
	sync := "interval (NATS's default)"
	if o.SyncAlways {
		sync = "always"
	}
	kinds := o.Kinds
	if len(kinds) == 0 {
		kinds = faults.Kinds
	}
	schedule := faults.Schedule(o.Seed, o.Faults, o.MinHold, o.MaxHold, kinds)
	fmt.Fprintf(w, "klingchaos: seed %d (CHAOS_SEED=%d reproduces the schedule), sync_interval %s, R3, %d faults, up to %d deliveries at %.0f/s\n",
		o.Seed, o.Seed, sync, len(schedule), o.MaxDeliveries, o.Rate)
	for i, f := range schedule {
		fmt.Fprintf(w, "  %d. %s\n", i+1, f)
	}
	// Runs share the namespace names and would tear each other down.
	unlock, err := lock(filepath.Join(filepath.Dir(o.Dir), ".lock"))
	if err != nil {
		return res, err
	}
	defer unlock()
	if err := os.RemoveAll(o.Dir); err != nil {
		return res, err
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return res, err
	}
	fmt.Fprintf(w, "stores, configuration and logs under %s\n", o.Dir)

	// Teardown must run even when ctx was cancelled (Ctrl-C).
	cleanup := context.WithoutCancel(ctx)
	lab, err := netlab.Create(ctx, namespacePrefix, 3, o.Seed)
	if err != nil {
		return res, err
	}
	defer lab.Destroy(cleanup)
	c, err := cluster.Start(ctx, cluster.Config{Dir: o.Dir, Lab: lab, Self: o.Self, Klingfan: o.Klingfan, SyncAlways: o.SyncAlways, Secret: secret})
	if err != nil {
		return res, fmt.Errorf("start the cluster: %w (logs under %s)", err, o.Dir)
	}
	defer c.Close()
	nc, err := c.Connect()
	if err != nil {
		return res, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return res, err
	}
	logf(w, "cluster ready: 3 NATS nodes, 2 klingfan replicas")

	ld := load.Start(ctx, load.Config{
		URLs: []string{c.ReplicaURL(0), c.ReplicaURL(1)},
		Client: &http.Client{
			Timeout:   10 * time.Second,
			Transport: &http.Transport{DialContext: lab.Hub.DialContext, MaxIdleConnsPerHost: 64},
		},
		Secret:    secret,
		JobPrefix: fmt.Sprintf("chaos-%d", o.Seed),
		Max:       o.MaxDeliveries,
		Rate:      o.Rate,
		Attempts:  3,
		Workers:   64,
	})
	loadStart := time.Now()
	defer ld.Stop()

	env := faults.Env{Lab: lab, Cluster: c, JS: js}
	var windows []window
	if err := wait(ctx, o.Calm); err != nil {
		return res, err
	}
	for i, f := range schedule {
		win := window{start: time.Now()}
		applied, heal, err := faults.Apply(ctx, env, f)
		win.fault = applied
		if err != nil {
			win.err = err
			logf(w, "%d. %s: %v", i+1, applied, err)
		} else {
			logf(w, "%d. %s: applied", i+1, applied)
			err = wait(ctx, f.Hold)
		}
		if heal != nil {
			if herr := heal(cleanup); herr != nil {
				logf(w, "%d. heal: %v", i+1, herr)
				win.err = errors.Join(win.err, herr)
			}
		}
		win.healed = time.Now()
		if err != nil {
			return res, err // ctx ended
		}
		serr := c.WaitHealthy(ctx, settleTimeout)
		win.settled = time.Now()
		if serr != nil {
			win.err = errors.Join(win.err, serr)
			logf(w, "%d. %s: healed, but %v", i+1, applied, serr)
		} else {
			logf(w, "%d. %s: healed, healthy again after %.1fs", i+1, applied, win.settled.Sub(win.healed).Seconds())
		}
		windows = append(windows, win)
		if err := wait(ctx, o.Calm); err != nil {
			return res, err
		}
	}
	ld.Stop()
	loadEnd := time.Now()
	logf(w, "load stopped: %d deliveries sent", ld.Sent())

	report(w, loadStart, loadEnd, windows, ld.Attempts())
	if err := c.WaitHealthy(ctx, settleTimeout); err != nil {
		return res, fmt.Errorf("after the last fault: %w", err)
	}
	stored, err := readLog(ctx, c)
	if err != nil {
		return res, err
	}
	res = checker.Compare(ld.Acknowledged(), stored)
	fmt.Fprintf(w, "log: %d messages; %d deliveries stored without a 2xx (a timeout or 503 after the write landed: allowed)\n", res.Messages, res.Unacknowledged)
	printJobs(w, "LOST (acknowledged, not in the log)", res.Lost)
	printJobs(w, "ALTERED (acknowledged, stored with another body)", res.Altered)
	printJobs(w, "duplicated (in the log more than once)", res.Duplicated)
	fmt.Fprintln(w, res.Summary(len(windows)))
	return res, nil
}

// readLog reads the stream over a connection of its own, made after the
// faults. A read can fail on a cluster that just healed (a pull request
// reaching a node before the consumer is known there), so it is tried a
// few times.
func readLog(ctx context.Context, c *cluster.Cluster) (*checker.Log, error) {
	var errs []error
	for range 5 {
		log, err := readOnce(ctx, c)
		if err == nil {
			return log, nil
		}
		errs = append(errs, err)
		if err := wait(ctx, 2*time.Second); err != nil {
			return nil, err
		}
	}
	return nil, errors.Join(errs...)
}

func readOnce(ctx context.Context, c *cluster.Cluster) (*checker.Log, error) {
	nc, err := c.Connect()
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return checker.Read(ctx, js, checker.StreamName)
}

func printJobs(w io.Writer, what string, jobs []string) {
	if len(jobs) == 0 {
		return
	}
	fmt.Fprintf(w, "%s: %d:", what, len(jobs))
	for i, j := range jobs {
		if i == 10 {
			fmt.Fprint(w, " ...")
			break
		}
		fmt.Fprint(w, " ", j)
	}
	fmt.Fprintln(w)
}

func logf(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "%s %s\n", time.Now().UTC().Format("15:04:05.0"), fmt.Sprintf(format, args...))
}

// wait waits d, or less if ctx ends first. The schedule is made of such
// waits: a fault holds for a drawn time, whatever the cluster does.
func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// lock takes an exclusive lock on path, or fails at once if another run
// holds it.
func lock(path string) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another klingchaos run holds %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// DefaultDir is where runs keep their data.
func DefaultDir(seed uint64, syncAlways bool) string {
	mode := "interval"
	if syncAlways {
		mode = "always"
	}
	return filepath.Join("/tmp/chaos", fmt.Sprintf("run-%d-%s", seed, mode))
}
