package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// timeLayout is how klingctl prints times in text output: local time,
// seconds precision, sortable.
const timeLayout = "2006-01-02 15:04:05"

// ANSI escapes used in text output.
const (
	ansiReset  = "\x1b[0m"
	ansiDim    = "\x1b[2m"
	ansiBold   = "\x1b[1m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiBlue   = "\x1b[34m"
	ansiCyan   = "\x1b[36m"
)

// colour says whether text output may use ANSI colours: only on a terminal,
// and not when NO_COLOR is set to anything non-empty (no-color.org) or the
// terminal is dumb.
func (c *client) colour() bool {
	return c.env.Terminal && c.env.getenv("NO_COLOR") == "" && c.env.getenv("TERM") != "dumb"
}

// paint wraps s in an ANSI style when colour is on.
func paint(on bool, style, s string) string {
	if !on || style == "" {
		return s
	}
	return style + s + ansiReset
}

func typeStyle(t gatewayv1.EventType) string {
	switch t {
	case gatewayv1.EventType_EVENT_TYPE_VIDEO_CREATED:
		return ansiBlue
	case gatewayv1.EventType_EVENT_TYPE_VIDEO_PROCESSING:
		return ansiCyan
	case gatewayv1.EventType_EVENT_TYPE_VIDEO_COMPLETED:
		return ansiGreen
	case gatewayv1.EventType_EVENT_TYPE_VIDEO_FAILED:
		return ansiRed
	case gatewayv1.EventType_EVENT_TYPE_VIDEO_CANCELLED:
		return ansiYellow
	}
	return ansiBold
}

// writeJSON writes m as one line of compact protojson (protojson adds
// random spaces on purpose; compacting makes the output stable for diffs
// and line-oriented tools).
func writeJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.Marshal(m)
	if err != nil {
		return fmt.Errorf("encoding JSON: %w", err)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return fmt.Errorf("encoding JSON: %w", err)
	}
	buf.WriteByte('\n')
	_, err = w.Write(buf.Bytes())
	return err
}

// eventTime is when an event is shown to have happened: when klingfan
// received it, or failing that when the sender says it happened.
func eventTime(ev *gatewayv1.Event) string {
	ts := ev.GetReceivedAt()
	if ts == nil {
		ts = ev.GetOccurredAt()
	}
	return formatTime(ts)
}

func formatTime(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	return ts.AsTime().Local().Format(timeLayout)
}

func formatDuration(d *durationpb.Duration) string {
	if d == nil {
		return "-"
	}
	return d.AsDuration().String()
}

// firstOutput is the first output URL of the job: a subtitle file, audio
// track, voice sample or element material (the kinds whose video or image
// is incidental), else a video, else an image.
func firstOutput(job *gatewayv1.Job) string {
	var urls []string
	for _, s := range job.GetSubtitles() {
		urls = append(urls, s.GetUrl())
	}
	for _, a := range job.GetAudios() {
		urls = append(urls, a.GetMp3Url(), a.GetWavUrl())
	}
	for _, v := range job.GetVoices() {
		urls = append(urls, v.GetUrl())
	}
	for _, e := range job.GetElements() {
		for _, m := range e.GetMaterials() {
			urls = append(urls, m.GetUrl())
		}
	}
	for _, v := range job.GetVideos() {
		urls = append(urls, v.GetUrl())
	}
	for _, im := range job.GetImages() {
		urls = append(urls, im.GetUrl())
	}
	for _, u := range urls {
		if u != "" {
			return u
		}
	}
	return ""
}

// outputOrMessage is the last column of an event line: the first output,
// or for a job without one its status message.
func outputOrMessage(job *gatewayv1.Job) string {
	if u := firstOutput(job); u != "" {
		return u
	}
	if m := job.GetStatusMessage(); m != "" {
		return fmt.Sprintf("%q", m)
	}
	return ""
}

// eventLine is the one-line text form of an event used by listen and
// send-test: time, sequence, type, job id, status, first output URL.
func eventLine(ev *gatewayv1.Event, colour bool) string {
	job := ev.GetJob()
	var b strings.Builder
	b.WriteString(paint(colour, ansiDim, eventTime(ev)))
	b.WriteString("  ")
	b.WriteString(paint(colour, ansiDim, fmt.Sprintf("#%-6d", ev.GetSequence())))
	b.WriteString(" ")
	b.WriteString(paint(colour, typeStyle(ev.GetType()), fmt.Sprintf("%-16s", printable(eventTypeName(ev.GetType(), ev.GetRawType())))))
	b.WriteString("  ")
	b.WriteString(paint(colour, ansiBold, fmt.Sprintf("%-22s", printable(orDash(job.GetJobId())))))
	b.WriteString("  ")
	fmt.Fprintf(&b, "%-10s", printable(orDash(jobStatusName(job.GetStatus(), job.GetRawStatus()))))
	if out := outputOrMessage(job); out != "" {
		b.WriteString("  ")
		b.WriteString(printable(out))
	}
	if ev.GetTest() {
		b.WriteString(paint(colour, ansiYellow, "  [test]"))
	}
	return strings.TrimRight(b.String(), " ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// writeEventDetail prints every field of one event, one per line.
func writeEventDetail(w io.Writer, ev *gatewayv1.Event) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, printable(v))
		}
	}
	job := ev.GetJob()
	row("Sequence", fmt.Sprint(ev.GetSequence()))
	row("ID", ev.GetId())
	typ := eventTypeName(ev.GetType(), ev.GetRawType())
	if ev.GetRawType() != "" && ev.GetRawType() != typ {
		typ += fmt.Sprintf(" (sent as %q)", ev.GetRawType())
	}
	row("Type", typ)
	row("Webhook", ev.GetWebhookId())
	row("Format", formatName(ev.GetSourceFormat()))
	row("Occurred", formatTime(ev.GetOccurredAt()))
	row("Received", formatTime(ev.GetReceivedAt()))
	row("Delivery", ev.GetDeliveryId())
	if ev.GetTest() {
		row("Test", "yes (sent by SendTestEvent)")
	}
	row("Job", job.GetJobId())
	status := jobStatusName(job.GetStatus(), job.GetRawStatus())
	if job.GetRawStatus() != "" && job.GetRawStatus() != status {
		status += fmt.Sprintf(" (sent as %q)", job.GetRawStatus())
	}
	row("Status", status)
	row("Message", job.GetStatusMessage())
	if job.GetProgressPercent() != 0 {
		row("Progress", fmt.Sprintf("%d%%", job.GetProgressPercent()))
	}
	row("Prompt", job.GetPrompt())
	row("Model", job.GetModel())
	row("Kind", jobKindName(job.GetKind()))
	row("External ID", job.GetExternalId())
	if job.GetCreatedAt() != nil {
		row("Created", formatTime(job.GetCreatedAt()))
	}
	if job.GetUpdatedAt() != nil {
		row("Updated", formatTime(job.GetUpdatedAt()))
	}
	if job.GetCompletedAt() != nil {
		row("Completed", formatTime(job.GetCompletedAt()))
	}
	for i, v := range job.GetVideos() {
		desc := v.GetUrl()
		if v.GetDuration() != nil {
			desc += fmt.Sprintf(" (%s)", v.GetDuration().AsDuration())
		}
		row(fmt.Sprintf("Video %d", i+1), desc)
		row("  thumbnail", v.GetThumbnailUrl())
		row("  watermarked", v.GetWatermarkUrl())
	}
	for _, im := range job.GetImages() {
		row(fmt.Sprintf("Image %d", im.GetIndex()), im.GetUrl())
	}
	row("Image result", job.GetImageResultType())
	for i, a := range job.GetAudios() {
		row(fmt.Sprintf("Audio %d", i+1), fmt.Sprintf("%s (%s)", a.GetMp3Url(), formatDuration(a.GetMp3Duration())))
		row("  wav", a.GetWavUrl())
	}
	for _, v := range job.GetVoices() {
		row("Voice "+v.GetId(), strings.TrimSpace(v.GetName()+" "+v.GetUrl()))
	}
	for _, e := range job.GetElements() {
		row("Element "+e.GetId(), fmt.Sprintf("%s (%s, %d materials)", e.GetName(), e.GetElementType(), len(e.GetMaterials())))
	}
	for _, st := range job.GetSubtitles() {
		row("Subtitles "+st.GetFormat(), st.GetUrl())
	}
	if pv := job.GetParentVideo(); pv != nil {
		row("Extends video", pv.GetUrl())
	}
	row("Units", job.GetUnitsDeducted())
	for _, c := range job.GetBilling() {
		row("Charge", strings.TrimSpace(strings.Join([]string{c.GetChargeType(), c.GetAmount(), c.GetCurrency(), c.GetPackageType()}, " ")))
	}
	if len(ev.GetRawBody()) > 0 {
		row("Raw body", fmt.Sprintf("%d bytes (print them with --raw)", len(ev.GetRawBody())))
	}
	return tw.Flush()
}

// writeEventTable prints events as a table.
func writeEventTable(w io.Writer, events []*gatewayv1.Event) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tRECEIVED\tTYPE\tJOB\tSTATUS\tWEBHOOK\tOUTPUT")
	for _, ev := range events {
		job := ev.GetJob()
		out := outputOrMessage(job)
		if ev.GetTest() {
			out = strings.TrimSpace(out + " [test]")
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", ev.GetSequence(), eventTime(ev),
			printable(eventTypeName(ev.GetType(), ev.GetRawType())), printable(orDash(job.GetJobId())),
			printable(orDash(jobStatusName(job.GetStatus(), job.GetRawStatus()))), printable(orDash(ev.GetWebhookId())), printable(orDash(out)))
	}
	return tw.Flush()
}

// writeWebhookTable prints registrations as a table.
func writeWebhookTable(w io.Writer, hooks []*gatewayv1.Webhook) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSCHEME\tTYPES\tACTIVE\tINGEST URL")
	for _, h := range hooks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", h.GetId(), orDash(h.GetDisplayName()), schemeName(h.GetSignatureScheme()),
			eventTypeList(h.GetEventTypes()), yesNo(h.GetActive()), h.GetIngestUrl())
	}
	return tw.Flush()
}

// writeWebhookDetail prints one registration, one field per line.
func writeWebhookDetail(w io.Writer, h *gatewayv1.Webhook) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "ID:\t%s\n", h.GetId())
	fmt.Fprintf(tw, "Name:\t%s\n", orDash(h.GetDisplayName()))
	fmt.Fprintf(tw, "Scheme:\t%s\n", schemeName(h.GetSignatureScheme()))
	fmt.Fprintf(tw, "Event types:\t%s\n", eventTypeList(h.GetEventTypes()))
	fmt.Fprintf(tw, "Active:\t%s\n", yesNo(h.GetActive()))
	if h.GetSignatureScheme() == gatewayv1.SignatureScheme_SIGNATURE_SCHEME_STANDARD_WEBHOOKS {
		tol := formatDuration(h.GetSignatureTolerance())
		if d := h.GetSignatureTolerance(); d != nil && d.AsDuration() == 0 {
			tol = "0s (timestamp check off)"
		}
		fmt.Fprintf(tw, "Tolerance:\t%s\n", tol)
	}
	fmt.Fprintf(tw, "Ingest URL:\t%s\n", h.GetIngestUrl())
	fmt.Fprintf(tw, "Created:\t%s\n", formatTime(h.GetCreateTime()))
	fmt.Fprintf(tw, "Updated:\t%s\n", formatTime(h.GetUpdateTime()))
	if exp := h.GetPreviousSecretExpireTime(); exp != nil {
		fmt.Fprintf(tw, "Previous secret:\tvalid until %s\n", formatTime(exp))
	}
	return tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// writeSecret prints a newly issued secret so that it cannot be overlooked.
func writeSecret(w io.Writer, colour bool, secret, callbackURL string, h *gatewayv1.Webhook) {
	fmt.Fprintf(w, "%s %s\n", paint(colour, ansiBold+ansiYellow, "Secret (shown once, store it now):"), secret)
	if callbackURL != "" {
		fmt.Fprintf(w, "Callback URL (give it to Kling as callback_url): %s\n", callbackURL)
	}
	if exp := h.GetPreviousSecretExpireTime(); exp != nil {
		fmt.Fprintf(w, "The previous secret keeps verifying until %s.\n", exp.AsTime().Local().Format(time.RFC3339))
	}
}

// printable replaces control characters (escape sequences could rewrite
// the terminal) and bidirectional overrides (they could disguise text) in
// text that end users sent, through Kling, with U+FFFD.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) {
			return unicode.ReplacementChar
		}
		return r
	}, s)
}
