// Command klingsim simulates Kling on loopback: its task query API and
// signed callbacks with injected faults. Credentials come from the same
// environment variables klingfan reads (KLING_ACCESS_KEY, KLING_SECRET_KEY,
// KLING_API_KEY); the callback secret from KLINGSIM_WEBHOOK_SECRET.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/klingfan/klingfan/internal/klingsim"
)

func main() {
	var c klingsim.ServeConfig
	flag.StringVar(&c.Addr, "addr", "127.0.0.1:8090", "loopback address to serve the Kling API on")
	flag.StringVar(&c.Sim.CallbackURL, "callback-url", "", "where to post task callbacks (none when empty)")
	flag.Float64Var(&c.Rate, "rate", 1, "tasks created per second")
	flag.DurationVar(&c.StepInterval, "step", 0, "how often tasks move on a status (default 2s)")
	flag.Float64Var(&c.Sim.Faults.Drop, "drop", 0, "share of callbacks dropped")
	flag.Float64Var(&c.Sim.Faults.Duplicate, "duplicate", 0, "share of callbacks sent twice")
	flag.Float64Var(&c.Sim.Faults.Delay, "delay", 0, "share of callbacks delayed")
	flag.Float64Var(&c.Sim.Faults.Reorder, "reorder", 0, "share of callbacks sent after the next one")
	flag.Float64Var(&c.Sim.FailShare, "fail", 0.1, "share of tasks that fail")
	flag.Float64Var(&c.Sim.V2Share, "v2", 0.3, "share of tasks in the new API shape")
	flag.Uint64Var(&c.Sim.Seed, "seed", 1, "seed for fault and outcome choices")
	flag.Parse()
	c.Sim.AccessKey, c.Sim.SecretKey = os.Getenv("KLING_ACCESS_KEY"), os.Getenv("KLING_SECRET_KEY")
	c.Sim.APIKey = os.Getenv("KLING_API_KEY")
	c.Sim.WebhookSecret = os.Getenv("KLINGSIM_WEBHOOK_SECRET")
	c.Sim.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	c.Ready = func(addr string) { fmt.Printf("klingsim serving the Kling API on http://%s\n", addr) }

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := klingsim.Serve(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
