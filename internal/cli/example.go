package cli

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/klingfan/klingfan/internal/normalize"
)

func (c *client) exampleCommand() *cobra.Command {
	var format, job, kind string
	cmd := &cobra.Command{
		Use:   "example TYPE",
		Short: "Print a realistic Kling payload of an event type, to post or edit",
		Long: `Print a realistic payload for event TYPE (` + eventTypeHelp + `)
in one of the wire formats Kling uses:
  seed    signed JSON events: {"event": "video.completed", "data": {...}}
  legacy  task callbacks, legacy shape (task_id, task_status, task_result)
  v2      task callbacks, new shape (id, status, outputs[])
--kind chooses what the job makes (` + kindHelp + `); a completed
example carries that kind's outputs and billing as Kling sends them. Voice,
element and subtitle tasks exist only in the v2 shape. --shape is another
name for --format. The job id is fresh unless --job is given, so posting two
examples never looks like a repeated delivery.`,
		Example: `  klingctl example completed
  klingctl example failed --format v2 --job 8421 > failed.json
  klingctl example completed --kind audio --shape v2
  klingctl example completed --kind image --shape legacy
  klingctl example completed | klingctl post - --secret "$KLINGAI_WEBHOOK_SECRET"`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(_ *cobra.Command, a []string) error {
			typ, err := parseEventType(a[0])
			if err != nil {
				return err
			}
			f, err := parseFormat(format)
			if err != nil {
				return err
			}
			k, err := parseJobKind(kind)
			if err != nil {
				return err
			}
			if job == "" {
				job = newJobID()
			}
			body, err := normalize.SampleKind(f, k, typ, job, c.env.now())
			if err != nil {
				return usagef("%s", strings.TrimPrefix(err.Error(), "normalize: "))
			}
			_, err = fmt.Fprintf(c.env.Stdout, "%s\n", body)
			return err
		},
	}
	cmd.Flags().StringVar(&format, "format", "seed", "wire format: seed, legacy or v2")
	cmd.Flags().StringVar(&format, "shape", "seed", "same as --format")
	cmd.Flags().StringVar(&kind, "kind", "video", "what the job makes: "+kindHelp)
	cmd.Flags().StringVar(&job, "job", "", "job (task) id to use (default: a fresh one)")
	return cmd
}

// newJobID returns a fresh example task id.
func newJobID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "job-" + hex.EncodeToString(b)
}
