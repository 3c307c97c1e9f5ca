// Command klingctl is the terminal client of klingfan: tail events, manage
// webhook registrations, read the log and post signed test deliveries. The
// commands live in internal/cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/klingfan/klingfan/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C kills at once
	}()
	os.Exit(cli.Run(ctx, os.Args[1:], cli.OSEnv()))
}
