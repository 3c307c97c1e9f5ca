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

	"github.com/spf13/cobra"

	"github.com/klingfan/klingfan/internal/app"
	"github.com/klingfan/klingfan/internal/config"
)

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
	root := commands(ctx, out)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

// commands is klingfan's command tree. Each subcommand parses its own flags
// (and, for serve, the environment) with the standard flag package, as
// config.Parse documents them, so cobra only dispatches and prints help.
func commands(ctx context.Context, out io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "klingfan",
		Short:         "klingfan is a gRPC event fan-out gateway for Kling AI callbacks.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(out)
	root.CompletionOptions.DisableDefaultCmd = true
	root.AddCommand(
		&cobra.Command{
			Use:                "serve [flags]",
			Short:              "Run the gateway (klingfan serve -h lists the flags and their environment variables)",
			DisableFlagParsing: true,
			RunE: func(_ *cobra.Command, args []string) error {
				cfg, err := config.Parse(args, os.LookupEnv, out)
				if err != nil {
					return err
				}
				return app.Run(ctx, cfg, app.Options{Stdout: out, Reload: reloadOnHangup(ctx, args, out)})
			},
		},
		&cobra.Command{
			Use:                "backup --to FILE [--server URL]",
			Short:              "Write a backup of a running gateway's events and registrations",
			DisableFlagParsing: true,
			RunE: func(_ *cobra.Command, args []string) error {
				return app.BackupCommand(ctx, args, os.LookupEnv, out)
			},
		},
		&cobra.Command{
			Use:                "restore --from FILE --data-dir DIR",
			Short:              "Restore a backup into a new, empty data directory",
			DisableFlagParsing: true,
			RunE: func(_ *cobra.Command, args []string) error {
				return app.RestoreCommand(ctx, args, out)
			},
		},
	)
	return root
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
