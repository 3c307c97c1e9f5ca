package normalize

import "encoding/json"

// The scanner below splits a JSON object or array into its raw members in a
// single pass that also validates the syntax, without reflection and
// without copying: keys and values are substrings of the input. It accepts
// a strict subset of what encoding/json accepts and reports false for
// everything else (including documents nested deeper than maxScanDepth),
// so callers fall back to encoding/json, whose verdict and error messages
// therefore remain the only ones a sender ever sees.

// maxScanDepth bounds the recursion of the scanner. encoding/json allows
// deeper documents; those take its slower path.
const maxScanDepth = 512

// scanObject decodes s, which must hold exactly one JSON object surrounded
// by optional whitespace, into its members.
func scanObject(s string) (object, bool) {
	sc := scanner{s: s}
	sc.skipSpace()
	if sc.i >= len(s) || s[sc.i] != '{' {
		return nil, false
	}
	o := make(object, 0, 16)
	sc.i++
	sc.skipSpace()
	if sc.i < len(s) && s[sc.i] == '}' {
		sc.i++
		return o, sc.atEnd()
	}
	for {
		if sc.i >= len(s) || s[sc.i] != '"' {
			return nil, false
		}
		start := sc.i
		escaped, ok := sc.str()
		if !ok {
			return nil, false
		}
		key := s[start+1 : sc.i-1]
		if escaped || !isASCII(key) {
			// Rare: let encoding/json unescape the key (and replace invalid
			// UTF-8) so that it is exactly what a map key would have been.
			var unescaped string
			if json.Unmarshal([]byte(s[start:sc.i]), &unescaped) != nil {
				return nil, false
			}
			key = unescaped
		}
		sc.skipSpace()
		if sc.i >= len(s) || s[sc.i] != ':' {
			return nil, false
		}
		sc.i++
		sc.skipSpace()
		vstart := sc.i
		if !sc.value(1) {
			return nil, false
		}
		o = append(o, member{key: key, raw: s[vstart:sc.i]})
		end, ok := sc.afterValue('}')
		if !ok {
			return nil, false
		}
		if end {
			return o, sc.atEnd()
		}
	}
}

// scanArray decodes s, which must hold exactly one JSON array surrounded by
// optional whitespace, into its raw elements.
func scanArray(s string) ([]string, bool) {
	sc := scanner{s: s}
	sc.skipSpace()
	if sc.i >= len(s) || s[sc.i] != '[' {
		return nil, false
	}
	sc.i++
	sc.skipSpace()
	if sc.i < len(s) && s[sc.i] == ']' {
		sc.i++
		return []string{}, sc.atEnd()
	}
	var a []string
	for {
		start := sc.i
		if !sc.value(1) {
			return nil, false
		}
		a = append(a, s[start:sc.i])
		end, ok := sc.afterValue(']')
		if !ok {
			return nil, false
		}
		if end {
			return a, sc.atEnd()
		}
	}
}

// afterValue consumes what follows a member or an element: a comma and the
// space before the next one (end false), or closing, which ends the
// container (end true). ok is false for anything else.
func (sc *scanner) afterValue(closing byte) (end, ok bool) {
	sc.skipSpace()
	if sc.i >= len(sc.s) {
		return false, false
	}
	switch sc.s[sc.i] {
	case ',':
		sc.i++
		sc.skipSpace()
		return false, true
	case closing:
		sc.i++
		return true, true
	}
	return false, false
}

type scanner struct {
	s string
	i int
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n'
}

func (sc *scanner) skipSpace() {
	for sc.i < len(sc.s) && isSpace(sc.s[sc.i]) {
		sc.i++
	}
}

// atEnd reports whether only whitespace remains.
func (sc *scanner) atEnd() bool {
	sc.skipSpace()
	return sc.i == len(sc.s)
}

// value skips one JSON value starting at sc.i, which must not be
// whitespace.
func (sc *scanner) value(depth int) bool {
	s := sc.s
	if sc.i >= len(s) {
		return false
	}
	switch c := s[sc.i]; {
	case c == '"':
		_, ok := sc.str()
		return ok
	case c == '{':
		return sc.compound(depth, '}', true)
	case c == '[':
		return sc.compound(depth, ']', false)
	case c == '-' || c >= '0' && c <= '9':
		return sc.number()
	case c == 't':
		return sc.literal("true")
	case c == 'f':
		return sc.literal("false")
	case c == 'n':
		return sc.literal("null")
	}
	return false
}

// compound skips an object (members true) or array starting at sc.i.
func (sc *scanner) compound(depth int, end byte, members bool) bool {
	if depth >= maxScanDepth {
		return false
	}
	s := sc.s
	sc.i++
	sc.skipSpace()
	if sc.i < len(s) && s[sc.i] == end {
		sc.i++
		return true
	}
	for {
		if members {
			if sc.i >= len(s) || s[sc.i] != '"' {
				return false
			}
			if _, ok := sc.str(); !ok {
				return false
			}
			sc.skipSpace()
			if sc.i >= len(s) || s[sc.i] != ':' {
				return false
			}
			sc.i++
			sc.skipSpace()
		}
		if !sc.value(depth + 1) {
			return false
		}
		sc.skipSpace()
		if sc.i >= len(s) {
			return false
		}
		switch s[sc.i] {
		case ',':
			sc.i++
			sc.skipSpace()
		case end:
			sc.i++
			return true
		default:
			return false
		}
	}
}

// str skips a string starting at the opening quote at sc.i, reporting
// whether it contains escapes. Invalid UTF-8 is accepted, as encoding/json
// accepts it (and replaces it when decoding).
func (sc *scanner) str() (escaped, ok bool) {
	s := sc.s
	i := sc.i + 1
	for i < len(s) {
		c := s[i]
		if plainByte[c] {
			i++
			continue
		}
		switch {
		case c == '"':
			sc.i = i + 1
			return escaped, true
		case c < 0x20:
			return false, false
		case c == '\\':
			escaped = true
			if i+1 >= len(s) {
				return false, false
			}
			switch s[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(s) {
					return false, false
				}
				for _, h := range []byte(s[i+2 : i+6]) {
					if !isHex(h) {
						return false, false
					}
				}
				i += 6
			default:
				return false, false
			}
		default:
			i++
		}
	}
	return false, false
}

// plainByte marks the bytes that may appear unescaped inside a JSON string
// and need no further attention: all but control characters, the quote and
// the backslash.
var plainByte = func() (t [256]bool) {
	for c := range t {
		t[c] = c >= 0x20 && c != '"' && c != '\\'
	}
	return t
}()

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// number skips a number in JSON syntax starting at sc.i.
func (sc *scanner) number() bool {
	end, ok := numberEnd(sc.s, sc.i)
	if !ok {
		return false
	}
	sc.i = end
	return true
}

// literal skips the literal lit at sc.i.
func (sc *scanner) literal(lit string) bool {
	if len(sc.s)-sc.i < len(lit) || sc.s[sc.i:sc.i+len(lit)] != lit {
		return false
	}
	sc.i += len(lit)
	return true
}
