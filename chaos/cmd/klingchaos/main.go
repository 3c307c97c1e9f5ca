// Command klingchaos runs klingfan's cluster under faults (`make chaos`):
// three NATS nodes in network namespaces of their own, two klingfan
// replicas, a load of signed deliveries, a seeded schedule of partitions,
// pauses, crashes, loss and delay, and an independent check that every
// delivery klingfan acknowledged is in the log. It needs root.
//
//	klingchaos [flags]        a run (CHAOS_SEED, CHAOS_SYNC, CHAOS_SHORT, CHAOS_KINDS)
//	klingchaos node -c FILE   one NATS node from a nats-server configuration file
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/klingfan/klingfan/chaos/internal/cluster"
	"github.com/klingfan/klingfan/chaos/internal/faults"
	"github.com/klingfan/klingfan/chaos/internal/run"
)

// errLost is the failure of a run that lost acknowledged deliveries.
var errLost = errors.New("acknowledged deliveries are missing from the log")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runMain(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "klingchaos:", err)
		os.Exit(1)
	}
}

func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "node" {
		fs := flag.NewFlagSet("klingchaos node", flag.ContinueOnError)
		fs.SetOutput(stderr)
		conf := fs.String("c", "", "nats-server configuration file")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return cluster.RunNode(ctx, *conf)
	}

	fs := flag.NewFlagSet("klingchaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seed := fs.Uint64("seed", envUint("CHAOS_SEED", rand.Uint64()%1_000_000), "seed of the fault schedule (CHAOS_SEED; random when unset)") //nolint:gosec // a schedule seed
	syncMode := fs.String("sync", envString("CHAOS_SYNC", "always"), "NATS sync_interval: always (klingfan's recommendation) or interval (NATS's default) (CHAOS_SYNC)")
	short := fs.Bool("short", os.Getenv("CHAOS_SHORT") != "", "one fault of each kind, held briefly, under a lighter load: the CI form (CHAOS_SHORT)")
	nFaults := fs.Int("faults", 10, "number of faults (every kind once before any twice); with -short, one of each kind unless set")
	kindList := fs.String("kinds", os.Getenv("CHAOS_KINDS"), "comma-separated fault kinds to draw from, e.g. partition-connected (CHAOS_KINDS; default all)")
	klingfan := fs.String("klingfan", "", "the klingfan binary (default: klingfan next to this binary)")
	dir := fs.String("dir", "", "directory for stores and logs (default /tmp/chaos/run-SEED-SYNC)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *syncMode != "always" && *syncMode != "interval" {
		return fmt.Errorf("-sync %q: want always or interval", *syncMode)
	}
	kinds, err := faults.ParseKinds(*kindList)
	if err != nil {
		return fmt.Errorf("-kinds: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if *klingfan == "" {
		*klingfan = filepath.Join(filepath.Dir(self), "klingfan")
	}
	o := run.Options{
		Seed:          *seed,
		SyncAlways:    *syncMode == "always",
		Faults:        *nFaults,
		Kinds:         kinds,
		MinHold:       6 * time.Second,
		MaxHold:       15 * time.Second,
		Calm:          3 * time.Second,
		Rate:          25,
		MaxDeliveries: 6000,
		Dir:           *dir,
		Self:          self,
		Klingfan:      *klingfan,
	}
	if *short {
		o.MinHold, o.MaxHold, o.Calm, o.Rate = 3*time.Second, 5*time.Second, time.Second, 15
		if !isSet(fs, "faults") {
			o.Faults = len(kinds)
		}
	}
	if o.Dir == "" {
		o.Dir = run.DefaultDir(o.Seed, o.SyncAlways)
	}
	res, err := run.Run(ctx, o, stdout)
	if err != nil {
		return err
	}
	if res.Failed() {
		return errLost
	}
	return nil
}

func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func envString(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func envUint(key string, def uint64) uint64 {
	if v, err := strconv.ParseUint(os.Getenv(key), 10, 64); err == nil {
		return v
	}
	return def
}
