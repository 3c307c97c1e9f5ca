package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	klingfan "github.com/klingfan/klingfan/client"
	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// Exit statuses of `klingctl wait`, chosen so a script can branch on the
// job's outcome: 0 and 1 as for any command, 2 (which is also a usage
// error) for "still running when --timeout ran out".
const (
	ExitJobFailed  = 1
	ExitJobTimeout = 2
)

// exitError ends a command with a given status; msg, when set, is printed
// like any error.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func (c *client) jobService() (gatewayv1.JobServiceClient, error) {
	conn, err := c.dial()
	if err != nil {
		return nil, err
	}
	return gatewayv1.NewJobServiceClient(conn), nil
}

func (c *client) jobsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "jobs",
		Aliases: []string{"job"},
		Short:   "Read the current state of Kling jobs",
	}
	cmd.AddCommand(c.jobsGetCommand(), c.jobsListCommand())
	return cmd
}

func (c *client) jobsGetCommand() *cobra.Command {
	var webhook string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "get JOB_ID",
		Short: "Show the current state of one job",
		Long: `Show the current state of one job: its latest status, outputs and charges,
folded from every event the gateway logged for it.`,
		Example: `  klingctl jobs get CjhMbGdXnAEAAAAAAfgVZQ
  klingctl jobs get CjhMbGdXnAEAAAAAAfgVZQ --json | jq -r .job.videos[0].url`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			resp, err := call(c, cmd.Context(), gatewayv1.NewJobServiceClient, gatewayv1.JobServiceClient.GetJob,
				&gatewayv1.GetJobRequest{JobId: a[0], WebhookId: webhook})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.env.Stdout, resp.GetJobState())
			}
			return writeJobDetail(c.env.Stdout, resp.GetJobState())
		},
	}
	cmd.Flags().StringVar(&webhook, "webhook", "", "the webhook id the job arrived on (default: the one that updated it last)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the state as protojson")
	return cmd
}

func (c *client) jobsListCommand() *cobra.Command {
	var (
		statuses, kinds, webhooks []string
		since, pageToken          string
		pageSize                  int32
		oldestFirst, all, asJSON  bool
	)
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List jobs, most recently updated first",
		Long: `List job states matching the filters, most recently updated first
(--oldest-first to reverse). One page by default; --all follows the page
tokens. --json prints one protojson state per line.`,
		Example: `  klingctl jobs list --status failed --since 1h
  klingctl jobs list --status processing --kind video --all --json | jq -r .jobId`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &gatewayv1.ListJobsRequest{WebhookIds: webhooks, PageSize: pageSize, PageToken: pageToken}
			for _, s := range splitValues(statuses) {
				st, err := parseJobStatus(s)
				if err != nil {
					return err
				}
				req.Statuses = append(req.Statuses, st)
			}
			for _, s := range splitValues(kinds) {
				k, err := parseJobKind(s)
				if err != nil {
					return err
				}
				req.Kinds = append(req.Kinds, k)
			}
			if since != "" {
				t, err := parseSince(since, c.env.now())
				if err != nil {
					return err
				}
				req.UpdatedAfter = timestamppb.New(t)
			}
			if oldestFirst {
				req.OrderBy = "update_time"
			}
			svc, err := c.jobService()
			if err != nil {
				return err
			}
			var shown []*gatewayv1.JobState
			for {
				ctx, cancel := c.unary(cmd.Context())
				resp, err := svc.ListJobs(ctx, req)
				cancel()
				if err != nil {
					return err
				}
				if asJSON {
					for _, st := range resp.GetJobStates() {
						if err := writeJSON(c.env.Stdout, st); err != nil {
							return err
						}
					}
				}
				shown = append(shown, resp.GetJobStates()...)
				req.PageToken = resp.GetNextPageToken()
				if req.PageToken == "" || !all {
					break
				}
			}
			if !asJSON {
				if len(shown) == 0 {
					fmt.Fprintln(c.env.Stderr, "No jobs match.")
				} else if err := writeJobTable(c.env.Stdout, shown); err != nil {
					return err
				}
			}
			if req.PageToken != "" {
				fmt.Fprintf(c.env.Stderr, "More jobs: use --all, or --page-token %s\n", req.PageToken)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&statuses, "status", nil, "only jobs with this status, repeatable or comma-separated: submitted, processing, succeeded, failed, cancelled")
	f.StringSliceVar(&kinds, "kind", nil, "only jobs of this kind, repeatable or comma-separated: video, image, audio, voice, element, subtitle")
	f.StringArrayVar(&webhooks, "webhook", nil, "only jobs that arrived on this webhook id (repeatable)")
	f.StringVar(&since, "since", "", "only jobs updated since a duration ago (1h) or an RFC 3339 time")
	f.Int32Var(&pageSize, "page-size", 0, "jobs per request (server default 100, at most 1000)")
	f.StringVar(&pageToken, "page-token", "", "continue from a previous listing's next page token")
	f.BoolVar(&oldestFirst, "oldest-first", false, "least recently updated first")
	f.BoolVar(&all, "all", false, "follow page tokens to the end")
	f.BoolVar(&asJSON, "json", false, "print each state as one line of protojson")
	return cmd
}

func (c *client) waitCommand() *cobra.Command {
	var (
		timeout time.Duration
		webhook string
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "wait JOB_ID",
		Short: "Wait until a job finishes, then print its final state",
		Long: `Wait until a job reaches a final status, then print its state.

It asks the gateway for the job's state (GetJob) and, unless the job has
finished already, subscribes to the job's events right after the sequence
that state was folded from, so no event can slip between the two. A job the
gateway has not seen yet is followed from the beginning of the log.

Exit status:
  0  the job succeeded
  1  the job failed or was cancelled (or klingctl itself failed)
  2  --timeout ran out first (or the command line is wrong)`,
		Example: `  klingctl wait CjhMbGdXnAEAAAAAAfgVZQ --timeout 10m && echo done
  url=$(klingctl wait CjhMbGdXnAEAAAAAAfgVZQ --json | jq -r .job.videos[0].url)`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if timeout < 0 {
				return usagef("--timeout must not be negative")
			}
			w := startWait(cmd.Context(), timeout)
			defer w.cancel()
			st, err := c.waitJob(w.ctx, a[0], webhook)
			if err != nil {
				return w.failed(cmd.Context(), err, a[0], st)
			}
			return c.printFinal(st, asJSON)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "give up after this long and exit 2 (0: wait for ever)")
	cmd.Flags().StringVar(&webhook, "webhook", "", "the webhook id the job arrives on (default: any)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the final state as protojson")
	return cmd
}

// jobWait is one wait for a job under --timeout (0: no limit).
type jobWait struct {
	ctx      context.Context
	cancel   context.CancelFunc
	timeout  time.Duration
	deadline time.Time
}

func startWait(ctx context.Context, timeout time.Duration) jobWait {
	w := jobWait{ctx: ctx, cancel: func() {}, timeout: timeout}
	if timeout > 0 {
		w.deadline = time.Now().Add(timeout)
		w.ctx, w.cancel = context.WithDeadline(ctx, w.deadline)
	}
	return w
}

// failed is the error a wait for jobID ends with: exit status 2 naming the
// last state seen (nil: none) when --timeout ran out, err otherwise.
// gRPC's own deadline timer can fire a moment before the context's, so the
// clock decides whether --timeout ran out; parent is the command's own
// context, whose end (Ctrl-C) is not a timeout.
func (w jobWait) failed(parent context.Context, err error, jobID string, last *gatewayv1.JobState) error {
	if w.timeout <= 0 || time.Now().Before(w.deadline) || parent.Err() != nil {
		return err
	}
	now := "not seen yet"
	if last != nil {
		now = "still " + jobStatusName(last.GetJob().GetStatus(), last.GetJob().GetRawStatus())
	}
	return &exitError{code: ExitJobTimeout, msg: fmt.Sprintf("job %s did not finish within %s (%s)", jobID, w.timeout, now)}
}

// printFinal prints a job's terminal state and exits as `klingctl wait`
// documents: 0 when it succeeded, 1 otherwise.
func (c *client) printFinal(st *gatewayv1.JobState, asJSON bool) error {
	var err error
	if asJSON {
		err = writeJSON(c.env.Stdout, st)
	} else {
		err = writeJobDetail(c.env.Stdout, st)
	}
	if err != nil {
		return err
	}
	if st.GetJob().GetStatus() != gatewayv1.JobStatus_JOB_STATUS_SUCCEEDED {
		return &exitError{code: ExitJobFailed}
	}
	return nil
}

// waitJob returns the job's first terminal state, as client.WaitJob
// does. On error it returns the last state it knew (nil when none), for
// the timeout message.
func (c *client) waitJob(ctx context.Context, jobID, webhook string) (*gatewayv1.JobState, error) {
	gw, err := c.gateway()
	if err != nil {
		return nil, err
	}
	return gw.WaitJob(ctx, jobID, klingfan.WithJobWebhook(webhook),
		klingfan.WithWaitBackoff(klingfan.Backoff{Min: firstReconnectDelay, Max: maxReconnectDelay}))
}

// splitValues flattens repeatable, comma-separated flag values.
func splitValues(values []string) []string {
	var out []string
	for _, v := range values {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// parseJobStatus accepts `failed`, `FAILED` and `JOB_STATUS_FAILED`;
// `succeed` and `completed` mean succeeded.
func parseJobStatus(s string) (gatewayv1.JobStatus, error) {
	n := strings.ToUpper(strings.TrimPrefix(strings.ToUpper(s), "JOB_STATUS_"))
	switch n {
	case "SUCCEED", "COMPLETED":
		n = "SUCCEEDED"
	case "CANCELED":
		n = "CANCELLED"
	}
	if v, ok := gatewayv1.JobStatus_value["JOB_STATUS_"+n]; ok && v != 0 {
		return gatewayv1.JobStatus(v), nil
	}
	return 0, usagef("unknown job status %q: use submitted, processing, succeeded, failed or cancelled", s)
}

// writeJobTable prints job states as a table.
func writeJobTable(w io.Writer, states []*gatewayv1.JobState) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tSTATUS\tKIND\tUPDATED\tEVENTS\tWEBHOOK\tOUTPUT")
	for _, st := range states {
		job := st.GetJob()
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", st.GetJobId(),
			orDash(jobStatusName(job.GetStatus(), job.GetRawStatus())), orDash(jobKindName(job.GetKind())),
			formatTime(st.GetUpdateTime()), st.GetEventCount(), st.GetWebhookId(), orDash(outputOrMessage(job)))
	}
	return tw.Flush()
}

// writeJobDetail prints one job state, one field per line.
func writeJobDetail(w io.Writer, st *gatewayv1.JobState) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	job := st.GetJob()
	row("Job", st.GetJobId())
	row("Webhook", st.GetWebhookId())
	row("Status", jobStatusName(job.GetStatus(), job.GetRawStatus()))
	row("Kind", jobKindName(job.GetKind()))
	row("Message", job.GetStatusMessage())
	row("Model", job.GetModel())
	row("External ID", job.GetExternalId())
	row("Created on", job.GetCreateEndpoint())
	row("First seen", formatTime(st.GetFirstSeenTime()))
	row("Updated", formatTime(st.GetUpdateTime()))
	row("Events", fmt.Sprintf("%d (last sequence %d)", st.GetEventCount(), st.GetLastSequence()))
	for i, v := range job.GetVideos() {
		row(fmt.Sprintf("Video %d", i+1), v.GetUrl())
	}
	for _, im := range job.GetImages() {
		row(fmt.Sprintf("Image %d", im.GetIndex()), im.GetUrl())
	}
	for i, au := range job.GetAudios() {
		row(fmt.Sprintf("Audio %d", i+1), strings.TrimSpace(au.GetMp3Url()+" "+au.GetWavUrl()))
	}
	row("Units", job.GetUnitsDeducted())
	for _, ch := range job.GetBilling() {
		row("Charge", strings.TrimSpace(ch.GetChargeType()+" "+ch.GetAmount()+" "+ch.GetCurrency()))
	}
	return tw.Flush()
}
