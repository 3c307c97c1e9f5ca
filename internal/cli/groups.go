package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

func (c *client) consumerGroups() (gatewayv1.ConsumerGroupServiceClient, error) {
	conn, err := c.dial()
	if err != nil {
		return nil, err
	}
	return gatewayv1.NewConsumerGroupServiceClient(conn), nil
}

func (c *client) groupsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "groups",
		Aliases: []string{"group"},
		Short:   "Manage consumer groups and consume as a member",
		Long: `Manage consumer groups: durable readers of the event log whose members share
its events, each event going to one member at a time until one acknowledges
it. Managing needs an admin token; consume needs the subscribe scope.

A group with a single member is a durable subscription: the server keeps the
cursor, so a restarted consumer resumes without a cursor file.`,
	}
	cmd.AddCommand(c.groupsCreateCommand(), c.groupsListCommand(), c.groupsGetCommand(), c.groupsDeleteCommand(), c.groupsConsumeCommand())
	return cmd
}

func (c *client) groupsCreateCommand() *cobra.Command {
	var (
		id, name              string
		types, jobs, webhooks []string
		fromBeginning, asJSON bool
		after                 uint64
		since                 string
		ackWait               time.Duration
		maxDeliveries         int32
	)
	cmd := &cobra.Command{
		Use:     "create",
		Short:   "Create a consumer group",
		Example: `  klingctl groups create --id thumbnails --types completed --from-beginning --ack-wait 1m`,
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ts, err := parseEventTypes(types)
			if err != nil {
				return err
			}
			cg := &gatewayv1.ConsumerGroup{DisplayName: name, EventTypes: ts, JobIds: jobs, WebhookIds: webhooks, MaxDeliveries: maxDeliveries}
			if cmd.Flags().Changed("ack-wait") {
				cg.AckWait = durationpb.New(ackWait)
			}
			switch {
			case fromBeginning:
				cg.Start = &gatewayv1.ConsumerGroup_FromBeginning{FromBeginning: true}
			case cmd.Flags().Changed("after"):
				cg.Start = &gatewayv1.ConsumerGroup_AfterSequence{AfterSequence: after}
			case since != "":
				t, err := time.Parse(time.RFC3339, since)
				if err != nil {
					return usagef("--since: want an RFC 3339 time such as 2026-11-26T12:00:00Z")
				}
				cg.Start = &gatewayv1.ConsumerGroup_Since{Since: timestamppb.New(t)}
			}
			resp, err := callGroups(c, cmd.Context(), gatewayv1.ConsumerGroupServiceClient.CreateConsumerGroup,
				&gatewayv1.CreateConsumerGroupRequest{ConsumerGroup: cg, ConsumerGroupId: id})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.env.Stdout, resp.GetConsumerGroup())
			}
			fmt.Fprintf(c.env.Stdout, "Created consumer group %s.\n", resp.GetConsumerGroup().GetId())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&id, "id", "", "id of the group, [a-z0-9][a-z0-9-]{0,62} (generated when empty)")
	f.StringVar(&name, "name", "", "display name")
	f.StringSliceVar(&types, "types", nil, "only these event types (comma-separated; default all): "+eventTypeHelp)
	f.StringSliceVar(&jobs, "jobs", nil, "only these job ids")
	f.StringSliceVar(&webhooks, "webhooks", nil, "only these registrations")
	f.BoolVar(&fromBeginning, "from-beginning", false, "start with the earliest retained event (default: events from now on)")
	f.Uint64Var(&after, "after", 0, "start after this sequence")
	f.StringVar(&since, "since", "", "start with events received at or after this RFC 3339 time")
	f.DurationVar(&ackWait, "ack-wait", 0, "how long a member has to acknowledge (server default 30s)")
	f.Int32Var(&maxDeliveries, "max-deliveries", 0, "deliveries before an event is dead-lettered (server default 5)")
	f.BoolVar(&asJSON, "json", false, "print the group as protojson")
	cmd.MarkFlagsMutuallyExclusive("from-beginning", "after", "since")
	return cmd
}

func (c *client) groupsListCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List consumer groups with their counters",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			svc, err := c.consumerGroups()
			if err != nil {
				return err
			}
			var all []*gatewayv1.ConsumerGroup
			req := &gatewayv1.ListConsumerGroupsRequest{}
			for {
				ctx, cancel := c.unary(cmd.Context())
				resp, err := svc.ListConsumerGroups(ctx, req)
				cancel()
				if err != nil {
					return err
				}
				all = append(all, resp.GetConsumerGroups()...)
				if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
					break
				}
			}
			if asJSON {
				for _, g := range all {
					if err := writeJSON(c.env.Stdout, g); err != nil {
						return err
					}
				}
				return nil
			}
			if len(all) == 0 {
				fmt.Fprintln(c.env.Stderr, "No consumer groups; create one with 'klingctl groups create'.")
				return nil
			}
			return writeGroupTable(c.env.Stdout, all)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print each group as one line of protojson")
	return cmd
}

func (c *client) groupsGetCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "get ID",
		Short: "Show one consumer group",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			resp, err := callGroups(c, cmd.Context(), gatewayv1.ConsumerGroupServiceClient.GetConsumerGroup,
				&gatewayv1.GetConsumerGroupRequest{Id: a[0]})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.env.Stdout, resp.GetConsumerGroup())
			}
			return writeGroupTable(c.env.Stdout, []*gatewayv1.ConsumerGroup{resp.GetConsumerGroup()})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the group as protojson")
	return cmd
}

func (c *client) groupsDeleteCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a consumer group, its position and its dead letters",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if _, err := callGroups(c, cmd.Context(), gatewayv1.ConsumerGroupServiceClient.DeleteConsumerGroup,
				&gatewayv1.DeleteConsumerGroupRequest{Id: a[0]}); err != nil {
				return err
			}
			fmt.Fprintf(c.env.Stdout, "Deleted consumer group %s.\n", a[0])
			return nil
		},
	}
}

func (c *client) groupsConsumeCommand() *cobra.Command {
	var (
		asJSON bool
		count  int
	)
	cmd := &cobra.Command{
		Use:   "consume ID",
		Short: "Join a group as a member: print and acknowledge its events",
		Long: `Join a consumer group as one member and print each event it is given, one
line each (or protojson with --json), acknowledging it once printed. Run it
in several terminals to watch the group share its events. Ctrl-C stops.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			gw, err := c.gateway()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			seen := 0
			err = gw.Consume(ctx, a[0], func(_ context.Context, ev *gatewayv1.Event) error {
				if err := c.printConsumed(c.env.Stdout, ev, asJSON); err != nil {
					return err
				}
				if seen++; count > 0 && seen >= count {
					cancel()
				}
				return nil
			})
			if count > 0 && seen >= count && cmd.Context().Err() == nil {
				return nil
			}
			if cmd.Context().Err() != nil {
				return nil // Ctrl-C: a clean exit
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print each event as one line of protojson")
	cmd.Flags().IntVar(&count, "count", 0, "exit after this many events (default: run until interrupted)")
	return cmd
}

func (c *client) printConsumed(w io.Writer, ev *gatewayv1.Event, asJSON bool) error {
	if asJSON {
		return writeJSON(w, ev)
	}
	_, err := fmt.Fprintln(w, eventLine(ev, c.colour()))
	return err
}

// writeGroupTable prints consumer groups with their counters.
func writeGroupTable(w io.Writer, groups []*gatewayv1.ConsumerGroup) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tTYPES\tPENDING\tACK PENDING\tDEAD\tMEMBERS\tACK WAIT")
	for _, g := range groups {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", g.GetId(), orDash(g.GetDisplayName()), eventTypeList(g.GetEventTypes()),
			g.GetPending(), g.GetAckPending(), g.GetDeadLettered(), g.GetMembers(), formatDuration(g.GetAckWait()))
	}
	return tw.Flush()
}
