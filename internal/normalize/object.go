package normalize

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// object is a decoded JSON object whose member values are kept raw, so that
// every field is looked up by its exact key (encoding/json struct decoding
// would also match keys case-insensitively) and type-checked individually,
// which yields precise error messages. Members keep their order; a key that
// occurs more than once resolves to its last occurrence, as it would when
// decoding into a map. Keys are unescaped; values are the raw JSON text,
// without surrounding whitespace, sliced from one copy of the body.
type object []member

// member is one key and raw value of an object.
type member struct {
	key, raw string
}

// get returns the raw value under key, or "" when key is absent.
func (o object) get(key string) string {
	for i := len(o) - 1; i >= 0; i-- {
		if o[i].key == key {
			return o[i].raw
		}
	}
	return ""
}

// kind returns the first non-whitespace byte of a raw JSON value, which
// identifies its type: '{', '[', '"', 't', 'f', 'n', or a number's first
// character. It returns 0 for an empty or all-whitespace value.
func kind[T string | []byte](raw T) byte {
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; c {
		case ' ', '\t', '\r', '\n':
			continue
		default:
			return c
		}
	}
	return 0
}

// kindName describes the JSON type that starts with c, for error messages.
func kindName(c byte) string {
	switch c {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case 0:
		return "nothing"
	}
	return "a number"
}

// absent reports whether a member is missing or JSON null. Null is read as
// absent because senders commonly use it for "not set yet".
func absent(raw string) bool {
	k := kind(raw)
	return k == 0 || k == 'n'
}

// decodeObject decodes raw, the value at prefix.key (or at prefix when key
// is empty), as a JSON object. JSON null yields a nil object, which behaves
// as an empty one, so optional nested objects need no special casing by
// callers.
func decodeObject(raw string, prefix fieldPath, key string) (object, error) {
	switch k := kind(raw); k {
	case 0, 'n':
		return nil, nil
	case '{':
	default:
		return nil, malformed(errPath(prefix, key), "must be an object, got %s", kindName(k))
	}
	if o, ok := scanObject(raw); ok {
		return o, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		// Unreachable for members of an already decoded document, which is
		// syntactically valid; kept so a future caller cannot panic.
		return nil, malformed(errPath(prefix, key), "is not a valid JSON object")
	}
	return objectOfMap(m), nil
}

// objectOfMap converts the result of the general decoder, used only when
// the scanner declines a document, into an object.
func objectOfMap(m map[string]json.RawMessage) object {
	if m == nil {
		return nil
	}
	o := make(object, 0, len(m))
	for k, v := range m {
		o = append(o, member{key: k, raw: string(v)})
	}
	return o
}

// decodeArray decodes raw, the value at prefix.key, as a JSON array; null
// or absent yields nil.
func decodeArray(raw string, prefix fieldPath, key string) ([]string, error) {
	switch k := kind(raw); k {
	case 0, 'n':
		return nil, nil
	case '[':
	default:
		return nil, malformed(errPath(prefix, key), "must be an array, got %s", kindName(k))
	}
	if a, ok := scanArray(raw); ok {
		return a, nil
	}
	var a []json.RawMessage
	if err := json.Unmarshal([]byte(raw), &a); err != nil {
		return nil, malformed(errPath(prefix, key), "is not a valid JSON array")
	}
	elems := make([]string, len(a))
	for i, v := range a {
		elems[i] = string(v)
	}
	return elems, nil
}

// has reports whether key is present at all, even as null. Shape detection
// uses presence, so that a recognizable payload with a wrongly typed key is
// reported as malformed rather than as an unknown shape.
func (o object) has(key string) bool {
	for i := range o {
		if o[i].key == key {
			return true
		}
	}
	return false
}

// object returns the nested object under key, or nil when it is absent.
func (o object) object(prefix fieldPath, key string) (object, error) {
	return decodeObject(o.get(key), prefix, key)
}

// array returns the array under key, or nil when it is absent.
func (o object) array(prefix fieldPath, key string) ([]string, error) {
	return decodeArray(o.get(key), prefix, key)
}

// str returns the string under key, or "" when it is absent.
func (o object) str(prefix fieldPath, key string) (string, error) {
	raw := o.get(key)
	switch k := kind(raw); k {
	case 0, 'n':
		return "", nil
	case '"':
		if s, ok := plainString(raw); ok {
			return s, nil
		}
		var s string
		if err := json.Unmarshal([]byte(raw), &s); err != nil {
			return "", malformed(join(prefix, key), "is not a valid JSON string")
		}
		return s, nil
	default:
		return "", malformed(join(prefix, key), "must be a string, got %s", kindName(k))
	}
}

// plainString returns the content of a raw JSON string that needs no
// unescaping: no backslashes or control characters, and valid UTF-8, which
// covers almost every id, status, URL and prompt Kling sends. encoding/json
// would return exactly these bytes, so the reflective decoder is skipped on
// the ingest hot path; anything else reports false and takes the general
// path, which also replaces invalid UTF-8.
func plainString(raw string) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	ascii := true
	for i := 0; i < len(inner); i++ {
		switch c := inner[i]; {
		case c < 0x20 || c == '\\' || c == '"':
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	if !ascii && !utf8.ValidString(inner) {
		return "", false
	}
	return inner, true
}

// requiredStr is str for the members that identify a payload's shape, where
// null is as wrong as any other non-string.
func (o object) requiredStr(prefix fieldPath, key string) (string, error) {
	if k := kind(o.get(key)); k != '"' {
		return "", malformed(join(prefix, key), "must be a string, got %s", kindName(k))
	}
	return o.str(prefix, key)
}

// MaxIDBytes bounds every identifier (job, external, output ids): real ones
// are a few dozen bytes, and an unbounded one would be a cheap way to make
// every later step expensive.
const MaxIDBytes = 256

// id returns an identifier under key, or "" when it is absent. Identifiers
// are strings on the wire, but some serializers emit numeric ids as JSON
// numbers; those are accepted when they are integers and rendered exactly as
// written, so that ids longer than a float64 mantissa survive intact.
func (o object) id(prefix fieldPath, key string) (string, error) {
	raw := o.get(key)
	switch k := kind(raw); k {
	case 0, 'n', '"':
		v, err := o.str(prefix, key)
		if err == nil && len(v) > MaxIDBytes {
			return "", malformed(join(prefix, key), "must be at most %d bytes", MaxIDBytes)
		}
		return v, err
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		lit := strings.TrimSpace(raw)
		if !isInteger(lit) {
			return "", malformed(join(prefix, key), "must be a string or an integer, got %s", quote(lit))
		}
		if len(lit) > MaxIDBytes {
			return "", malformed(join(prefix, key), "must be at most %d bytes", MaxIDBytes)
		}
		return lit, nil
	default:
		return "", malformed(join(prefix, key), "must be a string or an integer, got %s", kindName(k))
	}
}

// requiredID is id for the members that identify a payload's shape.
func (o object) requiredID(prefix fieldPath, key string) (string, error) {
	if raw := o.get(key); absent(raw) {
		return "", malformed(join(prefix, key), "must be a string or an integer, got %s", kindName(kind(raw)))
	}
	return o.id(prefix, key)
}

// number returns the text of the number under key, and false when it is
// absent. A JSON string holding a JSON number is accepted too, since
// decimal values are often quoted to protect their precision; an empty
// string is read as absent.
func (o object) number(prefix fieldPath, key string) (string, bool, error) {
	raw := o.get(key)
	switch k := kind(raw); k {
	case 0, 'n':
		return "", false, nil
	case '"':
		s, err := o.str(prefix, key)
		if err != nil {
			return "", false, err
		}
		s = strings.TrimSpace(s)
		if s == "" {
			return "", false, nil
		}
		if !isNumber(s) {
			return "", false, malformed(join(prefix, key), "must be a number, got %s", quote(s))
		}
		return s, true, nil
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return strings.TrimSpace(raw), true, nil
	default:
		return "", false, malformed(join(prefix, key), "must be a number, got %s", kindName(k))
	}
}

// decimal returns the value under key as a decimal string, or "" when it is
// absent. Strings are kept exactly as the sender wrote them; numbers keep
// their literal text unless they use an exponent, which is expanded so that
// consumers always see plain decimal notation.
func (o object) decimal(prefix fieldPath, key string) (string, error) {
	if kind(o.get(key)) == '"' {
		return o.str(prefix, key)
	}
	lit, ok, err := o.number(prefix, key)
	if err != nil || !ok {
		return "", err
	}
	if !strings.ContainsAny(lit, "eE") {
		return lit, nil
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		return "", malformed(join(prefix, key), "is out of range: %s", quote(lit))
	}
	return strconv.FormatFloat(f, 'f', -1, 64), nil
}

// millis returns the Unix-milliseconds timestamp under key, or nil when it is
// absent or zero; zero is how senders spell "not set", never a real time.
func (o object) millis(prefix fieldPath, key string) (*timestamppb.Timestamp, error) {
	lit, ok, err := o.number(prefix, key)
	if err != nil || !ok {
		return nil, err
	}
	if !isInteger(lit) {
		return nil, malformed(join(prefix, key), "must be integer Unix milliseconds, got %s", quote(lit))
	}
	ms, err := strconv.ParseInt(lit, 10, 64)
	if err != nil {
		return nil, malformed(join(prefix, key), "is out of range: %s", quote(lit))
	}
	if ms == 0 {
		return nil, nil
	}
	ts := timestamppb.New(time.UnixMilli(ms))
	if ts.CheckValid() != nil {
		return nil, malformed(join(prefix, key), "is out of range: %s", quote(lit))
	}
	return ts, nil
}

// rfc3339 returns the RFC 3339 timestamp under key, with or without
// fractional seconds, or nil when it is absent or empty.
func (o object) rfc3339(prefix fieldPath, key string) (*timestamppb.Timestamp, error) {
	s, err := o.str(prefix, key)
	if err != nil || s == "" {
		return nil, err
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil, malformed(join(prefix, key), "is not an RFC 3339 timestamp: %s", quote(s))
	}
	ts := timestamppb.New(t)
	if ts.CheckValid() != nil {
		return nil, malformed(join(prefix, key), "is out of range: %s", quote(s))
	}
	return ts, nil
}

// duration returns the duration in seconds under key, or nil when it is
// absent or empty.
func (o object) duration(prefix fieldPath, key string) (*durationpb.Duration, error) {
	lit, ok, err := o.number(prefix, key)
	if err != nil || !ok {
		return nil, err
	}
	d, err := parseSeconds(lit)
	if err != nil {
		return nil, malformed(join(prefix, key), "%v: %s", err, quote(lit))
	}
	return durationpb.New(d), nil
}

// boolean returns the boolean under key, or nil when it is absent. The
// strings "true" and "false" are accepted too, as quoted numbers are.
func (o object) boolean(prefix fieldPath, key string) (*bool, error) {
	raw := o.get(key)
	var v bool
	switch k := kind(raw); k {
	case 0, 'n':
		return nil, nil
	case 't', 'f':
		v = k == 't'
	case '"':
		s, err := o.str(prefix, key)
		if err != nil {
			return nil, err
		}
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "":
			return nil, nil
		case "true":
			v = true
		case "false":
		default:
			return nil, malformed(join(prefix, key), "must be a boolean, got %s", quote(s))
		}
	default:
		return nil, malformed(join(prefix, key), "must be a boolean, got %s", kindName(k))
	}
	return &v, nil
}
