package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	klingfan "github.com/klingfan/klingfan/client"
	"github.com/klingfan/klingfan/internal/jobstate"
)

func (c *client) createCommand() *cobra.Command {
	var (
		endpoint, bodyArg, requestID, webhook string
		wait, asJSON                          bool
		timeout                               time.Duration
	)
	cmd := &cobra.Command{
		Use:   "create --endpoint PATH --body @FILE|-|JSON",
		Short: "Create a Kling task through the gateway, and optionally wait for it",
		Long: `Create a Kling task through the gateway (JobService.CreateJob): the gateway
checks the endpoint against its family table, fills in the callback URL
(its --public-url and the webhook's ingest path) and the external task id,
signs the call with the account's credentials and records the job before
answering. --body is Kling's request body for the endpoint: @FILE reads a
file, - reads stdin, anything else is the JSON itself.

--request-id makes the create idempotent: the same id again returns the same
job and never creates a second task, so a create that failed with
UNAVAILABLE can be run again as it was. Without one, a fresh id is made
and printed on stderr.

With --wait, it then waits for the job's final state like ` + "`klingctl wait`" + `
and exits the same way:
  0  the job succeeded
  1  the job failed or was cancelled (or klingctl itself failed)
  2  --timeout ran out first (or the command line is wrong)`,
		Example: `  klingctl create --endpoint /v1/videos/text2video --body @t2v.json --webhook kling --wait
  echo '{"prompt":"a cat"}' | klingctl create --endpoint /v1/images/generations --body - --request-id cat-1 --json`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if endpoint == "" {
				return usagef("create needs --endpoint, Kling's create path such as /v1/videos/text2video")
			}
			if bodyArg == "" {
				return usagef("create needs --body: @FILE, - for stdin, or the JSON itself")
			}
			if timeout < 0 {
				return usagef("--timeout must not be negative")
			}
			body, err := c.readBody(bodyArg)
			if err != nil {
				return err
			}
			if requestID == "" {
				requestID = klingfan.NewRequestID()
				fmt.Fprintf(c.env.Stderr, "request id %s (run again with --request-id %s to retry without a second task)\n", requestID, requestID)
			}
			gw, err := c.gateway()
			if err != nil {
				return err
			}
			w := startWait(cmd.Context(), timeout)
			defer w.cancel()
			st, err := gw.CreateJob(w.ctx, endpoint, body, requestID, klingfan.WithCreateWebhook(webhook),
				klingfan.WithCreateBackoff(klingfan.Backoff{Min: firstReconnectDelay, Max: maxReconnectDelay}))
			if err != nil {
				return err
			}
			if !wait {
				if asJSON {
					return writeJSON(c.env.Stdout, st)
				}
				return writeJobDetail(c.env.Stdout, st)
			}
			if !jobstate.Terminal(st.GetJob().GetStatus()) {
				final, err := c.waitJob(w.ctx, st.GetJobId(), st.GetWebhookId())
				if err != nil {
					if final == nil {
						final = st
					}
					return w.failed(cmd.Context(), err, st.GetJobId(), final)
				}
				st = final
			}
			return c.printFinal(st, asJSON)
		},
	}
	f := cmd.Flags()
	f.StringVar(&endpoint, "endpoint", "", "Kling's create path, e.g. /v1/videos/text2video")
	f.StringVar(&bodyArg, "body", "", "Kling's request body: @FILE, - (stdin), or the JSON itself")
	f.StringVar(&requestID, "request-id", "", "idempotency key; becomes external_task_id unless the body sets one (default: a fresh one)")
	f.StringVar(&webhook, "webhook", "", `the registration Kling calls back (default "default")`)
	f.BoolVar(&wait, "wait", false, "wait for the job's final state and exit like klingctl wait")
	f.DurationVar(&timeout, "timeout", 0, "with --wait: give up after this long and exit 2 (0: wait for ever)")
	f.BoolVar(&asJSON, "json", false, "print the state as protojson")
	return cmd
}

// readBody reads --body: @FILE, - for stdin, or inline JSON.
func (c *client) readBody(arg string) ([]byte, error) {
	switch {
	case arg == "-":
		return c.readPayload("-")
	case strings.HasPrefix(arg, "@"):
		return c.readPayload(arg[1:])
	}
	return []byte(arg), nil
}
