package normalize

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// This file names the values a parser reads, for error messages that point
// at the offending field without echoing much of the body.

// maxQuoted bounds how much of a received value an error message repeats, so
// that errors stay short and never echo a significant part of a body.
const maxQuoted = 32

// fieldPath names a value for error messages without building the name
// unless an error needs it: a constant base such as "data" or
// "task_result.videos", and for array elements the index plus one.
type fieldPath struct {
	base string
	elem int
}

// root is the path of the body itself.
var root = fieldPath{}

// at is the path of a member of the body, or of a nested object with a
// constant dotted name.
func at(base string) fieldPath { return fieldPath{base: base} }

// elemOf is the path of the i-th element of the array at base.
func elemOf(base string, i int) fieldPath { return fieldPath{base: base, elem: i + 1} }

// String renders the path, e.g. "outputs[2]".
func (p fieldPath) String() string {
	if p.elem == 0 {
		return p.base
	}
	return index(p.base, p.elem-1)
}

// join builds a dotted field path such as "data.duration" for error messages.
func join(prefix fieldPath, key string) string {
	p := prefix.String()
	if p == "" {
		return key
	}
	return p + "." + key
}

// index builds an element path such as "outputs[2]" for error messages.
func index(prefix string, i int) string {
	return prefix + "[" + strconv.Itoa(i) + "]"
}

// malformed returns an ErrMalformed error that names the offending field.
func malformed(path, format string, args ...any) error {
	return fmt.Errorf("%w: %s %s", ErrMalformed, path, fmt.Sprintf(format, args...))
}

// quote renders at most maxQuoted bytes of s, cut at a rune boundary, as a Go
// quoted string, so that an error can show what was wrong without echoing an
// arbitrary amount of the body.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "..."
}

// errPath renders the path of the value at prefix.key, or at prefix itself
// when key is empty. It is called only to build an error.
func errPath(prefix fieldPath, key string) string {
	if key == "" {
		return prefix.String()
	}
	return join(prefix, key)
}
