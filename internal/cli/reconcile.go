package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

func (c *client) reconcileCommand() *cobra.Command {
	var (
		since  time.Duration
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "reconcile",
		Short: "Ask Kling's task API now for outcomes klingfan never received, and log them",
		Long: `Run one reconcile pass on the gateway now (AdminService.Reconcile): it lists
the Kling tasks updated within --since, compares each with the log, and
appends every state the log is missing (as events with source format
SOURCE_FORMAT_TASK_QUERY). With --dry-run it only reports what is missing.
Needs the admin token, and a gateway started with Kling credentials
(KLING_ACCESS_KEY + KLING_SECRET_KEY, or KLING_API_KEY). Exits 1 when the
pass stopped early.`,
		Example: `  klingctl reconcile --since 6h --dry-run
  klingctl reconcile --server gateway:9090`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &gatewayv1.ReconcileRequest{DryRun: dryRun}
			if since > 0 {
				req.Lookback = durationpb.New(since)
			}
			conn, err := c.dial()
			if err != nil {
				return err
			}
			// A pass lists every family with backoff on rate limits:
			// allow it longer than a unary call.
			ctx, cancel := context.WithTimeout(cmd.Context(), max(c.timeout, 10*time.Minute))
			defer cancel()
			resp, err := gatewayv1.NewAdminServiceClient(conn).Reconcile(ctx, req)
			if err != nil {
				return err
			}
			rep := resp.GetReport()
			printReport(c.env.Stdout, rep)
			if rep.GetError() != "" {
				return fmt.Errorf("the pass stopped early: %s", rep.GetError())
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&since, "since", 0, "how far back to list Kling's tasks (default: the server's --reconcile-lookback)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "report what is missing without appending it")
	return cmd
}

func printReport(w io.Writer, rep *gatewayv1.ReconcileReport) {
	verb := "recovered"
	if rep.GetDryRun() {
		verb = "missing (dry run, nothing appended)"
	}
	fmt.Fprintf(w, "checked %d tasks updated since %s in %s\n", rep.GetTasksChecked(),
		rep.GetSince().AsTime().UTC().Format(time.RFC3339), rep.GetFinishTime().AsTime().Sub(rep.GetStartTime().AsTime()).Round(time.Millisecond))
	if n := rep.GetStaleQueries(); len(n) > 0 {
		fmt.Fprintf(w, "stale jobs queried one by one: %d found, %d unknown to Kling, %d skipped\n", n["found"], n["not_found"], n["skipped"])
	}
	if len(rep.GetListings()) > 0 {
		fmt.Fprintln(w, "listed (tasks, family or shared listing):")
		for _, l := range rep.GetListings() {
			line := fmt.Sprintf("  %6d  %s", l.GetTasks(), l.GetName())
			if fs := l.GetFamilies(); len(fs) > 1 || (len(fs) == 1 && fs[0] != l.GetName()) {
				line += " (" + strings.Join(fs, ", ") + ")"
			}
			if l.GetError() != "" {
				line += "  FAILED: " + l.GetError()
			}
			fmt.Fprintln(w, line)
		}
	}
	if len(rep.GetUnqueryable()) > 0 {
		fmt.Fprintf(w, "not reconcilable (Kling documents no query): %s\n", strings.Join(rep.GetUnqueryable(), ", "))
	}
	fmt.Fprintf(w, "%s: %d\n", verb, len(rep.GetRecovered()))
	for _, r := range rep.GetRecovered() {
		note := ""
		if r.GetSuperseded() {
			note = " (a callback logged it first)"
		} else if r.GetSequence() != 0 {
			note = fmt.Sprintf(" at sequence %d", r.GetSequence())
		}
		fmt.Fprintf(w, "  %-24s %-12s %s%s\n", r.GetJobId(), r.GetStatus(), r.GetFamily(), note)
	}
	for code, n := range rep.GetApiErrors() {
		fmt.Fprintf(w, "Kling API errors %s: %d\n", code, n)
	}
}
