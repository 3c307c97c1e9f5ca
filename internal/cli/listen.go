package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// headSequenceHeader is the Subscribe response header that marks a stream
// live; its value is the newest sequence published when it went live
// (api.HeadSequenceHeader on the server).
const headSequenceHeader = "klingfan-head-sequence"

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

// startKind names a SubscribeRequest start option.
type startKind int

const (
	startNow startKind = iota
	startAfter
	startSince
	startBeginning
)

// startPosition is where a subscription begins.
type startPosition struct {
	kind  startKind
	after uint64
	since time.Time
}

func (p startPosition) apply(req *gatewayv1.SubscribeRequest) {
	switch p.kind {
	case startAfter:
		req.Start = &gatewayv1.SubscribeRequest_AfterSequence{AfterSequence: p.after}
	case startSince:
		req.Start = &gatewayv1.SubscribeRequest_Since{Since: timestamppb.New(p.since)}
	case startBeginning:
		req.Start = &gatewayv1.SubscribeRequest_FromBeginning{FromBeginning: true}
	default:
		req.Start = nil
	}
}

func (p startPosition) String() string {
	switch p.kind {
	case startAfter:
		return fmt.Sprintf("after sequence %d", p.after)
	case startSince:
		return "since " + p.since.Local().Format(time.RFC3339)
	case startBeginning:
		return "from the beginning"
	}
	return "from now"
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
	var start startPosition
	var starts []string
	if cmd.Flags().Changed("since") {
		starts = append(starts, "--since")
		t, err := parseSince(f.since, c.env.now())
		if err != nil {
			return err
		}
		start = startPosition{kind: startSince, since: t}
	}
	if cmd.Flags().Changed("after") {
		starts = append(starts, "--after")
		start = startPosition{kind: startAfter, after: f.after}
	}
	if f.fromBeginning {
		starts = append(starts, "--from-beginning")
		start = startPosition{kind: startBeginning}
	}
	if len(starts) > 1 {
		return usagef("%s are mutually exclusive", strings.Join(starts, " and "))
	}
	l := &listener{
		c:      c,
		out:    c.env.Stdout,
		log:    c.env.Stderr,
		json:   f.json,
		colour: c.colour(),
		start:  start,
		req: &gatewayv1.SubscribeRequest{
			EventTypes: types,
			JobIds:     f.jobs,
			WebhookIds: f.webhooks,
			JobKinds:   kinds,
			Filter:     f.filter,
			View:       view,
		},
	}
	if f.cursorFile != "" {
		l.cursor = &cursorFile{path: f.cursorFile}
		seq, ok, err := l.cursor.load()
		if err != nil {
			return err
		}
		if ok {
			l.last, l.haveLast = seq, true
			fmt.Fprintf(l.log, "Resuming after sequence %d (from %s).\n", seq, f.cursorFile)
		}
	}
	events, err := c.events()
	if err != nil {
		return err
	}
	return l.run(ctx, events)
}

// listener is one listen run: it owns the stream, the reconnect loop and
// the cursor.
type listener struct {
	c        *client
	out, log io.Writer
	json     bool
	colour   bool
	req      *gatewayv1.SubscribeRequest
	cursor   *cursorFile

	start startPosition // as given on the command line

	// last is the sequence of the last event handled (printed and saved);
	// haveLast is false until there is one.
	last     uint64
	haveLast bool
	// head is the newest sequence when the first stream went live; a
	// stream started "now" that has not printed anything resumes after it.
	head     uint64
	haveHead bool
	everLive bool
}

// position is where the next stream must start so that it continues
// exactly where the previous one stopped.
func (l *listener) position() startPosition {
	switch {
	case l.haveLast:
		return startPosition{kind: startAfter, after: l.last}
	case l.start.kind == startNow && l.haveHead:
		return startPosition{kind: startAfter, after: l.head}
	}
	return l.start
}

// run subscribes until ctx ends. The first connection must succeed (a wrong
// address fails fast); once live, retryable failures reconnect with
// exponential backoff, capped at maxReconnectDelay.
func (l *listener) run(ctx context.Context, events gatewayv1.EventServiceClient) error {
	delay := firstReconnectDelay
	for {
		live, err := l.stream(ctx, events)
		if ctx.Err() != nil {
			return nil // Ctrl-C: a clean exit
		}
		if !l.everLive || !retryable(err) {
			return err
		}
		if live {
			delay = firstReconnectDelay
			reason := "the server ended the stream"
			if !errors.Is(err, io.EOF) {
				reason = l.c.describe(err)
			}
			fmt.Fprintf(l.log, "Connection lost: %s. Reconnecting...\n", reason)
		}
		wait := delay/2 + rand.N(delay/2+1) // jitter, so many listeners do not reconnect in step
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		delay = min(2*delay, maxReconnectDelay)
		// Dial now rather than after gRPC's own backoff: this loop paces
		// the attempts.
		if conn, err := l.c.dial(); err == nil {
			conn.ResetConnectBackoff()
		}
	}
}

// retryable reports failures worth reconnecting after: the server or the
// network went away, or the server asked the client to come back later.
func retryable(err error) bool {
	if err == nil || errors.Is(err, io.EOF) {
		return true // the server ended the stream without an error
	}
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	switch st.Code() {
	case codes.Unavailable, codes.Aborted, codes.ResourceExhausted:
		return true
	case codes.Internal, codes.Unknown:
		// A stream reset by a proxy or a broken connection.
		msg := st.Message()
		return strings.Contains(msg, "RST_STREAM") || strings.Contains(msg, "transport") || strings.Contains(msg, "EOF")
	}
	return false
}

// stream runs one subscription until it fails; live reports whether it got
// as far as the server's "live" header.
func (l *listener) stream(ctx context.Context, events gatewayv1.EventServiceClient) (live bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req := proto.Clone(l.req).(*gatewayv1.SubscribeRequest)
	pos := l.position()
	pos.apply(req)
	stream, err := events.Subscribe(ctx, req)
	if err != nil {
		return false, err
	}
	md, err := stream.Header()
	if err != nil {
		// The status is the better error; Recv returns it.
		if _, rerr := stream.Recv(); rerr != nil {
			return false, rerr
		}
		return false, err
	}
	if v := md.Get(headSequenceHeader); len(v) > 0 {
		live = true
		if err := l.wentLive(v[0], pos); err != nil {
			return live, err
		}
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return live, err
		}
		if !live {
			live = true
			if err := l.wentLive("", pos); err != nil {
				return live, err
			}
		}
		if err := l.handle(resp.GetEvent()); err != nil {
			return live, err
		}
	}
}

// wentLive records a stream going live and says so on stderr.
func (l *listener) wentLive(head string, pos startPosition) error {
	first := !l.everLive
	l.everLive = true
	if first {
		if seq, err := strconv.ParseUint(head, 10, 64); err == nil {
			l.head, l.haveHead = seq, true
			// A first run started "now" records where it started, so a run
			// killed before its first event still resumes without a gap.
			if l.cursor != nil && !l.haveLast && pos.kind == startNow {
				if err := l.cursor.store(seq); err != nil {
					return err
				}
			}
		}
		fmt.Fprintf(l.log, "Ready: listening on %s for events %s%s (Ctrl-C to stop).\n", l.c.server, pos, l.filterSummary())
		return nil
	}
	fmt.Fprintf(l.log, "Reconnected to %s, resuming %s.\n", l.c.server, pos)
	return nil
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

// handle prints one event, then records it: printed first, so a crash in
// between repeats the event on the next run rather than losing it.
func (l *listener) handle(ev *gatewayv1.Event) error {
	if ev == nil {
		return nil
	}
	if l.haveLast && ev.GetSequence() <= l.last {
		return nil // already handled; the server does not resend, but be sure
	}
	if l.json {
		if err := writeJSON(l.out, ev); err != nil {
			return err
		}
	} else if _, err := fmt.Fprintln(l.out, eventLine(ev, l.colour)); err != nil {
		return err
	}
	l.last, l.haveLast = ev.GetSequence(), true
	if l.cursor != nil {
		return l.cursor.store(l.last)
	}
	return nil
}
