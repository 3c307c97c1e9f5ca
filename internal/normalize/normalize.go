package normalize

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// Sentinel errors. Every error this package returns wraps exactly one of
// them, with a short detail naming the field at fault, so that callers can
// branch with [errors.Is] and still log something actionable.
var (
	// ErrMalformed reports a body that is not a JSON object, is not valid
	// JSON, or carries a value of the wrong type or range in a field this
	// package maps (including the fields that identify the shape).
	ErrMalformed = errors.New("normalize: malformed JSON")
	// ErrUnknownShape reports a valid JSON object that matches none of the
	// three Kling wire formats.
	ErrUnknownShape = errors.New("normalize: unknown payload shape")
	// ErrIncomplete reports, in [Outcome.Incomplete], a body that was
	// normalized but holds something this package does not map (an output
	// type or member it does not know, or a mapped member whose value it
	// cannot read): that part is kept, unmapped and marked, in the event's
	// unmapped_json or unmapped_outputs, and in the raw body.
	ErrIncomplete = errors.New("normalize: partially normalized")
)

// wireFormat is one of the formats Kling posts: the two members whose
// presence identifies it, and its two readings of a body.
type wireFormat struct {
	keys [2]string
	// parse reads everything the format maps, noting in r what it could
	// not map; r may be nil. It fails only when what identifies the
	// delivery cannot be read.
	parse func(top object, r *report) (*gatewayv1.Event, error)
	// identify reads only what identifies a delivery.
	identify func(top object) (*gatewayv1.Event, error)
}

// wireFormats lists the formats in detection order: a signed event is
// recognized before a callback, and the legacy callback before the new one,
// because the new shape's keys ("id", "status") are the most generic.
var wireFormats = [...]wireFormat{
	{keys: [2]string{"event", "data"}, parse: parseKlingEvent, identify: identifyKlingEvent},
	{keys: [2]string{legacyHeader.id, legacyHeader.status}, parse: parseLegacy, identify: legacyHeader.identify},
	{keys: [2]string{v2Header.id, v2Header.status}, parse: parseV2, identify: v2Header.identify},
}

// detect decodes body and finds its format by shape. Presence, not type,
// decides, so that a recognizable payload with a wrongly typed key is
// reported as malformed rather than as an unknown shape.
func detect(body []byte) (object, *wireFormat, error) {
	top, err := decodeTop(body)
	if err != nil {
		return nil, nil, err
	}
	for i := range wireFormats {
		f := &wireFormats[i]
		if top.has(f.keys[0]) && top.has(f.keys[1]) {
			return top, f, nil
		}
	}
	wants := make([]string, len(wireFormats))
	for i, f := range wireFormats {
		wants[i] = fmt.Sprintf("%q and %q", f.keys[0], f.keys[1])
	}
	return nil, nil, fmt.Errorf("%w: want %s", ErrUnknownShape, strings.Join(wants, ", or "))
}

// Parse detects the wire format of body by its shape and normalizes it into
// an Event.
//
// Only the fields the body determines are set: type, raw_type, occurred_at,
// source_format and job. The caller owns id, sequence, webhook_id,
// received_at, delivery_id and raw_body, because those depend on the
// delivery rather than on its content. An unknown event name or status is
// not an error; it yields EVENT_TYPE_UNSPECIFIED with the original string in
// raw_type, so that no delivery is dropped because Kling added a state.
// Outputs and members it does not know are kept in unmapped_outputs and
// unmapped_json; [Normalize] also reports them.
//
// Parse is strict: a mapped member whose value cannot be read fails it.
// Errors wrap [ErrMalformed] or [ErrUnknownShape].
func Parse(body []byte) (*gatewayv1.Event, error) {
	top, f, err := detect(body)
	if err != nil {
		return nil, err
	}
	var r report
	ev, err := f.parse(top, &r)
	if err != nil {
		return nil, err
	}
	if r.bad != nil {
		return nil, r.bad
	}
	return ev, nil
}

// Identify reads only what identifies a delivery: its format, its event
// name or status, its job id and, for signed events, the job kind the name
// gives. It fails, like Parse, on malformed JSON, an unknown shape or an
// identifying field of the wrong kind.
func Identify(body []byte) (*gatewayv1.Event, error) {
	top, f, err := detect(body)
	if err != nil {
		return nil, err
	}
	return f.identify(top)
}

// Outcome is what [Normalize] makes of a body.
type Outcome struct {
	// Event is the normalized event.
	Event *gatewayv1.Event
	// Incomplete is nil when every member of the body found its field.
	// Otherwise it wraps ErrIncomplete and names what was not mapped, and
	// also wraps ErrMalformed when a mapped member's value could not be
	// read. The Event is then complete in everything else: what was not
	// mapped is on the output it belongs to (unmapped_json) or kept whole
	// (Job.unmapped_outputs), and the header survives.
	Incomplete error
}

// Normalize is what ingest needs: Parse, degrading per field where Parse is
// strict, so that a verified delivery of a known shape is kept, with its
// raw body, rather than answered 400 and lost (senders do not retry a
// 4xx): it degrades member by member (an unreadable value is left unset
// and kept in unmapped_json), and to Identify only where a parse fails
// outright. It fails only when Identify would, with Parse's more precise
// error.
func Normalize(body []byte) (Outcome, error) {
	top, f, err := detect(body)
	if err != nil {
		return Outcome{}, err
	}
	var r report
	ev, perr := f.parse(top, &r)
	if perr == nil {
		return Outcome{Event: ev, Incomplete: r.err()}, nil
	}
	if ev, err = f.identify(top); err != nil {
		return Outcome{}, perr
	}
	return Outcome{Event: ev, Incomplete: perr}, nil
}

// maxReported bounds how many problems one report names.
const maxReported = 4

// report collects what a parse could not map: members and outputs it does
// not know, and mapped members whose value it could not read. Both are
// kept in the event (unmapped_json, unmapped_outputs) rather than dropped.
// A nil report collects nothing, for callers that do not ask.
type report struct {
	notes []string
	more  int
	// bad is the first unreadable value, which Parse returns.
	bad error
}

// note records one problem description.
func (r *report) note(s string) {
	if len(r.notes) == maxReported {
		r.more++
		return
	}
	r.notes = append(r.notes, s)
}

// leave notes that the value at path, described by what, is not mapped.
func (r *report) leave(path, what string) {
	if r == nil {
		return
	}
	r.note(path + " " + what)
}

// malformed notes err, an ErrMalformed error naming a member whose value
// could not be read.
func (r *report) malformed(err error) {
	if r == nil {
		return
	}
	if r.bad == nil {
		r.bad = err
	}
	r.note(strings.TrimPrefix(err.Error(), ErrMalformed.Error()+": "))
}

// err renders the report as an ErrIncomplete error, wrapping ErrMalformed
// too when a value could not be read, or nil when empty.
func (r *report) err() error {
	if r == nil || len(r.notes) == 0 {
		return nil
	}
	msg := strings.Join(r.notes, ", ")
	if r.more > 0 {
		msg += fmt.Sprintf(" and %d more", r.more)
	}
	if r.bad != nil {
		return fmt.Errorf("%w (%w): not mapped, kept in unmapped_json or unmapped_outputs: %s", ErrIncomplete, ErrMalformed, msg)
	}
	return fmt.Errorf("%w: not mapped, kept in unmapped_json or unmapped_outputs: %s", ErrIncomplete, msg)
}

// decodeTop decodes the body as a JSON object, describing what it got
// instead when it is anything else.
func decodeTop(body []byte) (object, error) {
	if k := kind(body); k != '{' {
		if k == 0 {
			return nil, fmt.Errorf("%w: empty body", ErrMalformed)
		}
		if json.Valid(body) {
			return nil, fmt.Errorf("%w: want a JSON object, got %s", ErrMalformed, kindName(k))
		}
	}
	// One copy of the body backs every string the event takes from it,
	// instead of one allocation per field.
	if top, ok := scanObject(string(body)); ok {
		return top, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrMalformed, describeJSONError(err))
	}
	return objectOfMap(top), nil
}

// describeJSONError turns a decoding error into a detail that points at the
// problem without repeating the body: encoding/json's syntax errors quote at
// most one character, and the offset lets an operator find the spot in the
// stored raw body.
func describeJSONError(err error) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Sprintf("invalid JSON at byte %d: %s", syn.Offset, syn.Error())
	}
	msg := err.Error()
	if len(msg) > 2*maxQuoted {
		msg = msg[:2*maxQuoted] + "..."
	}
	return msg
}
