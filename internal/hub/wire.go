package hub

import (
	"slices"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	gatewayv1 "github.com/klingfan/klingfan/gen/kling/gateway/v1"
)

// Field numbers of kling.gateway.v1.Event, Job, Timestamp and
// SubscribeResponse that catch-up reads from stored bytes. They are part of
// the wire contract (proto/kling/gateway/v1), so they never change.
const (
	fieldEventSequence   protowire.Number = 2
	fieldEventType       protowire.Number = 3
	fieldEventWebhookID  protowire.Number = 5
	fieldEventReceivedAt protowire.Number = 7
	fieldEventJob        protowire.Number = 10
	fieldEventRawBody    protowire.Number = 11
	fieldJobID           protowire.Number = 1
	fieldJobKind         protowire.Number = 16
	fieldTimestampSecs   protowire.Number = 1
	fieldTimestampNanos  protowire.Number = 2
	fieldResponseEvent   protowire.Number = 1
)

// wireEvent is what the filters and the metrics need of a stored event,
// read from its wire form without decoding it: decoding, stripping the raw
// body and encoding again was most of the CPU of a catch-up from the log.
// The byte slices point into the stored bytes.
type wireEvent struct {
	typ       gatewayv1.EventType
	webhookID []byte
	jobID     []byte
	kind      gatewayv1.JobKind
	// received is the received_at time; hasReceived says it was set.
	received    time.Time
	hasReceived bool
	// bodyStart and bodyEnd delimit the raw_body field (tag included), which
	// the basic view leaves out; equal when there is none.
	bodyStart, bodyEnd int
}

// readWire reads a stored Event. It reports false when the bytes are
// malformed or unusual in a way the shortcut does not cover (a field it
// reads appearing twice, which proto merges, or a sequence already set):
// the caller then decodes the event as a whole.
func readWire(b []byte) (w wireEvent, ok bool) {
	var seen uint32
	for i := 0; i < len(b); {
		num, typ, n := protowire.ConsumeTag(b[i:])
		if n < 0 {
			return w, false
		}
		start := i
		i += n
		switch num {
		case fieldEventSequence, fieldEventType, fieldEventWebhookID, fieldEventReceivedAt, fieldEventJob, fieldEventRawBody:
			if seen&(1<<num) != 0 || num == fieldEventSequence {
				return w, false
			}
			seen |= 1 << num
		}
		var (
			v   uint64
			val []byte
		)
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b[i:])
		case protowire.BytesType:
			val, n = protowire.ConsumeBytes(b[i:])
		default:
			n = protowire.ConsumeFieldValue(num, typ, b[i:])
		}
		if n < 0 {
			return w, false
		}
		i += n
		wantVarint := num == fieldEventType
		wantBytes := num == fieldEventWebhookID || num == fieldEventReceivedAt || num == fieldEventJob || num == fieldEventRawBody
		if wantVarint && typ != protowire.VarintType || wantBytes && typ != protowire.BytesType {
			return w, false
		}
		switch num {
		case fieldEventType:
			w.typ = gatewayv1.EventType(int32(v))
		case fieldEventWebhookID:
			w.webhookID = val
		case fieldEventReceivedAt:
			if w.received, ok = readTimestamp(val); !ok {
				return w, false
			}
			w.hasReceived = true
		case fieldEventJob:
			if w.jobID, w.kind, ok = readJob(val); !ok {
				return w, false
			}
		case fieldEventRawBody:
			w.bodyStart, w.bodyEnd = start, i
		}
	}
	return w, true
}

// receivedTime is received_at as Filter.Match sees it: the zero
// Timestamp's time when the event has none.
func (w *wireEvent) receivedTime() time.Time {
	if !w.hasReceived {
		return time.Unix(0, 0).UTC()
	}
	return w.received
}

// readJob reads a Job's id and kind.
func readJob(b []byte) (id []byte, kind gatewayv1.JobKind, ok bool) {
	var seen uint32
	for i := 0; i < len(b); {
		num, typ, n := protowire.ConsumeTag(b[i:])
		if n < 0 {
			return nil, 0, false
		}
		i += n
		switch {
		case num == fieldJobID && typ == protowire.BytesType:
			id, n = protowire.ConsumeBytes(b[i:])
		case num == fieldJobKind && typ == protowire.VarintType:
			var v uint64
			v, n = protowire.ConsumeVarint(b[i:])
			kind = gatewayv1.JobKind(int32(v))
		case num == fieldJobID || num == fieldJobKind:
			return nil, 0, false
		default:
			n = protowire.ConsumeFieldValue(num, typ, b[i:])
		}
		if n < 0 {
			return nil, 0, false
		}
		if num == fieldJobID || num == fieldJobKind {
			if seen&(1<<num) != 0 {
				return nil, 0, false
			}
			seen |= 1 << num
		}
		i += n
	}
	return id, kind, true
}

// readTimestamp reads a google.protobuf.Timestamp as AsTime would.
func readTimestamp(b []byte) (time.Time, bool) {
	var secs, nanos int64
	var seen uint32
	for i := 0; i < len(b); {
		num, typ, n := protowire.ConsumeTag(b[i:])
		if n < 0 {
			return time.Time{}, false
		}
		i += n
		if (num == fieldTimestampSecs || num == fieldTimestampNanos) && typ == protowire.VarintType {
			if seen&(1<<num) != 0 {
				return time.Time{}, false
			}
			seen |= 1 << num
			v, n := protowire.ConsumeVarint(b[i:])
			if n < 0 {
				return time.Time{}, false
			}
			i += n
			if num == fieldTimestampSecs {
				secs = int64(v)
			} else {
				nanos = int64(int32(v))
			}
			continue
		}
		if num == fieldTimestampSecs || num == fieldTimestampNanos {
			return time.Time{}, false
		}
		n = protowire.ConsumeFieldValue(num, typ, b[i:])
		if n < 0 {
			return time.Time{}, false
		}
		i += n
	}
	return time.Unix(secs, nanos).UTC(), true
}

// responseSize is the length of the SubscribeResponse appendResponse
// writes for stored event b with sequence seq.
func (w *wireEvent) responseSize(b []byte, seq uint64, full bool) int {
	ev := w.eventSize(b, seq, full)
	return protowire.SizeTag(fieldResponseEvent) + protowire.SizeBytes(ev)
}

func (w *wireEvent) eventSize(b []byte, seq uint64, full bool) int {
	n := len(b) + protowire.SizeTag(fieldEventSequence) + protowire.SizeVarint(seq)
	if !full {
		n -= w.bodyEnd - w.bodyStart
	}
	return n
}

// appendResponse appends the SubscribeResponse carrying stored event b with
// its sequence set, without the raw body unless full. The stored bytes
// never carry a sequence, so appending the field after the others encodes
// exactly the event a decode, a Sequence assignment and an encode would
// give (proto allows fields in any order).
func (w *wireEvent) appendResponse(dst, b []byte, seq uint64, full bool) []byte {
	dst = protowire.AppendTag(dst, fieldResponseEvent, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(w.eventSize(b, seq, full)))
	if full || w.bodyEnd == w.bodyStart {
		dst = append(dst, b...)
	} else {
		dst = append(dst, b[:w.bodyStart]...)
		dst = append(dst, b[w.bodyEnd:]...)
	}
	dst = protowire.AppendTag(dst, fieldEventSequence, protowire.VarintType)
	return protowire.AppendVarint(dst, seq)
}

// matchWire is Match on an event read by readWire, for every part of the
// filter except the CEL expression: the caller decodes the event for that
// (see needsEvent).
func (f *Filter) matchWire(w *wireEvent) bool {
	if len(f.types) > 0 && !slices.Contains(f.types, w.typ) {
		return false
	}
	if f.jobs != nil {
		if _, ok := f.jobs[string(w.jobID)]; !ok {
			return false
		}
	}
	if len(f.webhooks) > 0 && !containsBytes(f.webhooks, w.webhookID) {
		return false
	}
	if len(f.kinds) > 0 && !slices.Contains(f.kinds, w.kind) {
		return false
	}
	if !f.since.IsZero() && w.receivedTime().Before(f.since) {
		return false
	}
	return true
}

// needsEvent reports whether matching needs the decoded event: only a CEL
// expression does.
func (f *Filter) needsEvent() bool { return f.expr != nil }

// containsBytes compares without converting b to a string (no allocation).
func containsBytes(ss []string, b []byte) bool {
	for _, s := range ss {
		if s == string(b) {
			return true
		}
	}
	return false
}
