// Package cli implements klingctl, the terminal client of klingfan: tail
// events ([listen]), manage registrations, read the log, and post signed
// test deliveries.
//
// [Run] is the whole program; cmd/klingctl only wires it to the process
// (signals, standard streams, environment, exit status), so tests run
// exactly what users run, against a real server.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// Exit statuses.
const (
	ExitOK          = 0
	ExitError       = 1   // the command failed: unreachable server, refused token, NotFound, ...
	ExitUsage       = 2   // the command line is wrong
	ExitInterrupted = 130 // a one-shot command was interrupted (SIGINT); listen exits 0 instead
)

// Env is what one klingctl run talks to.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// LookupEnv reads an environment variable; os.LookupEnv for the process.
	LookupEnv func(string) (string, bool)
	// Terminal reports whether Stdout is a terminal, which turns colours on
	// (unless NO_COLOR is set).
	Terminal bool
	// Now is the clock for --since, example payloads and signatures;
	// time.Now when nil.
	Now func() time.Time
}

// OSEnv is the Env of the running process.
func OSEnv() Env {
	return Env{
		Stdin:     os.Stdin,
		Stdout:    os.Stdout,
		Stderr:    os.Stderr,
		LookupEnv: os.LookupEnv,
		Terminal:  term.IsTerminal(int(os.Stdout.Fd())),
	}
}

func (e Env) getenv(name string) string {
	if e.LookupEnv == nil {
		return ""
	}
	v, _ := e.LookupEnv(name)
	return v
}

func (e Env) now() time.Time {
	if e.Now == nil {
		return time.Now()
	}
	return e.Now()
}

// Run executes the klingctl command line args (without the program name)
// and returns the exit status. Cancelling ctx (SIGINT, SIGTERM) stops the
// command: listen then exits 0, one-shot commands ExitInterrupted. Errors
// are printed to env.Stderr as one line starting with "klingctl: ".
func Run(ctx context.Context, args []string, env Env) int {
	if env.Stdin == nil {
		env.Stdin = strings.NewReader("")
	}
	if env.Stdout == nil {
		env.Stdout = io.Discard
	}
	if env.Stderr == nil {
		env.Stderr = io.Discard
	}
	c := &client{env: env}
	defer c.close()
	root := c.rootCommand()
	root.SetArgs(args)
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	var (
		ue *usageError
		ee *exitError
	)
	switch {
	case errors.As(err, &ee):
		if ee.msg != "" {
			fmt.Fprintf(env.Stderr, "klingctl: %s\n", ee.msg)
		}
		return ee.code
	case errors.As(err, &ue) || isCobraUsageError(err):
		fmt.Fprintf(env.Stderr, "klingctl: %v\nRun '%s --help' for usage.\n", err, cmd.CommandPath())
		return ExitUsage
	case ctx.Err() != nil && (errors.Is(err, context.Canceled) || isCanceled(err)):
		fmt.Fprintln(env.Stderr, "klingctl: interrupted")
		return ExitInterrupted
	}
	fmt.Fprintf(env.Stderr, "klingctl: %s\n", c.describe(err))
	return ExitError
}

// usageError is a command line that cannot be run; it exits ExitUsage.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{msg: fmt.Sprintf(format, a...)} }

// isCobraUsageError recognises the errors cobra itself returns for a bad
// command line: unknown commands and, via SetFlagErrorFunc, bad flags.
func isCobraUsageError(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "unknown flag") ||
		strings.HasPrefix(msg, "unknown shorthand flag") || strings.HasPrefix(msg, "required flag") ||
		strings.HasPrefix(msg, "if any flags in the group")
}

// args wraps a cobra positional-argument check so its failures are usage
// errors.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return &usageError{msg: err.Error()}
		}
		return nil
	}
}

func (c *client) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "klingctl",
		Short: "Tail, manage and test a klingfan gateway from a terminal",
		Long: `klingctl is the terminal client of klingfan, the gRPC fan-out gateway for
Kling AI callbacks: tail events as they arrive, manage webhook registrations,
read the event log, and post signed test deliveries.

It talks gRPC to --server (default localhost:9090, or $KLINGFAN_SERVER) with
the bearer token from --token, $KLINGFAN_TOKEN, or the admin token a local
server keeps in ./data/admin-token (see --data-dir).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{msg: err.Error()} })
	c.addConnectionFlags(root)
	root.AddCommand(
		c.listenCommand(),
		c.webhooksCommand(),
		c.groupsCommand(),
		c.eventsCommand(),
		c.postCommand(),
		c.exampleCommand(),
		c.jobsCommand(),
		c.waitCommand(),
		c.createCommand(),
		c.reconcileCommand(),
	)
	return root
}
