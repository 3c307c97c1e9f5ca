package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

func (c *client) webhooksCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "webhooks",
		Aliases: []string{"webhook", "wh"},
		Short:   "Manage webhook registrations (ingest URLs and their secrets)",
		Long: `Manage webhook registrations: the ingest URLs Kling posts callbacks to, and
the scheme and secret that authenticate them. Needs an admin token.

Text output is a table; --json prints protojson, one object per line.`,
	}
	cmd.AddCommand(
		c.webhooksCreateCommand(),
		c.webhooksListCommand(),
		c.webhooksGetCommand(),
		c.webhooksUpdateCommand(),
		c.webhooksDeleteCommand(),
		c.webhooksRotateCommand(),
		c.webhooksSendTestCommand(),
	)
	return cmd
}

func (c *client) webhooksCreateCommand() *cobra.Command {
	var (
		id, name, scheme, secret string
		types                    []string
		tolerance                time.Duration
		inactive, asJSON         bool
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Register a new ingest URL; prints its secret once",
		Example: `  klingctl webhooks create --id prod --name "Production" --scheme standard
  klingctl webhooks create --scheme kling --secret "$KLINGAI_WEBHOOK_SECRET" --types completed,failed`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			sch, err := parseScheme(scheme)
			if err != nil {
				return err
			}
			ts, err := parseEventTypes(types)
			if err != nil {
				return err
			}
			w := &gatewayv1.Webhook{DisplayName: name, SignatureScheme: sch, EventTypes: ts}
			if inactive {
				w.Active = proto.Bool(false)
			}
			if cmd.Flags().Changed("tolerance") {
				w.SignatureTolerance = durationpb.New(tolerance)
			}
			resp, err := callWebhooks(c, cmd.Context(), gatewayv1.WebhookServiceClient.CreateWebhook, &gatewayv1.CreateWebhookRequest{Webhook: w, WebhookId: id, Secret: secret})
			if err != nil {
				return err
			}
			out := c.env.Stdout
			if asJSON {
				return writeJSON(out, resp)
			}
			fmt.Fprintf(out, "Created webhook %s (%s).\n", resp.GetWebhook().GetId(), schemeName(resp.GetWebhook().GetSignatureScheme()))
			writeSecret(out, c.colour(), resp.GetSecret(), resp.GetCallbackUrl(), resp.GetWebhook())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&id, "id", "", "id of the registration, [a-z0-9][a-z0-9-]{0,62} (generated when empty)")
	f.StringVar(&name, "name", "", "display name")
	f.StringVar(&scheme, "scheme", "standard", "how deliveries are authenticated: kling (X-Kling-Signature), standard (Standard Webhooks) or token (URL token)")
	f.StringSliceVar(&types, "types", nil, "accept only these event types (comma-separated; default all): "+eventTypeHelp)
	f.StringVar(&secret, "secret", "", "import this secret (e.g. from Kling's console) instead of generating one")
	f.DurationVar(&tolerance, "tolerance", 0, "how far a Standard Webhooks timestamp may be from now (server default 5m; 0s disables the check)")
	f.BoolVar(&inactive, "inactive", false, "create it inactive (deliveries answered 403 until activated)")
	f.BoolVar(&asJSON, "json", false, "print the response as protojson (includes the secret)")
	return cmd
}

func (c *client) webhooksListCommand() *cobra.Command {
	var (
		pageSize int32
		asJSON   bool
	)
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List registrations",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			svc, err := c.webhooks()
			if err != nil {
				return err
			}
			var all []*gatewayv1.Webhook
			req := &gatewayv1.ListWebhooksRequest{PageSize: pageSize}
			for {
				ctx, cancel := c.unary(cmd.Context())
				resp, err := svc.ListWebhooks(ctx, req)
				cancel()
				if err != nil {
					return err
				}
				if asJSON {
					for _, w := range resp.GetWebhooks() {
						if err := writeJSON(c.env.Stdout, w); err != nil {
							return err
						}
					}
				}
				all = append(all, resp.GetWebhooks()...)
				if resp.GetNextPageToken() == "" {
					break
				}
				req.PageToken = resp.GetNextPageToken()
			}
			if asJSON {
				return nil
			}
			if len(all) == 0 {
				fmt.Fprintln(c.env.Stderr, "No webhooks registered; create one with 'klingctl webhooks create'.")
				return nil
			}
			return writeWebhookTable(c.env.Stdout, all)
		},
	}
	cmd.Flags().Int32Var(&pageSize, "page-size", 0, "registrations per request (server default 50); every page is listed")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print each registration as one line of protojson")
	return cmd
}

func (c *client) webhooksGetCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "get ID",
		Short: "Show one registration",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			resp, err := callWebhooks(c, cmd.Context(), gatewayv1.WebhookServiceClient.GetWebhook, &gatewayv1.GetWebhookRequest{Id: a[0]})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.env.Stdout, resp.GetWebhook())
			}
			return writeWebhookDetail(c.env.Stdout, resp.GetWebhook())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the registration as protojson")
	return cmd
}

func (c *client) webhooksUpdateCommand() *cobra.Command {
	var (
		name           string
		types          []string
		active, asJSON bool
		tolerance      time.Duration
	)
	cmd := &cobra.Command{
		Use:   "update ID",
		Short: "Change the name, event types, active flag or tolerance of a registration",
		Long: `Change a registration. Only the fields whose flags are given change
(they form the update mask); --types "" accepts every type again.`,
		Example: `  klingctl webhooks update prod --active=false
  klingctl webhooks update prod --types completed,failed --name "Production"`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			w := &gatewayv1.Webhook{Id: a[0]}
			var paths []string
			fl := cmd.Flags()
			if fl.Changed("name") {
				w.DisplayName = name
				paths = append(paths, "display_name")
			}
			if fl.Changed("types") {
				ts, err := parseEventTypes(types)
				if err != nil {
					return err
				}
				w.EventTypes = ts
				paths = append(paths, "event_types")
			}
			if fl.Changed("active") {
				w.Active = proto.Bool(active)
				paths = append(paths, "active")
			}
			if fl.Changed("tolerance") {
				w.SignatureTolerance = durationpb.New(tolerance)
				paths = append(paths, "signature_tolerance")
			}
			if len(paths) == 0 {
				return usagef("nothing to update: give --name, --types, --active or --tolerance")
			}
			resp, err := callWebhooks(c, cmd.Context(), gatewayv1.WebhookServiceClient.UpdateWebhook, &gatewayv1.UpdateWebhookRequest{Webhook: w, UpdateMask: &fieldmaskpb.FieldMask{Paths: paths}})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.env.Stdout, resp.GetWebhook())
			}
			return writeWebhookDetail(c.env.Stdout, resp.GetWebhook())
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "new display name")
	f.StringSliceVar(&types, "types", nil, "accept only these event types (comma-separated; \"\" for all): "+eventTypeHelp)
	f.BoolVar(&active, "active", true, "accept deliveries (--active=false to pause the registration)")
	f.DurationVar(&tolerance, "tolerance", 0, "Standard Webhooks timestamp tolerance (0s disables the check)")
	f.BoolVar(&asJSON, "json", false, "print the updated registration as protojson")
	return cmd
}

func (c *client) webhooksDeleteCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "delete ID",
		Aliases: []string{"rm"},
		Short:   "Delete a registration (later deliveries to it get 404)",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			resp, err := callWebhooks(c, cmd.Context(), gatewayv1.WebhookServiceClient.DeleteWebhook, &gatewayv1.DeleteWebhookRequest{Id: a[0]})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.env.Stdout, resp)
			}
			fmt.Fprintf(c.env.Stdout, "Deleted webhook %s.\n", a[0])
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the (empty) response as protojson")
	return cmd
}

func (c *client) webhooksRotateCommand() *cobra.Command {
	var (
		secret string
		grace  time.Duration
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "rotate-secret ID",
		Short: "Issue a new secret; the previous one keeps verifying for --grace",
		Example: `  klingctl webhooks rotate-secret prod
  klingctl webhooks rotate-secret prod --grace 0s   # revoke the old secret at once`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			req := &gatewayv1.RotateWebhookSecretRequest{Id: a[0], Secret: secret}
			if cmd.Flags().Changed("grace") {
				req.GracePeriod = durationpb.New(grace)
			}
			resp, err := callWebhooks(c, cmd.Context(), gatewayv1.WebhookServiceClient.RotateWebhookSecret, req)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.env.Stdout, resp)
			}
			fmt.Fprintf(c.env.Stdout, "Rotated the secret of webhook %s.\n", resp.GetWebhook().GetId())
			writeSecret(c.env.Stdout, c.colour(), resp.GetSecret(), resp.GetCallbackUrl(), resp.GetWebhook())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&secret, "secret", "", "import this secret instead of generating one")
	f.DurationVar(&grace, "grace", 0, "how long the previous secret keeps verifying (server default 24h; 0s revokes it now)")
	f.BoolVar(&asJSON, "json", false, "print the response as protojson (includes the secret)")
	return cmd
}

func (c *client) webhooksSendTestCommand() *cobra.Command {
	var (
		typ    string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "send-test ID",
		Short: "Send a signed test delivery through the real ingest path",
		Long: `Send a realistic delivery, signed with the registration's current secret,
through the real ingest path, and print the event it produced (marked test).
Subscribers see it like any other event.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			req := &gatewayv1.SendTestEventRequest{Id: a[0]}
			if typ != "" {
				t, err := parseEventType(typ)
				if err != nil {
					return err
				}
				req.EventType = t
			}
			resp, err := callWebhooks(c, cmd.Context(), gatewayv1.WebhookServiceClient.SendTestEvent, req)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.env.Stdout, resp.GetEvent())
			}
			_, err = fmt.Fprintln(c.env.Stdout, eventLine(resp.GetEvent(), c.colour()))
			return err
		},
	}
	cmd.Flags().StringVar(&typ, "type", "", "event type to simulate (server default completed): "+eventTypeHelp)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the event as protojson")
	return cmd
}
