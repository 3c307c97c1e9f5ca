package normalize

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// This file holds the reader every callback output and header goes through.
// It degrades per field: a member whose value cannot be read is left unset,
// reported, and kept with the members nobody maps, so one odd value never
// costs the rest of the object, let alone the rest of the delivery.

// maxTaken bounds how many members one reader records as mapped without
// allocating; no object Kling documents has more mapped members.
const maxTaken = 16

// members reads the members of one JSON object o at path into an output's
// fields, one call per member, and remembers which members it mapped, so
// that unmapped can return the rest.
type members struct {
	o    object
	path fieldPath
	r    *report
	// taken are the keys mapped so far; more holds any beyond maxTaken.
	taken [maxTaken]string
	n     int
	more  []string
	// nested holds, under their keys, the unmapped members of nested
	// objects that have no message of their own.
	nested []member
	// failed are the keys whose values could not be read, already
	// reported as such.
	failed []string
}

// newMembers starts reading o, the object at path, reporting to r.
func newMembers(o object, path fieldPath, r *report) *members {
	return &members{o: o, path: path, r: r}
}

// take records key as mapped.
func (m *members) take(key string) {
	if m.n < maxTaken {
		m.taken[m.n] = key
		m.n++
		return
	}
	m.more = append(m.more, key)
}

// fail reports err, the reason the value under key could not be read; the
// member stays unmapped.
func (m *members) fail(err error, key string) {
	m.r.malformed(err)
	m.failed = append(m.failed, key)
}

// mapped reports whether key was taken.
func (m *members) mapped(key string) bool {
	for _, k := range m.taken[:m.n] {
		if k == key {
			return true
		}
	}
	for _, k := range m.more {
		if k == key {
			return true
		}
	}
	return false
}

// readMember reads key with read into dst. A value read cannot decode is
// reported and leaves dst unset and key unmapped, so that it lands in
// unmapped with its raw value.
func readMember[T any](m *members, read func(object, fieldPath, string) (T, error), key string, dst *T) bool {
	v, err := read(m.o, m.path, key)
	if err != nil {
		m.fail(err, key)
		return false
	}
	*dst = v
	m.take(key)
	return true
}

func (m *members) id(key string, dst *string)      { readMember(m, object.id, key, dst) }
func (m *members) str(key string, dst *string)     { readMember(m, object.str, key, dst) }
func (m *members) decimal(key string, dst *string) { readMember(m, object.decimal, key, dst) }
func (m *members) duration(key string, dst **durationpb.Duration) {
	readMember(m, object.duration, key, dst)
}
func (m *members) millis(key string, dst **timestamppb.Timestamp) {
	readMember(m, object.millis, key, dst)
}
func (m *members) boolean(key string, dst **bool) { readMember(m, object.boolean, key, dst) }

// object returns the nested object under key for a reader of its own, or
// nil (and reports) when key holds something else; the caller takes the
// key once it has read the nested object.
func (m *members) object(key string) (object, bool) {
	o, err := m.o.object(m.path, key)
	if err != nil {
		m.fail(err, key)
		return nil, false
	}
	return o, true
}

// array returns the elements of the array under key, or nil (and reports)
// when key holds something else. A readable array is taken: its elements
// are accounted for by whoever reads them.
func (m *members) array(key string) []string {
	a, err := m.o.array(m.path, key)
	if err != nil {
		m.fail(err, key)
		return nil
	}
	m.take(key)
	return a
}

// nest takes key, a nested object read by sub, keeping sub's unmapped
// members under key.
func (m *members) nest(key string, sub *members) {
	m.take(key)
	if rest := sub.unmapped(); rest != "" {
		m.nested = append(m.nested, member{key: key, raw: rest})
	}
}

// unmapped returns the members of o no call mapped, as a JSON object whose
// values are as sent (nested objects keep only their own unmapped
// members), or "" when there are none, and reports the members it did not
// know. Members are kept in the order the sender wrote them.
func (m *members) unmapped() string {
	var b strings.Builder
	write := func(key, raw string) {
		if b.Len() == 0 {
			b.WriteByte('{')
		} else {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(key) // a string always marshals
		b.Write(k)
		b.WriteByte(':')
		writeCompact(&b, raw)
	}
	for _, mem := range m.o {
		switch {
		case !m.mapped(mem.key):
			if !slices.Contains(m.failed, mem.key) {
				m.r.leave(join(m.path, mem.key), "is not a known member")
			}
			write(mem.key, mem.raw)
		case len(m.nested) > 0:
			// A nested object's rest is written once, at the key's first
			// occurrence, even if the sender repeated the key.
			for i, n := range m.nested {
				if n.key == mem.key {
					write(n.key, n.raw)
					m.nested[i].key = ""
				}
			}
		}
	}
	if b.Len() == 0 {
		return ""
	}
	b.WriteByte('}')
	return b.String()
}

// decodeOutput decodes the element raw of an output array at path. An
// element that is not an object is reported and yields false: the caller
// keeps it as an unmapped output.
func decodeOutput(raw string, path fieldPath, r *report) (object, bool) {
	o, err := decodeObject(raw, path, "")
	if err != nil {
		r.malformed(err)
		return nil, false
	}
	return o, true
}

// writeCompact writes the JSON value raw to b without insignificant
// whitespace, so that a kept value reads the same however the sender
// indented it; every value keeps its exact text otherwise (numbers are not
// reformatted), except that invalid UTF-8, which a protobuf string cannot
// hold, becomes U+FFFD as encoding/json would decode it. In a valid
// document such bytes can only be inside strings, so the result stays
// valid JSON.
func writeCompact(b *strings.Builder, raw string) {
	var out bytes.Buffer
	if json.Compact(&out, []byte(raw)) != nil {
		out.Reset()
		out.WriteString(raw) // unreachable: raw is part of a valid document
	}
	if !utf8.Valid(out.Bytes()) {
		b.WriteString(strings.ToValidUTF8(out.String(), "\uFFFD"))
		return
	}
	b.Write(out.Bytes())
}

// compact returns raw without insignificant whitespace.
func compact(raw string) string {
	var b strings.Builder
	writeCompact(&b, raw)
	return b.String()
}
