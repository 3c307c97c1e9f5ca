package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	klingfan "github.com/klingfan/klingfan/client"
	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// firstReconnectDelay is the first wait before reconnecting; it doubles up
// to maxReconnectDelay.
const firstReconnectDelay = 100 * time.Millisecond

type listenFlags struct {
	types         []string
	jobs          []string
	webhooks      []string
	kinds         []string
	filter        string
	since         string
	after         uint64
	fromBeginning bool
	cursorFile    string
	json          bool
	view          string
}

func (c *client) listenCommand() *cobra.Command {
	var f listenFlags
	cmd := &cobra.Command{
		Use:   "listen",
		Short: "Stream events as they arrive",
		Long: `Stream events as they arrive, one line each (time, sequence, type, job,
status, first output URL), or one protojson object per line with --json.

Without a start flag only new events are shown. With --cursor-file the last
sequence handled is saved after every event, and the next run resumes right
after it; the start flags then only apply to the first run, when the file
does not exist yet. If the connection drops, listen reconnects with backoff
and resumes after the last event it printed, so nothing is missed or repeated.
Status messages go to stderr; Ctrl-C stops it with exit status 0.`,
		Example: `  klingctl listen
  klingctl listen --job 8421 --json | jq .job.status
  klingctl listen --type completed --type failed --since 10m
  klingctl listen --kind audio --filter 'event.job.billing.exists(c, c.currency == "USD")'
  klingctl listen --cursor-file worker.cursor --from-beginning --json`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.listen(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&f.types, "type", nil, "only events of this type, repeatable or comma-separated: "+eventTypeHelp)
	fl.StringArrayVar(&f.jobs, "job", nil, "only events about this job id (repeatable)")
	fl.StringArrayVar(&f.webhooks, "webhook", nil, "only events that arrived on this webhook id (repeatable)")
	fl.StringSliceVar(&f.kinds, "kind", nil, "only jobs of this kind, repeatable or comma-separated: "+kindHelp)
	fl.StringVar(&f.filter, "filter", "", `only events for which this CEL expression is true, e.g. 'event.job.model == "kling-v2-master"'`)
	fl.StringVar(&f.since, "since", "", "start with events received since a duration ago (10m) or an RFC 3339 time")
	fl.Uint64Var(&f.after, "after", 0, "start after this sequence (exclusive), e.g. the last one you processed")
	fl.BoolVar(&f.fromBeginning, "from-beginning", false, "start from the oldest retained event")
	fl.StringVar(&f.cursorFile, "cursor-file", "", "save the last sequence here after each event and resume after it on the next run")
	fl.BoolVar(&f.json, "json", false, "print each event as one line of protojson")
	fl.StringVar(&f.view, "view", "basic", "basic, or full to include the raw body (with --json)")
	return cmd
}

// parseSince accepts a duration before now ("10m", "2h") or an RFC 3339
// time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, usagef("--since %s: use a positive duration (how long ago)", s)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, usagef("--since %q: want a duration like 10m or an RFC 3339 time like 2026-01-02T15:04:05Z", s)
	}
	return t, nil
}

func (c *client) listen(cmd *cobra.Command, f listenFlags) error {
	ctx := cmd.Context()
	kinds, err := parseJobKinds(f.kinds)
	if err != nil {
		return err
	}
	types, err := parseEventTypes(f.types)
	if err != nil {
		return err
	}
	view, err := parseView(f.view)
	if err != nil {
		return err
	}
	req := &gatewayv1.SubscribeRequest{
		EventTypes: types,
		JobIds:     f.jobs,
		WebhookIds: f.webhooks,
		JobKinds:   kinds,
		Filter:     f.filter,
		View:       view,
	}
	var starts []string
	if cmd.Flags().Changed("since") {
		starts = append(starts, "--since")
		t, err := parseSince(f.since, c.env.now())
		if err != nil {
			return err
		}
		req.Start = &gatewayv1.SubscribeRequest_Since{Since: timestamppb.New(t)}
	}
	if cmd.Flags().Changed("after") {
		starts = append(starts, "--after")
		req.Start = &gatewayv1.SubscribeRequest_AfterSequence{AfterSequence: f.after}
	}
	if f.fromBeginning {
		starts = append(starts, "--from-beginning")
		req.Start = &gatewayv1.SubscribeRequest_FromBeginning{FromBeginning: true}
	}
	if len(starts) > 1 {
		return usagef("%s are mutually exclusive", strings.Join(starts, " and "))
	}
	l := &listener{c: c, out: c.env.Stdout, log: c.env.Stderr, json: f.json, colour: c.colour(), req: req}
	opts := []klingfan.SubscribeOption{
		klingfan.WithStreamStatus(l.status),
		klingfan.WithSubscribeBackoff(klingfan.Backoff{Min: firstReconnectDelay, Max: maxReconnectDelay}),
	}
	if f.cursorFile != "" {
		cursor := klingfan.FileCursor{Path: f.cursorFile}
		seq, ok, err := cursor.Load(ctx)
		if err != nil {
			return err
		}
		if ok {
			fmt.Fprintf(l.log, "Resuming after sequence %d (from %s).\n", seq, f.cursorFile)
		}
		// Subscribe resumes after the saved cursor, saves the sequence of
		// every event printed, and on a first run the position the stream
		// went live at, so a run stopped before its first event resumes
		// without a gap.
		opts = append(opts, klingfan.WithCursorStore(cursor))
	}
	gw, err := c.gateway()
	if err != nil {
		return err
	}
	err = gw.Subscribe(ctx, req, l.handle, opts...)
	if ctx.Err() != nil {
		return nil // Ctrl-C: a clean exit
	}
	return err
}

// listener prints one listen run's events and tells the user, on stderr,
// what its stream is doing; client.Subscribe owns the stream, the
// reconnects and the cursor.
type listener struct {
	c        *client
	out, log io.Writer
	json     bool
	colour   bool
	req      *gatewayv1.SubscribeRequest
}

// status reports a stream going live or breaking. The first connection
// must succeed, so a wrong address or a server that is down fails at once;
// once a stream has been live, a break is reported and Subscribe
// reconnects.
func (l *listener) status(s klingfan.StreamStatus) error {
	switch {
	case s.Ended && !s.EverLive:
		return s.Err
	case s.Ended:
		if s.WasLive {
			reason := "the server ended the stream"
			if !errors.Is(s.Err, io.EOF) {
				reason = l.c.describe(s.Err)
			}
			fmt.Fprintf(l.log, "Connection lost: %s. Reconnecting...\n", reason)
		}
	case !s.EverLive:
		fmt.Fprintf(l.log, "Ready: listening on %s for events %s%s (Ctrl-C to stop).\n", l.c.server, describeStart(s.Request), l.filterSummary())
	default:
		fmt.Fprintf(l.log, "Reconnected to %s, resuming %s.\n", l.c.server, describeStart(s.Request))
	}
	return nil
}

// describeStart says where a subscription request starts.
func describeStart(req *gatewayv1.SubscribeRequest) string {
	switch st := req.GetStart().(type) {
	case *gatewayv1.SubscribeRequest_AfterSequence:
		return fmt.Sprintf("after sequence %d", st.AfterSequence)
	case *gatewayv1.SubscribeRequest_Since:
		return "since " + st.Since.AsTime().Local().Format(time.RFC3339)
	case *gatewayv1.SubscribeRequest_FromBeginning:
		return "from the beginning"
	}
	return "from now"
}

func (l *listener) filterSummary() string {
	var parts []string
	if len(l.req.GetEventTypes()) > 0 {
		parts = append(parts, "types "+eventTypeList(l.req.GetEventTypes()))
	}
	if len(l.req.GetJobIds()) > 0 {
		parts = append(parts, "jobs "+strings.Join(l.req.GetJobIds(), ","))
	}
	if len(l.req.GetWebhookIds()) > 0 {
		parts = append(parts, "webhooks "+strings.Join(l.req.GetWebhookIds(), ","))
	}
	if len(parts) == 0 {
		return ""
	}
	return ", " + strings.Join(parts, "; ")
}

// handle prints one event; Subscribe then records it in the cursor file:
// printed first, so a crash in between repeats the event on the next run
// rather than losing it.
func (l *listener) handle(_ context.Context, ev *gatewayv1.Event) error {
	if ev == nil {
		return nil
	}
	if l.json {
		return writeJSON(l.out, ev)
	}
	_, err := fmt.Fprintln(l.out, eventLine(ev, l.colour))
	return err
}
