package cli

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

func (c *client) eventsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "events",
		Aliases: []string{"event", "ev"},
		Short:   "Read the event log",
	}
	cmd.AddCommand(c.eventsListCommand(), c.eventsGetCommand())
	return cmd
}

func (c *client) eventsListCommand() *cobra.Command {
	var (
		types, jobs, webhooks, kinds []string
		pageSize                     int32
		pageToken, view, filter      string
		newestFirst, all             bool
		limit                        int
		asJSON                       bool
	)
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List stored events, oldest first",
		Long: `List stored events matching the filters, oldest first (--newest-first to
reverse). One page by default; --all follows the page tokens, --limit stops
after that many events. --json prints one protojson event per line.`,
		Example: `  klingctl events list --job 8421
  klingctl events list --type failed --newest-first --limit 20
  klingctl events list --kind audio --filter 'size(event.job.audios) > 1'
  klingctl events list --all --json | jq -r .job.jobId`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ts, err := parseEventTypes(types)
			if err != nil {
				return err
			}
			ks, err := parseJobKinds(kinds)
			if err != nil {
				return err
			}
			v, err := parseView(view)
			if err != nil {
				return err
			}
			if limit < 0 {
				return usagef("--limit must not be negative")
			}
			req := &gatewayv1.ListEventsRequest{
				EventTypes: ts, JobIds: jobs, WebhookIds: webhooks, JobKinds: ks, Filter: filter,
				PageSize: pageSize, PageToken: pageToken, View: v,
			}
			if newestFirst {
				req.OrderBy = "sequence desc"
			}
			if limit > 0 && (req.PageSize == 0 || int(req.PageSize) > limit) {
				req.PageSize = int32(min(limit, 1000))
			}
			svc, err := c.events()
			if err != nil {
				return err
			}
			var shown []*gatewayv1.Event
			var next string
			trimmed := false // the last page was cut by --limit, so next skips some
			for {
				ctx, cancel := c.unary(cmd.Context())
				resp, err := svc.ListEvents(ctx, req)
				cancel()
				if err != nil {
					return err
				}
				page := resp.GetEvents()
				if limit > 0 && len(shown)+len(page) > limit {
					page, trimmed = page[:limit-len(shown)], true
				}
				if asJSON {
					for _, ev := range page {
						if err := writeJSON(c.env.Stdout, ev); err != nil {
							return err
						}
					}
				}
				shown = append(shown, page...)
				next = resp.GetNextPageToken()
				if next == "" || !all || limit > 0 && len(shown) >= limit {
					break
				}
				req.PageToken = next
			}
			if !asJSON {
				if len(shown) == 0 {
					fmt.Fprintln(c.env.Stderr, "No events match.")
				} else if err := writeEventTable(c.env.Stdout, shown); err != nil {
					return err
				}
			}
			if next != "" && !trimmed {
				fmt.Fprintf(c.env.Stderr, "More events: use --all, or --page-token %s\n", next)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&types, "type", nil, "only events of this type, repeatable or comma-separated: "+eventTypeHelp)
	f.StringArrayVar(&jobs, "job", nil, "only events about this job id (repeatable)")
	f.StringArrayVar(&webhooks, "webhook", nil, "only events that arrived on this webhook id (repeatable)")
	f.StringSliceVar(&kinds, "kind", nil, "only jobs of this kind, repeatable or comma-separated: "+kindHelp)
	f.StringVar(&filter, "filter", "", "only events for which this CEL expression over `event` is true")
	f.Int32Var(&pageSize, "page-size", 0, "events per request (server default 100, at most 1000)")
	f.StringVar(&pageToken, "page-token", "", "continue from a previous listing's next page token")
	f.BoolVar(&newestFirst, "newest-first", false, "newest events first")
	f.BoolVar(&all, "all", false, "follow page tokens to the end")
	f.IntVar(&limit, "limit", 0, "print at most this many events (0: no limit)")
	f.StringVar(&view, "view", "basic", "basic, or full to include raw bodies (with --json)")
	f.BoolVar(&asJSON, "json", false, "print each event as one line of protojson")
	return cmd
}

func (c *client) eventsGetCommand() *cobra.Command {
	var raw, asJSON bool
	var view string
	cmd := &cobra.Command{
		Use:   "get SEQ|ID",
		Short: "Show one event by sequence or by evt_ id",
		Example: `  klingctl events get 42
  klingctl events get 42 --raw > delivery.json   # the exact bytes Kling posted`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			v, err := parseView(view)
			if err != nil {
				return err
			}
			if raw && asJSON {
				return usagef("--raw and --json are mutually exclusive")
			}
			req := &gatewayv1.GetEventRequest{View: v}
			if raw {
				req.View = gatewayv1.EventView_EVENT_VIEW_FULL
			}
			arg := strings.TrimPrefix(a[0], "#")
			if seq, err := strconv.ParseUint(arg, 10, 64); err == nil {
				if seq == 0 {
					return usagef("sequences start at 1")
				}
				req.Sequence = seq
			} else {
				req.Id = a[0]
			}
			resp, err := callEvents(c, cmd.Context(), gatewayv1.EventServiceClient.GetEvent, req)
			if err != nil {
				return err
			}
			ev := resp.GetEvent()
			switch {
			case raw:
				_, err = c.env.Stdout.Write(ev.GetRawBody())
				return err
			case asJSON:
				return writeJSON(c.env.Stdout, ev)
			}
			return writeEventDetail(c.env.Stdout, ev)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&raw, "raw", false, "print only the raw body, byte for byte, as the sender posted it")
	f.StringVar(&view, "view", "basic", "basic, or full to include the raw body (with --json)")
	f.BoolVar(&asJSON, "json", false, "print the event as protojson")
	return cmd
}
