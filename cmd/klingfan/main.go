// Command klingfan is the gateway server. `klingfan serve` runs it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/klingfan/klingfan/internal/app"
	"github.com/klingfan/klingfan/internal/config"
)

const usage = `klingfan is a gRPC event fan-out gateway for Kling AI callbacks.

Usage:
  klingfan serve [flags]   run the gateway (klingfan serve -h lists the flags)
  klingfan backup --to FILE [--server URL]
                           write a backup of a running gateway's events and registrations
  klingfan restore --from FILE --data-dir DIR
                           restore a backup into a new, empty data directory
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "klingfan:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) > 0 && args[0] == "backup" {
		return app.BackupCommand(ctx, args[1:], os.LookupEnv, out)
	}
	if len(args) > 0 && args[0] == "restore" {
		return app.RestoreCommand(ctx, args[1:], out)
	}
	if len(args) == 0 || args[0] != "serve" {
		fmt.Fprint(out, usage)
		if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
			return nil
		}
		return fmt.Errorf("unknown command %q", args[0])
	}
	cfg, err := config.Parse(args[1:], os.LookupEnv, out)
	if err != nil {
		return err
	}
	return app.Run(ctx, cfg, app.Options{Stdout: out, Reload: reloadOnHangup(ctx, args[1:], out)})
}

// reloadOnHangup parses the configuration again on every SIGHUP (the
// environment file named by --env-file may have changed) and delivers it;
// a configuration that does not parse is reported and skipped.
func reloadOnHangup(ctx context.Context, args []string, out io.Writer) <-chan config.Config {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	reload := make(chan config.Config)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			}
			cfg, err := config.Parse(args, os.LookupEnv, out)
			if err != nil {
				fmt.Fprintln(os.Stderr, "klingfan: SIGHUP: configuration not reloaded:", err)
				continue
			}
			select {
			case reload <- cfg:
			case <-ctx.Done():
				return
			}
		}
	}()
	return reload
}
